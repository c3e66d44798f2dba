"""The click-free ``list``/``is-attached`` (portable.cli.fast) against a real systemd.

Enabled and running states come from the manager, which they reach only when an image is
attached: with none attached they neither load jeepney nor connect.
"""

from __future__ import annotations

import pytest
from cli_probe import PROBE

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box


def test_states_from_the_manager_as_portablectl(box: Box, box_tmp) -> None:
    img = make_directory_image(
        box_tmp / "fastapp", units={"fastapp.service": service_unit("/usr/bin/sleep 1000")}
    )
    try:
        # Nothing attached: no manager needed.
        for args in (["list"], ["is-attached", str(img)]):
            out = box.python(["-c", PROBE, *args]).stdout
            assert out.endswith("modules: False False\n"), (args, out)
        assert box.portable(["is-attached", str(img)]).stdout == "detached\n"
        for attach, want in (
            (["attach", "--runtime", "-q"], "attached-runtime"),
            (["attach", "--runtime", "--now", "-q"], "running-runtime"),
            (["attach", "--now", "-q"], "running"),
        ):
            box.portable([*attach, str(img)])
            ours = box.python(["-c", PROBE, "is-attached", str(img)]).stdout
            theirs = box.portablectl(["is-attached", str(img)]).stdout
            assert theirs == f"{want}\n"
            assert ours == f"{want}\nmodules: False True\n", ours
            listed = box.python(["-c", PROBE, "list"]).stdout
            assert f" {want}\n" in listed and listed.endswith("modules: False True\n")
            runtime = ["--runtime"] if "--runtime" in attach else []
            box.portable(["detach", "--now", *runtime, "-q", str(img)])
    finally:
        box.run(
            ["sh", "-c", f"portablectl detach --runtime {img}; portablectl detach {img}"],
            check=False,
        )
