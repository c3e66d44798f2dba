"""Hardening 2 (issue 16) in the box, against portablectl 252 and 257: image paths the drop-in
can't carry, instances of host templates, alias links inside images.

What portablectl does, measured on both boxes (252.39 and 257.13 alike):

* a path that is not UTF-8 (``u8_1$'\\xff'``): "Failed to create bus message: Invalid argument"
  (sd-bus refuses the string), exit 1, for attach, inspect, detach and is-attached. We refuse
  attach and inspect with that line and a hint after it (detach and is-attached still work,
  so what an older version attached can be removed). Before, we attached it and PID 1 ignored
  ``RootDirectory=`` ("String is not UTF-8 clean"): the service ran on the host's root;
* a path with ``%`` or trailing whitespace or a trailing backslash: portablectl writes it as it
  is, and PID 1 expands ``%n`` (another root), ignores ``RootDirectory=`` for an unknown
  specifier such as ``%z`` (the service runs on the host's root, exit 0), strips the space
  (another root) or joins the next line to the path. We refuse these (a difference);
* a name with a space, quotes or backslashes: both write it as it is in ``Environment=PORTABLE=``
  and ``LogExtraFields=``, so PID 1 splits or drops those assignments the same way for both
  (``sp_1 x`` gives ``PORTABLE=sp_1``; ``ev_1 FOO=bar`` also sets ``FOO=bar``, which the image
  could set in its own unit anyway);
* an image's ``getty@tty9.service`` on a host with ``getty@.service``: "Unit file
  'getty@tty9.service' exists on the host already, refusing." (we attached it);
* alias links in the image: portablectl follows an absolute link (Debian's
  ``/etc/systemd/system/redis.service -> /lib/systemd/system/redis-server.service``) on the
  host, finds nothing there and leaves the alias out, as we now do; a relative link
  (``rel.service -> rel-server.service``) it attaches as a second, separate copy of the
  service. We leave every alias out (a difference): ``Alias=`` in ``[Install]`` makes the alias
  with ``--enable``, pointing at the attached unit, for both tools.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from helpers.in_box import run_tool as run

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box

TOOLS = ("portablectl", "portable")
ATTACHED = "/run/systemd/system.attached"
LOOP = "/usr/bin/sh -c 'echo started; while :; do sleep 3600; done'"
U8 = os.fsdecode(b"u8_1\xff")  # a file name that is not UTF-8


def error_line(tool: str, proc: CompletedProcess[str]) -> str:
    """The error, without the words each tool puts before it."""
    assert proc.returncode == 1, proc
    line = proc.stderr.splitlines()[-1]
    for prefix in (
        "portable: error: ",
        "AttachImage failed: ",
        "Failed to inspect image metadata: ",
    ):
        line = line.removeprefix(prefix)
    return line


def attached(box: Box) -> dict[str, str]:
    """Everything in the runtime attached directory: path -> link target or file content."""
    top = box.path(ATTACHED)
    out = {}
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(top))
            out[rel] = "-> " + os.readlink(p) if p.is_symlink() else p.read_text()
    return out


def show(box: Box, unit: str, *props: str) -> dict[str, str]:
    args = ["show", unit] + [f"--property={p}" for p in props]
    return dict(line.split("=", 1) for line in box.systemctl(args).stdout.splitlines())


def image(box_tmp: Path, name: str, units: dict[str, str], **kw: object) -> str:
    make_directory_image(box_tmp / name, units=units, **kw)
    return str(box_tmp / name)


@pytest.fixture
def clean(box: Box) -> Iterator[None]:
    """Whatever a failed test left attached is stopped and removed."""
    yield
    if not box.path(ATTACHED).exists() and not box.path("/run/portables").exists():
        return
    box.run(
        f"for u in $(ls {ATTACHED} 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        f"rm -rf {ATTACHED} /run/portables; systemctl daemon-reload; systemctl reset-failed",
        check=False,
    )


# --- 1. image paths the drop-in can't carry ---------------------------------------------------


def test_non_utf8_image_path_is_refused_as_portablectl(box: Box, box_tmp: Path, clean: None):
    path = image(box_tmp, U8, {"u8.service": service_unit(LOOP)})
    for args in (["attach", "--runtime", "--now", path], ["inspect", path]):
        theirs, ours = (run(box, tool, *args) for tool in TOOLS)
        assert error_line("portablectl", theirs) == "Failed to create bus message: Invalid argument"
        assert error_line("portable", ours).startswith(
            "Failed to create bus message: Invalid argument (image path "
        ), ours
        assert len(ours.stderr.splitlines()) == 1, ours.stderr
    assert not box.path(ATTACHED).exists()
    assert show(box, "u8.service", "LoadState", "ActiveState") == {
        "LoadState": "not-found",
        "ActiveState": "inactive",
    }


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("pz_1%z", "contains '%' (systemd expands it as a specifier)"),
        ("ws_1 ", "begins or ends with whitespace (systemd strips it)"),
        ("bk_1\\", "ends with a backslash (systemd would join the next line to it)"),
    ],
)
def test_image_path_pid1_would_read_otherwise_is_refused(
    box: Box, box_tmp: Path, clean: None, name: str, why: str
):
    """A difference: portablectl attaches these (see the module docstring); with ``%z``
    PID 1 drops RootDirectory= and the service runs on the host's root."""
    path = image(box_tmp, name, {f"{name[:2]}.service": service_unit(LOOP)})
    ours = run(box, "portable", "attach", "--runtime", "--now", path, name[:2])
    assert error_line("portable", ours) == (
        f"Image path '{path}' {why}, so it can't be written as RootDirectory= in a unit file, "
        "refusing."
    )
    assert not box.path(ATTACHED).exists()
    if "%z" in name:  # the hole, in portablectl: attached, started, and no RootDirectory=
        theirs = run(box, "portablectl", "attach", "--runtime", "--now", path, name[:2])
        assert theirs.returncode == 0, theirs
        assert show(box, "pz.service", "RootDirectory")["RootDirectory"] == ""
        run(box, "portablectl", "detach", "--runtime", "--now", path)


@pytest.mark.parametrize("name", ["sp_1 x", 'qu_1"x', "bs_1\\q", "ev_1 FOO=bar"])
def test_odd_image_names_are_written_and_read_as_portablectls(
    box: Box, box_tmp: Path, clean: None, name: str
):
    """The same 20-portable.conf as portablectl's, so PID 1 splits (or drops) Environment=
    and LogExtraFields= the same way: for ``sp_1 x`` PORTABLE=sp_1, for ``qu_1"x`` nothing."""
    path = image(box_tmp, name, {f"{name[:2]}.service": service_unit(LOOP)})
    unit = f"{name[:2]}.service"
    seen = {}
    for tool in TOOLS:
        proc = run(box, tool, "attach", "--runtime", path, name[:2])
        assert proc.returncode == 0, proc
        props = show(box, unit, "RootDirectory", "Environment", "LogExtraFields", "LoadState")
        seen[tool] = (box.path(f"{ATTACHED}/{unit}.d/20-portable.conf").read_bytes(), props)
        proc = run(box, tool, "detach", "--runtime", path)
        assert proc.returncode == 0, proc
    assert seen["portable"] == seen["portablectl"]
    props = seen["portable"][1]
    assert props["RootDirectory"] == path and props["LoadState"] == "loaded"
    if name == "sp_1 x":
        assert props["Environment"] == "PORTABLE=sp_1"


# --- 2. an instance of a host template --------------------------------------------------------


def test_instance_of_a_host_template_is_refused_as_portablectl(
    box: Box, box_tmp: Path, clean: None
):
    assert box.path("/usr/lib/systemd/system/getty@.service").exists()
    path = image(box_tmp, "getty_1", {"getty@tty9.service": service_unit(LOOP)})
    theirs, ours = (run(box, tool, "attach", "--runtime", "--now", path) for tool in TOOLS)
    assert (
        error_line("portable", ours)
        == error_line("portablectl", theirs)
        == ("Unit file 'getty@tty9.service' exists on the host already, refusing.")
    )
    assert not box.path(ATTACHED).exists()
    assert show(box, "getty@tty9.service", "FragmentPath")["FragmentPath"] in (
        "/lib/systemd/system/getty@.service",
        "/usr/lib/systemd/system/getty@.service",
    )


# --- 3. alias links inside images --------------------------------------------------------------


def test_debian_alias_link_is_left_out_as_portablectl(box: Box, box_tmp: Path, clean: None):
    """As Debian's redis-server ships it: Alias=redis.service in [Install], and the link
    enabling made. Both tools attach redis-server.service alone; --enable makes the alias."""
    unit = service_unit(LOOP).replace("WantedBy=", "Alias=redis.service\nWantedBy=")
    path = image(
        box_tmp,
        "redis_1",
        {"redis-server.service": unit},
        symlinks={"etc/systemd/system/redis.service": "/lib/systemd/system/redis-server.service"},
    )
    seen = {}
    for tool in TOOLS:
        proc = run(box, tool, "attach", "--runtime", "--enable", path)
        assert proc.returncode == 0, proc
        ids = {u: show(box, u, "Id")["Id"] for u in ("redis.service", "redis-server.service")}
        seen[tool] = (attached(box), ids)
        proc = run(box, tool, "detach", "--runtime", "--enable", path)
        assert proc.returncode == 0, proc
        assert not box.path(ATTACHED).exists()
    assert seen["portable"] == seen["portablectl"]
    files, ids = seen["portable"]
    assert sorted(files) == [
        "multi-user.target.wants/redis-server.service",
        "redis-server.service",
        "redis-server.service.d/10-profile.conf",
        "redis-server.service.d/20-portable.conf",
        "redis.service",  # the alias enable makes, to the attached unit
    ]
    assert files["redis.service"] == f"-> {ATTACHED}/redis-server.service"
    assert ids == {
        "redis.service": "redis-server.service",
        "redis-server.service": "redis-server.service",
    }


def test_relative_alias_link_is_left_out(box: Box, box_tmp: Path, clean: None):
    """A difference: portablectl attaches ``rel.service -> rel-server.service`` as a second,
    separate unit (its own copy, drop-ins and process); we leave it out, and --enable makes
    it an alias of the attached unit from Alias=."""
    unit = service_unit(LOOP).replace("WantedBy=", "Alias=rel.service\nWantedBy=")
    path = image(
        box_tmp,
        "rel_1",
        {"rel-server.service": unit},
        symlinks={"usr/lib/systemd/system/rel.service": "rel-server.service"},
    )
    theirs = run(box, "portablectl", "attach", "--runtime", path)
    assert theirs.returncode == 0, theirs
    assert show(box, "rel.service", "Id")["Id"] == "rel.service"  # the duplicate
    assert run(box, "portablectl", "detach", "--runtime", path).returncode == 0
    ours = run(box, "portable", "attach", "--runtime", path)
    assert ours.returncode == 0, ours
    assert sorted(os.listdir(box.path(ATTACHED))) == ["rel-server.service", "rel-server.service.d"]
    assert show(box, "rel.service", "LoadState")["LoadState"] == "not-found"
    assert run(box, "portable", "detach", "--runtime", path).returncode == 0
    ours = run(box, "portable", "attach", "--runtime", "--enable", path)
    assert ours.returncode == 0, ours
    assert show(box, "rel.service", "Id")["Id"] == "rel-server.service"
    assert run(box, "portable", "detach", "--runtime", "--enable", path).returncode == 0
    assert not box.path(ATTACHED).exists()
