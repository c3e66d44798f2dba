"""The click-free path for plain ``list`` and ``is-attached`` (portable.cli.fast).

Whatever it answers must be what click's path answers, byte for byte; whatever it does not
recognise must be left to click.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_probe import PROBE, fast_path

from portable.cli import guarded
from portable.cli.fast import format_timestamp, run_fast
from portable.cli.group import run_click
from portable.testing.images import service_unit


@pytest.fixture
def root(portable_root, make_image, portable_cli):
    """Three images, one attached (with an extension), one attached --runtime."""
    for name in ("app", "other", "third"):
        make_image(name, units={f"{name}.service": service_unit()})
    ext = portable_root / "srv/ext/app-ext"
    (ext / "usr/lib/extension-release.d").mkdir(parents=True)
    (ext / "usr/lib/extension-release.d/extension-release.app-ext").write_text("ID=_any\n")
    (portable_root / "var/lib/portables").mkdir(parents=True)
    (portable_root / "var/lib/portables/linked").symlink_to("/srv/images/other")
    got = portable_cli("attach", "-q", "--extension", "/srv/ext/app-ext", "/srv/images/app")
    assert got[0] == 0, got
    assert portable_cli("attach", "--runtime", "-q", "/srv/images/third")[0] == 0
    return portable_root


def both(root: Path, args: list[str], capsys) -> tuple[tuple[int, str, str], ...]:
    argv = ["--root", str(root), *args]
    capsys.readouterr()
    answered = []

    fast = guarded(fast_path(argv, answered), debug=False)
    fast_out = capsys.readouterr()
    assert answered == [True], f"{args} was left to click"
    slow = guarded(lambda: run_click(argv), debug=False)
    slow_out = capsys.readouterr()
    return (fast, fast_out.out, fast_out.err), (slow, slow_out.out, slow_out.err)


PLAIN = [
    ["list"],
    ["list", "--no-legend"],
    ["list", "--json"],
    ["list", "--no-pager", "--no-legend", "--no-legend"],
    ["is-attached", "app"],
    ["is-attached", "/srv/images/app"],
    ["is-attached", "third"],
    ["is-attached", "/srv/images/other"],
    ["is-attached", "linked"],
    ["is-attached", "-q", "app"],
    ["is-attached", "app", "--quiet"],
    ["is-attached", "--extension", "/srv/ext/app-ext", "app"],
    ["is-attached", "--extension=/srv/ext/app-ext", "app"],
    ["is-attached", "no-such-image"],
    ["is-attached", "../escape"],
    ["is-attached", "/srv/images/app", "--extension", "/srv/nowhere"],
]


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_plain_calls_answer_as_click_does(root, args, capsys):
    fast, slow = both(root, args, capsys)
    assert fast == slow
    assert fast[1] or fast[2] or "-q" in args or "--quiet" in args


def test_no_verb_is_list(root, capsys):
    fast, slow = both(root, [], capsys)
    assert fast == slow and "images listed" in fast[1]


LEFT_TO_CLICK = [
    ["list", "--help"],
    ["list", "-h"],
    ["list", "extra"],
    ["list", "--bogus"],
    ["--debug", "list"],
    ["--no-plugins", "list"],
    ["--version"],
    ["--help"],
    ["is-attached"],
    ["is-attached", "a", "b"],
    ["is-attached", "--extension"],
    ["is-attached", "--extension", "--quiet", "app"],
    ["is-attached", "--extension=", "app"],
    ["is-attached", "--", "app"],
    ["is-attached", "-", "app"],
    ["is-attached", "-qx", "app"],
    ["inspect", "app", "--help"],
    ["attach", "--bogus", "app"],
    ["profiles"],
    ["help"],
]


@pytest.mark.parametrize("args", LEFT_TO_CLICK, ids=" ".join)
def test_anything_else_is_left_to_click(root, args):
    assert run_fast(["--root", str(root), *args]) is None


@pytest.mark.parametrize("bad", ["/no/such/dir", "FILE"])
def test_a_bad_root_is_left_to_click(tmp_path, bad):
    if bad == "FILE":
        bad = str(tmp_path / "file")
        Path(bad).write_text("")
    assert run_fast(["--root", bad, "list"]) is None
    assert run_fast([f"--root={bad}", "is-attached", "x"]) is None


def test_errors_are_one_line_as_through_click(root, capsys):
    fast, slow = both(root, ["is-attached", "../escape"], capsys)
    assert fast == slow
    assert fast[0] != 0 and fast[1] == "" and fast[2].count("\n") == 1, fast


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
def test_timestamps_as_systemd_prints_them(tz, monkeypatch):
    """Local time, weekday and zone abbreviation; seconds truncated, as systemd prints them
    (checked against datetime, which the click path used before the fast path)."""
    import time
    from datetime import datetime

    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        assert format_timestamp(0) == "-"
        for us in (1_795_626_366_999_999, 1_782_900_000_000_001, 1_000_000):
            want = datetime.fromtimestamp(us // 1_000_000).astimezone()
            assert format_timestamp(us) == want.strftime("%a %Y-%m-%d %H:%M:%S %Z"), (tz, us)
        if tz == "UTC":
            assert format_timestamp(1_795_626_366_999_999) == "Wed 2026-11-25 17:06:06 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_console_script_does_not_import_click_for_them(root):
    def modules(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", PROBE, "--root", str(root), *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]

    for args in (["list"], ["is-attached", "app"], ["list", "--json"]):
        assert modules(*args) == "modules: False False", args  # --root: no manager either
    assert modules("profiles").startswith("modules: True")
