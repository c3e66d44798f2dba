"""The pager (portable.cli.pager): on a terminal only, as systemd's tools choose and set it up.

``python -m portable`` runs under a pseudo-terminal, with a pager script that marks each line
it is given; through a pipe nothing ever changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portable.testing.images import service_unit

MARKER = '#!/bin/sh\necho "LESS=$LESS LESSSECURE=${LESSSECURE:-unset}"\nexec sed "s/^/P:/"\n'


@pytest.fixture
def tree(portable_root: Path, make_image) -> Path:
    (portable_root / "var/lib/portables").mkdir(parents=True)
    for name in ("app", "other"):
        make_image(name, units={f"{name}.service": service_unit()})
        (portable_root / "var/lib/portables" / name).symlink_to(f"/srv/images/{name}")
    return portable_root


@pytest.fixture
def marker(tmp_path: Path) -> str:
    script = tmp_path / "mark-pager"
    script.write_text(MARKER)
    script.chmod(0o755)
    return str(script)


def environ(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEMD_", "LESS"))}
    env.pop("PAGER", None)
    env.pop("SUDO_UID", None)
    env["TERM"] = "xterm"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def on_tty(args: list[str], env: dict[str, str], *, pipe: bool = False) -> str:
    """What ``python -m portable ARGS`` shows on a terminal (``pipe``: stdout a pipe, stderr
    still the terminal), as text with plain newlines."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portable", *args],
            stdin=follower,
            stdout=subprocess.PIPE if pipe else follower,
            stderr=follower,
            env=env,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every holder of the terminal is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        piped = proc.stdout.read() if proc.stdout is not None else b""
        if proc.stdout is not None:
            proc.stdout.close()
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    return (b"".join(chunks) + piped).decode().replace("\r\n", "\n")


def direct(tree: Path, *args: str) -> str:
    """The output through a pipe: what portablectl is compared with."""
    run = subprocess.run(
        [sys.executable, "-m", "portable", "--root", str(tree), *args],
        capture_output=True,
        text=True,
        env=environ(),
        check=True,
    )
    return run.stdout


def marked(text: str) -> str:
    return "".join(f"P:{line}\n" for line in text.splitlines())


def test_list_goes_through_the_pager(tree: Path, marker: str) -> None:
    shown = on_tty(
        ["--root", str(tree), "list"], environ(SYSTEMD_PAGER=marker, SYSTEMD_PAGERSECURE="0")
    )
    plain = direct(tree, "list")
    assert "app" in plain
    assert shown == "LESS=FRSXMK LESSSECURE=unset\n" + marked(plain)


def test_click_path_and_inspect_page_too(tree: Path, marker: str) -> None:
    env = environ(SYSTEMD_PAGER=marker, SYSTEMD_PAGERSECURE="1", SYSTEMD_LESS="RX")
    # --debug sends list to click's command.
    shown = on_tty(["--debug", "--root", str(tree), "list"], env)
    assert shown == "LESS=RX LESSSECURE=1\n" + marked(direct(tree, "list"))
    shown = on_tty(["--root", str(tree), "inspect", "-q", "/srv/images/app"], env)
    assert shown == "LESS=RX LESSSECURE=1\n" + marked(
        direct(tree, "inspect", "-q", "/srv/images/app")
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"SYSTEMD_PAGER": "cat"},
        {"SYSTEMD_PAGER": ""},
        {"SYSTEMD_PAGER": "  "},
        {"PAGER": "cat"},
        {"TERM": "dumb"},
        {"TERM": None},
    ],
    ids=["SYSTEMD_PAGER=cat", "SYSTEMD_PAGER=", "SYSTEMD_PAGER=blank", "PAGER=cat", "dumb", "TERM"],
)
def test_turned_off(tree: Path, marker: str, changes: dict[str, str | None]) -> None:
    env = environ(**{"PAGER": marker, "SYSTEMD_PAGERSECURE": "0", **changes})
    assert on_tty(["--root", str(tree), "list"], env) == direct(tree, "list")


def test_no_pager_option(tree: Path, marker: str) -> None:
    env = environ(SYSTEMD_PAGER=marker, SYSTEMD_PAGERSECURE="0")
    assert on_tty(["--root", str(tree), "list", "--no-pager"], env) == direct(tree, "list")
    assert on_tty(["--no-pager", "--root", str(tree), "--debug", "list"], env) == direct(
        tree, "list"
    )
    args = ["--root", str(tree), "inspect", "-q", "--no-pager", "/srv/images/app"]
    assert on_tty(args, env) == direct(tree, "inspect", "-q", "/srv/images/app")


def test_a_pipe_never_pages(tree: Path, marker: str) -> None:
    env = environ(SYSTEMD_PAGER=marker, SYSTEMD_PAGERSECURE="0")
    assert on_tty(["--root", str(tree), "list"], env, pipe=True) == direct(tree, "list")
    args = ["--root", str(tree), "inspect", "-q", "/srv/images/app"]
    assert on_tty(args, env, pipe=True) == direct(tree, "inspect", "-q", "/srv/images/app")


def test_untrusted_pager_variable_and_no_pager_found(
    tree: Path, marker: str, tmp_path: Path
) -> None:
    # Without $SYSTEMD_PAGERSECURE a named pager only turns paging off, as in systemd; the
    # fallbacks (pager, less, more) are not on this PATH: the output goes out directly.
    empty = tmp_path / "bin"
    empty.mkdir()
    env = environ(SYSTEMD_PAGER=marker, PATH=str(empty))
    assert on_tty(["--root", str(tree), "list"], env) == direct(tree, "list")
    env = environ(SYSTEMD_PAGER=str(tmp_path / "missing"), SYSTEMD_PAGERSECURE="0")
    env["PATH"] = str(empty)
    assert on_tty(["--root", str(tree), "list"], env) == direct(tree, "list")


def test_the_pager_quitting_early_is_quiet(tree: Path, tmp_path: Path) -> None:
    quitter = tmp_path / "quit-pager"
    quitter.write_text("#!/bin/sh\nexec true\n")
    quitter.chmod(0o755)
    env = environ(SYSTEMD_PAGER=str(quitter), SYSTEMD_PAGERSECURE="0")
    # Output far larger than a pipe holds (64 KiB): the writes find the pager gone.
    for name in range(500):
        (tree / f"var/lib/portables/bulk-with-a-long-name-{name:03}-{'x' * 40}").mkdir(parents=True)
    assert on_tty(["--root", str(tree), "list"], env) == ""
