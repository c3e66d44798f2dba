"""Units an interrupted reattach removed without stopping them ("orphans"): found and stopped.

A reattach killed after removing the old version's unit files but before stopping the units
that went away leaves them running, loaded from a file that is gone (until the next
daemon-reload). :func:`portable.engine.activation.orphaned_units` finds them (``FragmentPath`` in an
attached directory, the file gone, the name matching the image's prefix); the re-run of the
reattach and ``detach --now`` stop them. test_box_crash.py kills a real reattach at every step;
here the state it leaves is made directly, and the limits are checked: never a host unit,
another image's unit, or a template's instance. The first tests use a fake manager (no box).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from helpers.in_box import active

from portable.engine.activation import orphaned_units
from portable.engine.detach import orphan_prefixes
from portable.systemd.host import Host
from portable.systemd.manager import LoadedUnit
from portable.testing.box import Box
from portable.testing.images import make_directory_image

if TYPE_CHECKING:
    from portable.systemd.manager import Manager

RUN = "/run/systemd/system.attached"
ETC = "/etc/systemd/system.attached"


class FakeManager:
    """``list_units``/``fragment_path`` from a table: unit name -> (load state, fragment)."""

    def __init__(self, units: dict[str, tuple[str, str]]) -> None:
        self.units = units
        self.calls: list[tuple[str, object]] = []

    def list_units(
        self, patterns: Sequence[str] = (), *, states: Sequence[str] = ()
    ) -> list[LoadedUnit]:
        import fnmatch

        self.calls.append(("list_units", tuple(patterns)))
        return [
            LoadedUnit(name=n, load_state=load, active_state="active", path=f"/unit/{n}")
            for n, (load, _) in self.units.items()
            if not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns)
        ]

    def fragment_path(self, unit: LoadedUnit) -> str:
        self.calls.append(("fragment_path", unit.name))
        return self.units[unit.name][1]


def find(manager: FakeManager, host: Host, prefixes: list[str]) -> list[str]:
    return orphaned_units(cast("Manager", manager), host, prefixes)


@pytest.fixture
def root(tmp_path: Path) -> Host:
    for d in (RUN, ETC):
        (tmp_path / d.lstrip("/")).mkdir(parents=True)
    return Host(root=tmp_path)


def _touch(host: Host, path: str) -> None:
    host.path(path).write_text("[Service]\nExecStart=/bin/true\n")


def test_finds_loaded_units_whose_attached_file_is_gone(root: Host) -> None:
    _touch(root, f"{RUN}/app.service")
    manager = FakeManager(
        {
            "app.service": ("loaded", f"{RUN}/app.service"),  # still attached
            "app-old.service": ("loaded", f"{RUN}/app-old.service"),  # gone: an orphan
            "app-etc.socket": ("loaded", f"{ETC}/app-etc.socket"),  # gone, persistent
            "app-host.service": ("loaded", "/run/systemd/system/app-host.service"),  # host
            "app-gone.service": ("not-found", ""),  # after a reload: unknowable
            "app-masked.service": ("masked", "/dev/null"),
            "app@x.service": ("loaded", f"{RUN}/app@.service"),  # instance: left alone
            "apple.service": ("loaded", f"{RUN}/apple.service"),  # another prefix
            "other.service": ("loaded", f"{RUN}/other.service"),
        }
    )
    assert find(manager, root, ["app"]) == ["app-etc.socket", "app-old.service"]
    assert manager.calls[0] == ("list_units", ("app.*", "app-*", "app@*"))
    # One listing; the fragment read only for units without a file of their name.
    read = sorted(str(w) for c, w in manager.calls if c == "fragment_path")
    assert read == ["app-etc.socket", "app-host.service", "app-old.service"]


def test_nothing_left_behind_costs_one_call(root: Host) -> None:
    _touch(root, f"{RUN}/app.service")
    _touch(root, f"{ETC}/app-b.service")
    manager = FakeManager(
        {
            "app.service": ("loaded", f"{RUN}/app.service"),
            "app-b.service": ("loaded", f"{ETC}/app-b.service"),
        }
    )
    assert find(manager, root, ["app"]) == []
    assert manager.calls == [("list_units", ("app.*", "app-*", "app@*"))]


def test_never_all_units(root: Host) -> None:
    manager = FakeManager({"x.service": ("loaded", f"{RUN}/x.service")})
    assert find(manager, root, []) == []
    assert manager.calls == []
    assert orphan_prefixes("/srv/app_1", ("-",), systemd=257) == ("app",)
    assert orphan_prefixes("/srv/app_1", (), systemd=257) == ("app",)
    assert orphan_prefixes("/srv/app_1", ("x", "y"), systemd=257) == ("x", "y")


def test_glob_characters_in_a_prefix_are_matched_literally(root: Host) -> None:
    manager = FakeManager(
        {
            "a*b.service": ("loaded", f"{RUN}/a*b.service"),
            "axb.service": ("loaded", f"{RUN}/axb.service"),
        }
    )
    assert find(manager, root, ["a*b"]) == ["a*b.service"]
    assert manager.calls[0] == ("list_units", ("*",))


# --- in the box ------------------------------------------------------------------------------

LOOP = "/usr/bin/sh -c 'while :; do sleep 3600; done'"


def unit(extra: str = "") -> str:
    return (
        f"[Unit]\nDescription=orphan test\n\n[Service]\nExecStart={LOOP}\n{extra}\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


@pytest.fixture
def clean(box: Box) -> Iterator[None]:
    yield
    box.run(
        "for u in $(systemctl list-units --all --plain --no-legend 'app*' 'other*' "
        "| cut -d' ' -f1); do systemctl stop $u; done; "
        f"rm -rf {RUN} /run/portables /run/systemd/system/app-host.service; "
        "systemctl daemon-reload",
        check=False,
    )


def orphan(box: Box, name: str) -> None:
    """Remove an attached unit's files without stopping it, as a killed reattach does."""
    box.run(f"rm -rf {RUN}/{name} {RUN}/{name}.d")


@pytest.mark.box
def test_detach_now_stops_orphans(box: Box, box_tmp: Path, clean: None) -> None:
    img = make_directory_image(
        box_tmp / "app_1", units={"app.service": unit(), "app-old.service": unit()}
    )
    box.portable(["attach", "--runtime", "--enable", "--now", str(img)])
    orphan(box, "app-old.service")
    assert active(box, "app-old.service") == "active"
    out = box.portable(["detach", "--runtime", "--enable", "--now", str(img)]).stderr
    assert "call StopUnit on portable service app-old.service" in out
    assert active(box, "app-old.service") != "active"
    assert active(box, "app.service") != "active"
    # Disabled too: no enable link left, so the attached directory is gone.
    assert not box.path(RUN).exists(), sorted(map(str, box.path(RUN).rglob("*")))


@pytest.mark.box
def test_reattach_now_stops_orphans_only_once(box: Box, box_tmp: Path, clean: None) -> None:
    v1 = make_directory_image(
        box_tmp / "app_1", units={"app.service": unit(), "app-old.service": unit()}
    )
    v2 = make_directory_image(box_tmp / "app_2", units={"app.service": unit("Environment=V=2")})
    box.portable(["attach", "--runtime", "--now", str(v1)])
    box.run(f"mkdir -p {RUN}/app-gone.service.d")
    box.path(f"{RUN}/app-gone.service").write_text(unit())
    box.systemctl(["daemon-reload"])
    box.systemctl(["start", "app-gone.service"])
    orphan(box, "app-gone.service")
    out = box.portable(["reattach", "--runtime", "--now", str(v2)]).stderr
    # app-old.service went away in this run, app-gone.service in an earlier one.
    assert out.count("call StopUnit on portable service app-old.service") == 1, out
    assert out.count("call StopUnit on portable service app-gone.service") == 1, out
    for name in ("app-old.service", "app-gone.service"):
        assert active(box, name) != "active", name
    assert active(box, "app.service") == "active"
    box.portable(["detach", "--runtime", "--now", str(v2)])


@pytest.mark.box
def test_never_a_host_unit_another_image_or_an_instance(
    box: Box, box_tmp: Path, clean: None
) -> None:
    app = make_directory_image(
        box_tmp / "app_1", units={"app.service": unit(), "app-t@.service": unit()}
    )
    other = make_directory_image(box_tmp / "other_1", units={"other.service": unit()})
    box.portable(["attach", "--runtime", "--now", str(app)])
    box.portable(["attach", "--runtime", "--now", str(other)])
    box.systemctl(["start", "app-t@x.service"])
    # A host unit with the image's prefix, its file removed without a reload.
    box.path("/run/systemd/system/app-host.service").write_text(unit())
    box.systemctl(["daemon-reload"])
    box.systemctl(["start", "app-host.service"])
    box.run("rm /run/systemd/system/app-host.service")
    orphan(box, "other.service")  # another image's orphan
    orphan(box, "app-t@.service")  # the template of a running instance
    out = box.portable(["detach", "--runtime", "--now", str(app)]).stderr
    assert "StopUnit on portable service app.service" in out
    for name in ("app-host.service", "other.service", "app-t@x.service"):
        assert name not in out, (name, out)
        assert active(box, name) == "active", name
