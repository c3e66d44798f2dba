"""``detach --clean`` against a real systemd: the service's directories go, the image stays.

A service with StateDirectory=, CacheDirectory=, LogsDirectory=, ConfigurationDirectory= and
RuntimeDirectory= (kept over a stop with RuntimeDirectoryPreserve=) writes a file into each; the
default profile's DynamicUser=yes puts most of them under .../private/. Where the box runs
systemd >= 256, portablectl's own ``detach --now --clean`` is compared on the same image.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.in_box import state

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box

KINDS = ("STATE", "CACHE", "LOGS", "CONFIGURATION", "RUNTIME")
NAMES = ("cln", "cln-idle", "busy", "flop", "inplace", "cmp")


def data_paths(name: str) -> list[str]:
    """Everywhere systemd may keep ``name``'s directories (with and without DynamicUser=)."""
    return [
        f"{base}{private}/{name}"
        for base in ("/var/lib", "/var/cache", "/var/log", "/run")
        for private in ("", "/private")
    ] + [f"/etc/{name}"]


def data_unit(name: str, *, fail_on_stop: bool = False) -> str:
    """A service that writes one file into each of its five directories, then waits; with
    ``fail_on_stop`` it exits 3 on SIGTERM, so a stop leaves it failed."""
    writes = " ".join(f"${k}_DIRECTORY" for k in KINDS)
    wait = (
        'trap "exit 3" TERM; while :; do sleep 1; done' if fail_on_stop else "exec sleep infinity"
    )
    body = f"for d in {writes}; do echo {name} > $d/data; done; {wait}"
    extra = "".join(f"{k.capitalize()}Directory={name}\n" for k in KINDS)
    return service_unit(f"/usr/bin/sh -c '{body}'", extra=extra + "RuntimeDirectoryPreserve=yes\n")


def existing(box: Box, paths: list[str]) -> list[str]:
    """The paths (files, directories or symlinks) that exist in the box."""
    quoted = " ".join(paths)
    out = box.run(f"for p in {quoted}; do if [ -e $p ] || [ -L $p ]; then echo $p; fi; done")
    return out.stdout.split()


def data_files(name: str) -> list[str]:
    """The files the service writes, by the names it sees (private/ links resolve to them)."""
    return [f"{d}/{name}/data" for d in ("/var/lib", "/var/cache", "/var/log", "/etc", "/run")]


def wait_for_data(box: Box, name: str) -> None:
    deadline = time.monotonic() + 15
    while len(existing(box, data_files(name))) < len(KINDS):
        assert time.monotonic() < deadline, f"{name} did not write its data"
        time.sleep(0.1)


def loaded(box: Box, name: str) -> str:
    out = box.systemctl(["list-units", "--all", "--plain", "--no-legend", f"{name}*"])
    return out.stdout.strip()


def jobs_numbered_n(text: str) -> str:
    return re.sub(r"/job/\d+", "/job/N", text)


@pytest.fixture
def cleanup(box: Box) -> Iterator[None]:
    """Stop and drop whatever a test left, its services' data directories included."""
    yield
    data = " ".join(p for n in NAMES for p in data_paths(n))
    box.run(
        "for d in /run/systemd/system.attached /etc/systemd/system.attached; do "
        "for u in $(ls $d 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        "rm -rf $d; done; rm -rf /run/portables /etc/portables; "
        f"for n in {' '.join(NAMES)}; do systemctl stop $n.service; done; "
        f"systemctl reset-failed; rm -rf {data}; systemctl daemon-reload",
        check=False,
    )


def detach_messages(name: str, img: Path, units: list[str]) -> str:
    """What ``detach --now --clean`` prints for a persistent attach of ``units``."""
    where = "/etc/systemd/system.attached"
    lines = [f"(Matching unit files with prefix '{name}'.)"]
    lines += [
        f"Queued /org/freedesktop/systemd1/job/N to call StopUnit on portable service {u}."
        for u in units
    ]
    for u in units:
        lines += [
            f"Removed {where}/{u}.",
            f"Removed {where}/{u}.d/10-profile.conf.",
            f"Removed {where}/{u}.d/20-portable.conf.",
            f"Removed {where}/{u}.d.",
        ]
    lines += [f"Removed /etc/portables/{img.name}.", f"Removed {where}."]
    return "\n".join(lines) + "\n"


def test_detach_now_clean_removes_the_data_and_without_it_stays(box, box_tmp, cleanup):
    img = make_directory_image(
        box_tmp / "cln_1",
        units={"cln.service": data_unit("cln"), "cln-idle.service": service_unit()},
    )
    box.portable(["attach", "--now", "-q", str(img)])
    wait_for_data(box, "cln")
    box.portable(["detach", "--now", "-q", str(img)])
    assert state(box, str(img)) == "detached"
    assert existing(box, data_files("cln")) == data_files("cln")  # kept without --clean

    box.portable(["attach", "--now", "-q", str(img)])
    r = box.portable(["detach", "--now", "--clean", str(img)])
    # cln-idle.service has nothing to clean: no error, as for a unit that has
    assert jobs_numbered_n(r.stderr) == detach_messages(
        "cln", img, ["cln-idle.service", "cln.service"]
    )
    assert existing(box, data_paths("cln")) == []
    assert state(box, str(img)) == "detached"
    assert loaded(box, "cln") == ""


def test_running_unit_refuses_detach_before_cleaning_anything(box, box_tmp, cleanup):
    img = make_directory_image(
        box_tmp / "busy_1",
        units={"busy.service": data_unit("busy"), "busy-idle.service": service_unit()},
    )
    box.portable(["attach", "--now", "-q", str(img)])
    wait_for_data(box, "busy")
    box.systemctl(["stop", "busy-idle.service"])  # only busy.service runs
    r = box.portable(["detach", "--clean", str(img)], check=False)
    # As without --clean: refused; and no data is removed by a detach that does not happen
    # (portablectl 257 cleans the stopped units first, then fails).
    assert (r.returncode, r.stderr) == (
        1,
        "portable: error: Unit file 'busy.service' is active, can't detach. "
        "(use --now to stop it first)\n",
    )
    assert state(box, str(img)) == "running"
    assert existing(box, data_files("busy")) == data_files("busy")

    # --force detaches it running; its data can't be cleaned then, and that is an error.
    r = box.portable(["detach", "--force", "--clean", "-q", str(img)], check=False)
    assert r.returncode == 1
    assert r.stderr == (
        "portable: error: Failed to call CleanUnit on busy.service: Unit is not inactive or "
        "has pending job. (busy.service is still active, its data is kept: --now stops it "
        "first)\n"
    )
    assert state(box, str(img)) == "detached"
    assert existing(box, data_files("busy")) == data_files("busy")


def test_unit_failed_on_stop_is_reset_and_cleaned(box, box_tmp, cleanup):
    # Failed after the stop, which PID 1 refuses to clean (portablectl 257 then leaves the
    # data); --clean resets the failed state first.
    img = make_directory_image(
        box_tmp / "flop_1", units={"flop.service": data_unit("flop", fail_on_stop=True)}
    )
    box.portable(["attach", "--now", "-q", str(img)])
    wait_for_data(box, "flop")
    r = box.portable(["detach", "--now", "--clean", "-q", str(img)])
    assert r.stderr == ""
    assert existing(box, data_paths("flop")) == []
    assert loaded(box, "flop") == ""


def test_image_placed_in_etc_portables_survives(box, cleanup):
    # systemd 256+'s detach removes /etc/portables/<image> recursively, the image itself when
    # it was put there (systemd issue #40020); ours removes only links and --copy'd images.
    img = make_directory_image(
        box.path("/etc/portables/inplace_1"), units={"inplace.service": data_unit("inplace")}
    )
    before = sorted(str(p.relative_to(img)) for p in img.rglob("*"))
    box.portable(["attach", "--now", "-q", "inplace_1"])
    wait_for_data(box, "inplace")
    r = box.portable(["detach", "--now", "--clean", "inplace_1"])
    assert "Removed /etc/portables" not in r.stderr
    # (systemd adds mount points for the directories inside a writable image; nothing goes)
    assert set(before) <= {str(p.relative_to(img)) for p in img.rglob("*")}
    assert existing(box, data_paths("inplace")) == []
    assert state(box, "inplace_1") == "detached"


@pytest.mark.systemd(min=256)  # portablectl has detach --clean since 256
def test_same_as_portablectl(box, box_tmp, cleanup):
    img = make_directory_image(box_tmp / "cmp_1", units={"cmp.service": data_unit("cmp")})
    outcome = {}
    for tool in ("portable", "portablectl"):
        run = getattr(box, tool)
        run(["attach", "--now", "-q", str(img)])
        wait_for_data(box, "cmp")
        before = existing(box, data_paths("cmp"))
        r = run(["detach", "--now", "--clean", str(img)], check=False)
        after = existing(box, data_paths("cmp"))
        assert loaded(box, "cmp") == "", tool
        assert state(box, str(img)) == "detached", tool
        outcome[tool] = (r.returncode, jobs_numbered_n(r.stderr), before, after)
    assert outcome["portable"] == outcome["portablectl"]
    assert outcome["portable"][3] == []
    assert outcome["portable"][1] == detach_messages("cmp", img, ["cmp.service"])
