"""``inspect`` and ``security`` show the sandbox floor findings attach refuses (issue 16), and
inspect does not pass an image's terminal escapes on (with --root: no box)."""

from __future__ import annotations

import json

import pytest
from helpers.runners import run_main as run

from portable.cli.inspect import terminal_safe
from portable.testing.images import make_directory_image, service_unit

HOSTILE = service_unit("+/usr/bin/true", extra="BindReadOnlyPaths=/etc:/mnt\nUser=root\n")
FINDINGS = [
    "foo.service:5: ExecStart=+/usr/bin/true: runs with full privileges, outside the sandbox "
    "(the host's files are reachable through /proc/1/root)",
    "foo.service:6: BindReadOnlyPaths=/etc:/mnt: makes a path of the host visible inside the "
    "service",
    "foo.service:7: User=root: undoes what profile 'default' sets: Service runs as root "
    "(User=/DynamicUser=)",
    "foo.socket:2: ListenStream=/etc/x.sock: makes (or replaces) a file on the host outside "
    "/run/NAME, NAME being the image's",
]
NONE = "(none: attach would not refuse any unit setting)"
ESCAPES = 'PRETTY_NAME="T \x1b[31mred\x1b]52;c;aGk=\x07 \x1b]8;;http://x\x1b\\link\r"\n'
SHOWN = "T \\x1b[31mred\\x1b]52;c;aGk=\\x07 \\x1b]8;;http://x\\x1b\\link\\r"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    make_directory_image(
        r / "srv/foo_1",
        busybox=True,
        os_release=f"ID=t\n{ESCAPES}PORTABLE_PRETTY_NAME=Foo\n",
        units={
            "foo.service": HOSTILE,
            "foo-ok.service": service_unit(),
            "foo.socket": "[Socket]\nListenStream=/etc/x.sock\n",
        },
    )
    make_directory_image(
        r / "srv/clean_1",
        busybox=True,
        os_release='ID=t\nPRETTY_NAME="T OS"\n',
        units={"clean.service": service_unit()},
    )
    return r


def test_inspect_lists_the_findings_after_portablectls_output(root, capsys):
    code, out, err = run(["--root", str(root), "inspect", "/srv/foo_1"], capsys)
    assert code == 0, err  # a report: attach is what refuses
    assert out == (
        "Image:\n\t/srv/foo_1\nPortable Service:\n\tFoo\nOperating System:\n"
        f"\t{SHOWN}\n"
        "Unit files:\n\tfoo-ok.service\n\tfoo.service\n\tfoo.socket\n"
        "Sandbox floor (profile 'default'):\n" + "".join(f"\t{f}\n" for f in FINDINGS)
    )
    # the same lines attach refuses with
    code, _, err = run(["--root", str(root), "attach", "/srv/foo_1"], capsys)
    assert code == 1 and all(f"  {f}\n" in err for f in FINDINGS)


def test_inspect_cat_block_after_the_files(root, capsys):
    code, out, err = run(["--root", str(root), "inspect", "--cat", "/srv/foo_1"], capsys)
    assert code == 0
    assert out.startswith(f'-- OS Release: --\nID=t\nPRETTY_NAME="{SHOWN}"\n')
    assert out.endswith(
        "\n-- Unit file: foo.socket --\n[Socket]\nListenStream=/etc/x.sock\n"
        "\n-- Sandbox floor (profile 'default'): --\n" + "".join(f"{f}\n" for f in FINDINGS)
    )
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out


@pytest.mark.parametrize("cat", [False, True], ids=["plain", "cat"])
def test_inspect_profile(root, capsys, cat):
    flags = ["--cat"] if cat else []
    code, out, _ = run(
        ["--root", str(root), "inspect", *flags, "-p", "trusted", "/srv/foo_1"], capsys
    )
    assert code == 0
    tail = (
        "\n-- Sandbox floor (profile 'trusted'): --\n"
        if cat
        else "Sandbox floor (profile 'trusted'):\n\t"
    )
    assert out.endswith(f"{tail}{NONE}\n")
    code, out, _ = run(
        ["--root", str(root), "inspect", *flags, "-p", "strict", "/srv/foo_1"], capsys
    )
    assert "User=root: undoes what profile 'strict' sets" in out
    # no findings, no --profile: nothing added, the output stays portablectl's
    code, out, _ = run(["--root", str(root), "inspect", *flags, "/srv/clean_1"], capsys)
    assert "Sandbox floor" not in out
    assert out.endswith("clean.service\n" if not cat else "WantedBy=multi-user.target\n")
    code, out, _ = run(
        ["--root", str(root), "inspect", *flags, "-p", "default", "/srv/clean_1"], capsys
    )
    tail = "-- Sandbox floor (profile 'default'): --\n" if cat else "(profile 'default'):\n\t"
    assert out.endswith(f"{tail}{NONE}\n")


def test_inspect_json(root, capsys):
    code, out, _ = run(["--root", str(root), "inspect", "--json", "--cat", "/srv/foo_1"], capsys)
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out  # json escapes them
    doc = json.loads(out)
    assert doc["operating_system"] == ESCAPES.split('"')[1]
    floor = doc["floor"]
    assert floor["profile"] == "default"
    assert [(f["unit"], f["line"], f["setting"]) for f in floor["findings"]] == [
        ("foo.service", 5, "ExecStart"),
        ("foo.service", 6, "BindReadOnlyPaths"),
        ("foo.service", 7, "User"),
        ("foo.socket", 2, "ListenStream"),
    ]
    assert floor["findings"][1]["value"] == "/etc:/mnt"
    _, out, _ = run(
        ["--root", str(root), "inspect", "--json", "-p", "trusted", "/srv/foo_1"], capsys
    )
    assert json.loads(out)["floor"] == {"profile": "trusted", "findings": []}


def test_inspect_escapes_unit_files(root, capsys):
    # (names can't carry them: image paths and unit names with control characters are refused)
    unit = service_unit(description="x\x1b[2J\x9b31m\x00y")
    make_directory_image(root / "srv/esc_1", busybox=True, units={"esc.service": unit})
    code, out, err = run(["--root", str(root), "inspect", "--cat", "/srv/esc_1"], capsys)
    assert code == 0, err
    assert "\n-- Unit file: esc.service --\n[Unit]\nDescription=x\\x1b[2J\\x9b31m\\x00y\n" in out


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"plain\ttext\n", b"plain\ttext\n"),  # unchanged, byte for byte
        ("caf\u00e9 \u2713\n".encode(), "caf\u00e9 \u2713\n".encode()),
        (b"a\x1b[2Jb\x07\x7f\r\n", b"a\\x1b[2Jb\\x07\\x7f\\r\n"),
        ("csi \u009b1m".encode(), b"csi \\x9b1m"),  # C1 control as UTF-8
        (b"latin1 \x9b1m \xe9\n", b"latin1 \\x9b1m \xe9\n"),  # a stray C1 byte; others kept
    ],
)
def test_terminal_safe(raw, shown):
    assert terminal_safe(raw) == shown


def test_security_shows_the_findings(root, capsys):
    code, out, err = run(["--root", str(root), "security", "/srv/foo_1"], capsys)
    assert code == 0, err
    assert out.endswith(
        "\n\nSandbox floor (profile 'default'):\n" + "".join(f"\t{f}\n" for f in FINDINGS)
    )
    code, out, _ = run(["--root", str(root), "security", "-p", "trusted", "/srv/foo_1"], capsys)
    assert out.endswith(f"Sandbox floor (profile 'trusted'):\n\t{NONE}\n")
    code, out, _ = run(["--root", str(root), "security", "--json", "/srv/foo_1"], capsys)
    docs = json.loads(out)
    assert [d["unit"] for d in docs] == ["foo-ok.service", "foo.service"]
    ok, bad = (d["floor"] for d in docs)
    assert ok["profile"] == bad["profile"] == "default" and ok["findings"] == []
    assert [f["setting"] for f in bad["findings"]] == ["ExecStart", "BindReadOnlyPaths", "User"]
    # the socket has no score of its own: every result carries its findings
    assert (
        [f["unit"] for f in ok["other_units"]]
        == ["foo.socket"]
        == [f["unit"] for f in bad["other_units"]]
    )


def test_security_of_attached_units_uses_the_recorded_profile(root, capsys):
    allow = "--allow-setting=ExecStart,BindReadOnlyPaths,User,ListenStream"
    code, _, err = run(["--root", str(root), "attach", "-q", allow, "/srv/foo_1"], capsys)
    assert code == 0, err
    # the image as attached, and one attached unit: the profile its 10-profile.conf names
    code, out, err = run(["--root", str(root), "security", "/srv/foo_1"], capsys)
    assert "(foo.service: as attached.)" in err
    assert out.endswith(
        "Sandbox floor (profile 'default'):\n" + "".join(f"\t{f}\n" for f in FINDINGS)
    )
    code, out, _ = run(["--root", str(root), "security", "foo.service"], capsys)
    assert out.endswith(
        "Sandbox floor (profile 'default'):\n" + "".join(f"\t{f}\n" for f in FINDINGS[:3])
    )
    code, out, _ = run(["--root", str(root), "security", "-p", "strict", "foo.service"], capsys)
    assert "User=root: undoes what profile 'strict' sets" in out
    code, out, _ = run(["--root", str(root), "security", "--json", "foo-ok.service"], capsys)
    (doc,) = json.loads(out)
    assert doc["floor"] == {"profile": "default", "findings": [], "other_units": []}


def test_security_of_a_unit_not_from_an_image_has_no_floor(root, capsys):
    (root / "srv/x.service").write_text(HOSTILE)
    code, out, err = run(["--root", str(root), "security", "/srv/x.service"], capsys)
    assert code == 0, err
    assert "Sandbox floor" not in out
    code, out, _ = run(["--root", str(root), "security", "--json", "/srv/x.service"], capsys)
    assert json.loads(out)[0]["floor"] is None
