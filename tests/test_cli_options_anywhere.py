"""Options anywhere on the line, as portablectl takes them (issue 14, item 4).

portablectl's getopt permutes: ``portablectl -q list`` and ``portablectl list --no-legend`` are
the same call. Here the root group's options are moved before the verb and portablectl's
options after it; those a verb has no use for are ignored, as portablectl ignores them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.runners import fork_run

from portable.cli import normalize_args
from portable.cli.fast import run_fast
from portable.testing.images import service_unit


def run(root: Path, *args: str) -> tuple[int, str, str]:
    """``portable ARGS`` on the forking runner, in ``root``, TZ=UTC, not completing."""
    got = fork_run(list(args), {"TZ": "UTC"}, unset=("_PORTABLE_COMPLETE",), cwd=root)
    return got.returncode, got.stdout, got.stderr


@pytest.fixture
def root(portable_root, make_image):
    make_image("app", units={"app.service": service_unit()})
    (portable_root / "var/lib/portables").mkdir(parents=True)
    (portable_root / "var/lib/portables/app").symlink_to("/srv/images/app")
    return portable_root


SAME_AS = [
    # (spelling, the plain spelling it must equal)
    (["-q", "list"], ["list"]),
    (["--quiet", "list"], ["list"]),
    (["--no-legend", "list"], ["list", "--no-legend"]),
    (["list", "--no-legend"], ["list", "--no-legend"]),
    (["--json", "list"], ["list", "--json"]),
    (["--no-pager", "list"], ["list"]),
    (["--no-ask-password", "list"], ["list"]),
    (["list", "--no-ask-password", "-q"], ["list"]),
    (["--no-legend"], ["list", "--no-legend"]),
    (["-q", "is-attached", "app"], ["is-attached", "-q", "app"]),
    (["is-attached", "app", "--no-pager", "--no-legend"], ["is-attached", "app"]),
    (["--no-ask-password", "is-attached", "app"], ["is-attached", "app"]),
    (["is-attached", "app", "--now"], ["is-attached", "app"]),
    (["--cat", "inspect", "app"], ["inspect", "--cat", "app"]),
    (["--no-pager", "-q", "inspect", "app"], ["inspect", "app", "--quiet"]),
    (["inspect", "app", "--no-ask-password", "--now"], ["inspect", "app"]),
    (["-p", "strict", "inspect", "app"], ["inspect", "--profile=strict", "app"]),
]


@pytest.mark.parametrize(("spelling", "plain"), SAME_AS, ids=lambda a: " ".join(a))
def test_options_anywhere_answer_as_the_plain_spelling(root, spelling, plain):
    want = run(root, "--root", str(root), *plain)
    assert want[0] == 0, want
    assert run(root, "--root", str(root), *spelling) == want
    # the root group's options after the verb too
    assert run(root, *spelling, "--root", str(root)) == want
    assert run(root, *spelling, f"--root={root}") == want


@pytest.mark.parametrize(
    "args",
    [["-q", "list"], ["--no-legend", "list"], ["list", "--root", "R", "-q"], ["--json"]],
    ids=" ".join,
)
def test_the_fast_path_takes_them(root, args):
    args = [str(root) if a == "R" else a for a in args]
    if "--root" not in args:
        args = ["--root", str(root), *args]
    assert run_fast(args) == 0


@pytest.mark.parametrize(
    "args",
    [["-H", "host", "list"], ["list", "-H", "host"], ["list", "--machine=c"], ["-Mc", "list"]],
    ids=" ".join,
)
def test_host_and_machine_go_to_the_remote_wherever_they_are(root, args, monkeypatch):
    # portable.remote takes them (tests/test_box_fleet_remote.py runs them on real hosts);
    # here there is no ssh and no container "c": one line naming the target, no network.
    monkeypatch.setenv("PORTABLE_SSH", "/nonexistent/ssh")
    status, out, err = run(root, "--root", str(root), *args)
    assert (status, out) == (1, "")
    assert err.count("\n") == 1, err
    assert err.startswith(("portable: error: host: ", "portable: error: c: ")), err


def test_our_own_options_are_not_dropped(root):
    # --json is ours: a verb without it says so, rather than ignoring it
    status, _, err = run(root, "--root", str(root), "is-attached", "app", "--json")
    assert status != 0 and "--json" in err and err.count("\n") == 1


def test_unknown_options_before_the_verb_stay_clicks(root):
    status, out, err = run(root, "--root", str(root), "--bogus", "list")
    assert status != 0 and out == "" and "--bogus" in err


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["-q", "list"], (["list", "-q"], 0)),
        (["list", "--root", "/x"], (["--root", "/x", "list"], 2)),
        (
            ["-p", "strict", "--debug", "attach", "a"],
            (["--debug", "attach", "-p", "strict", "a"], 1),
        ),
        (["attach", "a", "--", "--root"], (["attach", "a", "--", "--root"], 0)),
        (["--bogus", "list"], (["--bogus", "list"], None)),
        (["--root", "/x"], (["--root", "/x"], None)),
        (["-q"], (["list", "-q"], 0)),
        ([], ([], None)),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else "",
)
def test_normalize_args(args, want):
    assert normalize_args(args) == want
