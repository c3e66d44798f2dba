"""Shell completion through click (issue 14, item 6): verbs, options, image names in the
search path, profile names; ``portable completion SHELL`` prints the script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portable.testing.images import service_unit


def complete(root: Path | None, words: str, **env: str) -> list[str]:
    """The bash completions for ``words`` (the last one is being completed; a trailing
    space starts a new one)."""
    split = words.split(" ")
    if root is not None:
        split[1:1] = ["--root", str(root)]
    got = subprocess.run(
        [sys.executable, "-m", "portable"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "_PORTABLE_COMPLETE": "bash_complete",
            "COMP_WORDS": " ".join(split),
            "COMP_CWORD": str(len(split) - 1),
            **env,
        },
        check=True,
    )
    assert got.stderr == ""
    return [line.split(",", 1)[1] for line in got.stdout.splitlines() if line]


@pytest.fixture
def root(portable_root, make_image):
    for name in ("app", "apache", "other"):
        make_image(name, units={f"{name}.service": service_unit()})
    (portable_root / "var/lib/portables").mkdir(parents=True)
    for name in ("app", "apache", "other"):
        (portable_root / "var/lib/portables" / name).symlink_to(f"/srv/images/{name}")
    return portable_root


def test_the_fast_path_steps_aside(root):
    out = complete(root, "portable ")
    assert "list" in out and "attach" in out and "completion" in out
    assert "NAME" not in " ".join(out)  # not the image table


def test_verbs(root):
    assert complete(root, "portable at") == ["attach"]
    assert complete(root, "portable is") == ["is-attached"]
    assert complete(None, "portable re") == ["reattach", "read-only", "remove"]


def test_options(root):
    assert "--no-legend" in complete(root, "portable list --")
    assert {"--runtime", "--now", "--profile"} <= set(complete(root, "portable attach --"))
    assert "--no-plugins" in complete(None, "portable --")


@pytest.mark.parametrize(
    "verb", ["attach", "detach", "inspect", "is-attached", "reattach", "security", "remove"]
)
def test_image_names_in_the_search_path(root, verb):
    assert complete(root, f"portable {verb} ap") == ["apache", "app"]
    assert complete(root, f"portable {verb} ") == ["apache", "app", "other"]


def test_first_argument_of_read_only_and_set_limit(root):
    assert complete(root, "portable read-only o") == ["other"]
    assert complete(root, "portable set-limit other ") == []


def test_a_path_is_left_to_the_shell(root):
    assert complete(root, "portable attach /srv/im") == ["/srv/im"]


@pytest.mark.parametrize("spelling", ["--profile ", "-p "])
def test_profile_names(root, spelling):
    out = complete(root, f"portable attach {spelling}")
    assert {"default", "strict", "trusted", "nonetwork"} <= set(out)
    assert complete(root, f"portable inspect {spelling}st") == ["strict"]
    assert complete(root, "portable profile show tr") == ["trusted"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script(shell):
    got = subprocess.run(
        [sys.executable, "-m", "portable", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "_PORTABLE_COMPLETE" in got.stdout and got.stderr == ""
    assert f"{shell}_complete" in got.stdout


def test_completion_of_an_unknown_shell_is_one_line():
    got = subprocess.run(
        [sys.executable, "-m", "portable", "completion", "tcsh"],
        capture_output=True,
        text=True,
    )
    assert got.returncode != 0 and got.stdout == "" and got.stderr.count("\n") == 1
