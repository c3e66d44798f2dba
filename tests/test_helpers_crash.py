"""The crash switch of the sweeps (tests/helpers/crash.py) sees every kind of step.

It counts by wrapping what the transaction calls, told apart by caller: a rename in
``portable.engine.transaction`` would make it blind to a kind of step, and the sweeps would
quietly kill at fewer points. (Killing itself is what the sweeps test: test_attach.py,
test_hostile.py, test_hardening_root.py, the box's test_box_crash.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.crash import STEP_KINDS, count_steps

from portable.cli import main
from portable.testing.images import make_directory_image, service_unit


def test_every_kind_of_step_is_counted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PORTABLE_SERVICES_NO_PLUGINS", "1")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=host\n")
    for version, units in (
        ("1", ("foo.service", "foo-old.service")),
        ("2", ("foo.service", "foo-new.service")),
    ):
        make_directory_image(
            root / f"srv/foo_{version}",
            units={u: service_unit(f"/{version}") for u in units},
            os_release="ID=x\n",
            busybox=False,
        )
    seen: dict[str, list[str]] = {}
    verb = ""
    undo = count_steps(lambda kind: seen.setdefault(verb, []).append(kind))
    try:
        for verb, image in (("attach", "/srv/foo_1"), ("reattach", "/srv/foo_2")):
            with pytest.raises(SystemExit) as exit_:
                main(["--root", str(root), verb, "--runtime", image])
            assert exit_.value.code in (0, None)
        verb = "detach"
        with pytest.raises(SystemExit) as exit_:
            main(["--root", str(root), "detach", "--runtime", "/srv/foo_2"])
        assert exit_.value.code in (0, None)
    finally:
        undo()
    assert set(seen["attach"]) == {"mkdir", "write", "symlink", "place"}, seen
    assert set(seen["reattach"]) == set(STEP_KINDS), seen
    assert set(seen["detach"]) == {"remove", "commit"}, seen
