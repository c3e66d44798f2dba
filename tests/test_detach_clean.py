"""``detach --clean`` without a box: the CleanUnit conversation (a scripted manager) and the
command line (help, refusal with --root). The real thing is in test_box_detach_clean.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner

from portable.cli import build_cli, main
from portable.engine.detach import clean_units, detach
from portable.errors import PortableError
from portable.plugin.registry import get_registry
from portable.plugin.types import DetachOptions
from portable.systemd.host import Host
from portable.systemd.manager import Manager, ManagerError
from portable.testing.images import make_directory_image, service_unit

BUSY = "org.freedesktop.systemd1.UnitBusy"
NOTHING = "org.freedesktop.systemd1.NothingToClean"
NOT_SUPPORTED = "org.freedesktop.DBus.Error.NotSupported"
INVALID = "org.freedesktop.DBus.Error.InvalidArgs"


class FakeManager:
    """Answers CleanUnit as a systemd of ``version`` does (messages as measured on 252)."""

    def __init__(
        self,
        states: dict[str, str],
        *,
        version: int = 257,
        nothing: Sequence[str] = (),
        results: dict[str, str] | None = None,
    ) -> None:
        self.states = states
        self.version = version
        self.nothing = set(nothing)
        self.results = results or {}
        self.calls: list[tuple[Any, ...]] = []

    def clean_unit(self, name: str, what: Sequence[str]) -> None:
        self.calls.append(("clean", name, list(what)))
        err = f"Failed to call CleanUnit on {name}"
        if "fdstore" in what and self.version < 254:
            raise ManagerError(f"{err}: Invalid resource type: fdstore", error_name=INVALID)
        if name.endswith(".path"):
            msg = f"Unit '{name}' does not support cleaning."
            raise ManagerError(f"{err}: {msg}", error_name=NOT_SUPPORTED)
        if self.states.get(name, "inactive") != "inactive":
            msg = "Unit is not inactive or has pending job."
            raise ManagerError(f"{err}: {msg}", error_name=BUSY)
        if name in self.nothing or (name.endswith(".timer") and what != ["state"]):
            raise ManagerError(f"{err}: No matching resources found.", error_name=NOTHING)

    def reset_failed_unit(self, name: str) -> None:
        self.calls.append(("reset-failed", name))
        if self.states.get(name) == "failed":
            self.states[name] = "inactive"

    def active_state(self, name: str) -> str:
        return self.states.get(name, "inactive")

    def wait_cleaned(self, name: str) -> str:
        self.calls.append(("wait", name))
        return self.results.get(name, "success" if name.endswith(".service") else "")


def run_clean(fake: FakeManager, names: Sequence[str]) -> tuple[list[str], list[str]]:
    return clean_units(cast(Manager, fake), names)


def test_all_and_fdstore_as_portablectl_257():
    fake = FakeManager({})
    assert run_clean(fake, ["a.service", "b.socket"]) == (["a.service", "b.socket"], [])
    assert fake.calls == [
        ("clean", "a.service", ["all", "fdstore"]),
        ("clean", "b.socket", ["all", "fdstore"]),
        ("wait", "a.service"),
        ("wait", "b.socket"),
    ]


def test_systemd_252_is_asked_once_with_fdstore_then_without():
    fake = FakeManager({}, version=252)
    assert run_clean(fake, ["a.service", "b.service"]) == (["a.service", "b.service"], [])
    assert [c for c in fake.calls if c[0] == "clean"] == [
        ("clean", "a.service", ["all", "fdstore"]),
        ("clean", "a.service", ["all"]),
        ("clean", "b.service", ["all"]),  # remembered for the next units
    ]


def test_running_unit_is_reported_and_the_others_are_still_cleaned():
    fake = FakeManager({"a.service": "active"})
    cleaned, errors = run_clean(fake, ["a.service", "b.service"])
    assert cleaned == ["b.service"]
    assert errors == [
        "Failed to call CleanUnit on a.service: Unit is not inactive or has pending job. "
        "(a.service is still active, its data is kept: --now stops it first)"
    ]


@pytest.mark.parametrize("version", [252, 257])
def test_failed_unit_is_reset_then_cleaned(version):
    fake = FakeManager({"a.service": "failed"}, version=version)
    assert run_clean(fake, ["a.service"]) == (["a.service"], [])
    kinds = ["all"] if version < 254 else ["all", "fdstore"]
    assert fake.calls[-3:] == [
        ("reset-failed", "a.service"),
        ("clean", "a.service", kinds),
        ("wait", "a.service"),
    ]


def test_nothing_to_clean_and_unsupported_types_are_no_failure():
    fake = FakeManager({}, nothing=["b.socket"])
    assert run_clean(fake, ["a.path", "b.socket", "c.service"]) == (["c.service"], [])
    assert ("wait", "b.socket") not in fake.calls


def test_templates_are_skipped_and_timers_cleaned_of_their_stamp():
    fake = FakeManager({})
    assert run_clean(fake, ["a@.service", "a.timer"]) == (["a.timer"], [])
    assert fake.calls == [("clean", "a.timer", ["state"]), ("wait", "a.timer")]


def test_a_failed_or_endless_clean_is_reported():
    fake = FakeManager({}, results={"a.service": "exit-code", "b.service": "timeout"})
    cleaned, errors = run_clean(fake, ["a.service", "b.service"])
    assert cleaned == []
    assert errors == [
        "Cleaning a.service failed: result 'exit-code' (see 'journalctl -u a.service')",
        "b.service is still being cleaned, not waiting for it any longer",
    ]


# --- the library and the command line without a service manager ------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    make_directory_image(r / "srv/foo_1", units={"foo.service": service_unit()}, busybox=False)
    return r


def attached(root: Path) -> list[str]:
    where = root / "etc/systemd/system.attached"
    return sorted(p.name for p in where.iterdir()) if where.exists() else []


def test_library_refuses_clean_without_manager(root):
    with pytest.raises(SystemExit) as info:
        main(["--root", str(root), "attach", "-q", "/srv/foo_1"])
    assert info.value.code == 0
    with pytest.raises(PortableError, match=r"^--clean needs the service manager"):
        detach("/srv/foo_1", DetachOptions(), host=Host(root), registry=get_registry(), clean=True)
    assert attached(root) == ["foo.service", "foo.service.d"]


def test_cli_refuses_clean_with_root(root, capsys):
    with pytest.raises(SystemExit):
        main(["--root", str(root), "attach", "-q", "/srv/foo_1"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["--root", str(root), "detach", "--now", "--clean", "/srv/foo_1"])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err == (
        "portable: error: --clean needs the service manager to remove the units' data; "
        "it can't be used with --root\n"
    )
    assert attached(root) == ["foo.service", "foo.service.d"]  # nothing detached either


def test_help_lists_clean():
    result = CliRunner().invoke(build_cli(), ["detach", "--help"])
    assert result.exit_code == 0
    assert "--clean" in result.output
    assert "state, cache, logs and runtime" in " ".join(result.output.split())
