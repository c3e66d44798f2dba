"""``portable -H/-M``: the verbs' options are read as the local command line reads them, with
the options plugins add (portable.cli.group.verb_command); a remote with only systemd (the
portabled path, portable.remote.portabled.run_verb) refuses each plugin option in one line
naming the option and the host, before anything is sent there."""

from __future__ import annotations

import pytest

from portable.remote.cli import _image_slots, _verb_command
from portable.remote.portabled import run_verb
from portable.remote.transport import LocalTransport, RemoteError


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--netns", "/srv/app_1.raw"], "--netns"),
        (["--netns-subnet", "10.3.0.0/30", "app_1"], "--netns-subnet"),
        (["--max-exposure=5", "app_1"], "--max-exposure"),
    ],
)
def test_plugin_option_refused_where_only_systemd_is(args: list[str], option: str) -> None:
    command = _verb_command("attach", [])
    with pytest.raises(RemoteError) as refused:
        run_verb(LocalTransport("box2"), "attach", command, args, [])
    assert (
        str(refused.value) == f"box2: {option} needs portable installed there; it has only systemd"
    )


def test_core_only_option_still_refused() -> None:
    command = _verb_command("attach", [])
    with pytest.raises(RemoteError, match=r"^box2: --strict-image needs portable installed"):
        run_verb(LocalTransport("box2"), "attach", command, ["--strict-image", "app_1"], [])


def test_an_option_value_is_not_an_image_path() -> None:
    """A plugin option's value with a '/' is the option's, not an image to ship."""
    command = _verb_command("attach", [])
    rest = ["--netns-subnet", "10.3.0.0/30", "/srv/app_1.raw"]
    assert _image_slots(command, rest) == [(2, "arg")]


def test_verbs_without_plugin_options_are_the_bare_commands() -> None:
    names = {o for p in _verb_command("list", []).params for o in p.opts}
    assert "--netns" not in names
    assert "--netns" in {o for p in _verb_command("reattach", []).params for o in p.opts}
