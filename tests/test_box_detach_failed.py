"""detach --now of a unit that ends up failed: PID 1 forgets it (ours), not a `not-found failed`
entry left behind (portablectl, on 252 and 257)."""

from __future__ import annotations

import pytest

from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

# Runs, and fails when stopped: ExecStop= exits 1, so the stop leaves it "failed".
FAILS_ON_STOP = (
    "[Service]\nExecStart=/usr/bin/sh -c 'while :; do sleep 3600; done'\nExecStop=/usr/bin/false\n"
)


def tool(box, which):
    return (
        ["portablectl"]
        if which == "portablectl"
        else [str(box.python_executable), "-m", "portable"]
    )


def load_and_active(box, unit):
    out = box.systemctl(["show", "-P", "LoadState", "-P", "ActiveState", unit]).stdout
    return tuple(out.split())


@pytest.mark.parametrize("which", ["portablectl", "portable"])
def test_a_unit_failed_by_its_stop_is_forgotten(box, box_tmp, which):
    img = make_directory_image(box_tmp / "ff_1", units={"ff.service": FAILS_ON_STOP})
    try:
        box.run([*tool(box, which), "attach", "--runtime", "--now", "-q", str(img)])
        assert load_and_active(box, "ff.service") == ("loaded", "active")
        r = box.run([*tool(box, which), "detach", "--runtime", "--now", str(img)], check=False)
        assert r.returncode == 0, r.stderr
        if which == "portablectl":
            # the difference: portablectl leaves PID 1 holding a failed unit without a file
            assert load_and_active(box, "ff.service") == ("not-found", "failed")
        else:
            assert load_and_active(box, "ff.service") == ("not-found", "inactive")
            units = box.systemctl(["list-units", "--all", "--plain", "--no-legend", "ff.service"])
            assert units.stdout.strip() == ""
    finally:
        box.systemctl(["reset-failed", "ff.service"], check=False)
