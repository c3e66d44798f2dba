"""The command line: help for every verb, one-line errors, exit codes, entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers.runners import run_main as run

from portable.cli import COMMANDS, build_cli
from portable.testing.images import make_directory_image, service_unit


@pytest.mark.parametrize("verb", [*COMMANDS, None])
def test_every_verb_has_help(verb):
    args = [verb, "--help"] if verb else ["--help"]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_group_help_lists_verbs_and_switches():
    result = CliRunner().invoke(build_cli(), ["--help"])
    for verb in COMMANDS:
        assert verb in result.output
    assert "PORTABLE_SERVICES_NO_PLUGINS" in result.output
    assert "--root" in result.output


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    make_directory_image(
        r / "srv/foo_1.2",
        units={"foo.service": service_unit()},
        busybox=True,  # runnable: inspect says nothing more than portablectl
        os_release='ID=t\nPRETTY_NAME="T OS"\nPORTABLE_PRETTY_NAME="Foo"\n',
    )
    return r


def test_inspect_text(root, capsys):
    code, out, err = run(["--root", str(root), "inspect", "/srv/foo_1.2"], capsys)
    assert code == 0
    assert err == "(Matching unit files with prefix 'foo'.)\n"
    assert out == (
        "Image:\n\t/srv/foo_1.2\nPortable Service:\n\tFoo\nOperating System:\n\tT OS\n"
        "Unit files:\n\tfoo.service\n"
    )


def test_inspect_cat_and_quiet(root, capsys):
    code, out, err = run(["--root", str(root), "inspect", "--cat", "-q", "/srv/foo_1.2"], capsys)
    assert code == 0 and err == ""
    assert out.startswith("-- OS Release: --\nID=t\n")
    assert "\n-- Unit file: foo.service --\n[Unit]\n" in out


def test_inspect_json(root, capsys):
    code, out, err = run(["--root", str(root), "inspect", "--json", "/srv/foo_1.2"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["image"] == "/srv/foo_1.2" and doc["format"] == "directory"
    assert [u["name"] for u in doc["units"]] == ["foo.service"]
    assert doc["os_release"]["PORTABLE_PRETTY_NAME"] == "Foo"
    # the score the service would get attached with the default profile (a RootDirectory= unit),
    # graded as the root's systemd: it has none, so the newest known, 257 (252: 3.3 and 1.0)
    assert doc["exposure"] == [
        {"unit": "foo.service", "profile": "default", "value": 3.1, "verdict": "OK"}
    ]
    code, out, err = run(
        ["--root", str(root), "inspect", "--json", "-p", "strict", "/srv/foo_1.2"], capsys
    )
    assert json.loads(out)["exposure"][0]["value"] == 0.8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "/srv/nothing"], "Cannot normalize specified image path '/srv/nothing'"),
        (["inspect", "nothing"], "No image 'nothing' found."),
        (["inspect", "/srv/foo_1.2", "bar"], "Couldn't find any matching unit files"),
        (["inspect", "/srv/foo_1.2/"], None),  # trailing slash is fine (v257 behaviour)
        (["inspect", "/srv/b@d_1"], "Failed to extract prefix"),
        (["bogus-verb"], "No such command 'bogus-verb'"),
        (["inspect", "--bogus", "x"], "No such option"),
        (["inspect"], "Missing argument 'IMAGE'"),
    ],
)
def test_user_errors_are_one_line(root, capsys, args, message):
    code, out, err = run(["--root", str(root), *args], capsys)
    if message is None:
        assert code == 0
        return
    assert code != 0
    assert err.count("\n") == 1, err
    assert err.startswith("portable: error: ") and message in err
    assert "Traceback" not in err


def test_prefix_error_for_bad_image_name(tmp_path, capsys):
    r = tmp_path / "root"
    make_directory_image(r / "srv/b@d", units={"x.service": service_unit()}, busybox=False)
    code, out, err = run(["--root", str(r), "inspect", "/srv/b@d"], capsys)
    assert code == 1
    assert err == (
        "portable: error: Failed to extract prefix of image name '/srv/b@d': Invalid argument\n"
    )


def test_list_default_verb_and_json(root, capsys):
    code, out, err = run(["--root", str(root)], capsys)
    assert (code, out) == (0, "No images.\n")
    code, out, err = run(["--root", str(root), "list", "--json"], capsys)
    assert json.loads(out) == []


def test_bad_root(tmp_path, capsys):
    code, out, err = run(["--root", str(tmp_path / "missing"), "list"], capsys)
    assert code != 0 and err.startswith("portable: error: ")


def test_ambiguous_name_warning(root, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "foo_1.2").write_text("")
    code, out, err = run(["--root", str(root), "inspect", "foo_1.2"], capsys)
    assert "Ambiguous invocation" in err


def test_python_dash_m_and_console_script(root):
    for cmd in ([sys.executable, "-m", "portable"], [str(__import__("shutil").which("portable"))]):
        if cmd[0] == "None":
            continue
        proc = subprocess.run(
            [*cmd, "--root", str(root), "inspect", "-q", "/srv/foo_1.2"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "foo.service" in proc.stdout


def test_version():
    result = CliRunner().invoke(build_cli(), ["--version"])
    assert result.exit_code == 0 and "portable-services" in result.output


@pytest.mark.parametrize(
    ("lib", "says"),
    [
        (None, "follows systemd 257 (none found: the newest known)"),
        (
            "usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so",
            "follows systemd 252 (installed)",
        ),
        (
            "usr/lib/systemd/libsystemd-shared-258.1-1.so",
            "follows systemd 258.1-1 (installed, behaves as 257)",
        ),
    ],
)
def test_version_names_the_systemd_of_the_root(tmp_path, lib, says):
    if lib is not None:
        (tmp_path / lib).parent.mkdir(parents=True)
        (tmp_path / lib).touch()
    proc = subprocess.run(
        [sys.executable, "-m", "portable", "--root", str(tmp_path), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["portable-services 0.1.0", says]


@pytest.mark.parametrize("args", [["list"], ["inspect", "/srv/foo_1.2"]])
def test_output_closed_or_full(root, args):
    """Output closed (``>&-``): nothing shown, success, as with click. Output on a full device:
    one line and exit 1, not an internal error nor Python's "Exception ignored" at exit."""
    cmd = [sys.executable, "-m", "portable", "--root", str(root), *args]
    closed = subprocess.run(
        [*cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    assert closed.returncode == 0, closed.stderr
    closed = subprocess.run(
        ["sh", "-c", '"$@" >&-', "sh", *cmd], capture_output=True, text=True, check=False
    )
    assert closed.returncode == 0 and "error" not in closed.stderr, closed.stderr
    with open("/dev/full", "w") as full:
        r = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    errors = [line for line in r.stderr.splitlines() if line.startswith("portable: error")]
    assert r.returncode == 1, r.stderr
    assert errors == ["portable: error: No space left on device"] or errors == [
        "portable: error: cannot write the output: No space left on device"
    ], r.stderr
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr
