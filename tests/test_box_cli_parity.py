"""The CLI points of issue 14 against systemd's own portablectl, in a real systemd.

One session box per systemd (252 and 257), a few small directory images, nothing left behind:

* reattach (item 1): ``portablectl reattach`` without ``-p`` silently drops an image attached
  with ``--profile strict`` to ``default`` (asserted: the documented difference); ours keeps
  ``strict`` without a word, and ``-p default`` changes it with one line;
* options anywhere (item 4): ``-q list``, ``list --no-legend``, ``is-attached --no-pager NAME``
  and friends give portablectl's exit status and stdout, with an image attached and without;
* list as a non-root user (item 5): an image attached from inside a 0700 directory, listed by
  ``nobody``: the same NAME and STATE columns as portablectl's (which asks portabled, running as
  root; TYPE, RO, the times and USAGE need the image itself, which nobody can't reach here, so
  those columns may differ and are not compared);
* detach of a running image (item 8): both refuse with portablectl's sentence, ours with the
  ``(use --now to stop it first)`` hint on the same line, the same exit status;
* ``--no-pager`` is accepted by ``inspect`` and ``detach`` of both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box

PREFIX = "portable: error: "
ATTACHED = "/etc/systemd/system.attached"
LOOP = "/usr/bin/sh -c 'while :; do sleep 3600; done'"
# runuser aborts in the box ("Critical error - immediate abort": its PAM session can't be
# opened there); setpriv switches the same way without PAM.
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


def result(done: CompletedProcess[str]) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def clean(box: Box) -> Iterator[None]:
    """Stop and detach whatever a test left, so one failure doesn't cascade."""
    yield
    box.run(
        f"for d in /run/systemd/system.attached {ATTACHED}; do "
        "for u in $(ls $d 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        "rm -rf $d; done; rm -rf /run/portables /etc/portables; systemctl daemon-reload",
        check=False,
    )


def images_in(d: Path, *names: str) -> list[Path]:
    """Directory images ``d``/NAME, each with a service NAME-before-'_'.service that can run
    (described as NAME, so versions tell apart)."""
    return [
        make_directory_image(
            d / name,
            units={f"{name.split('_')[0]}.service": service_unit(LOOP, description=name)},
        )
        for name in names
    ]


def profile_line(box: Box, unit: str) -> str:
    """The first line of ``unit``'s 10-profile.conf (a link to, or copy of, the profile)."""
    text = box.run(["cat", f"{ATTACHED}/{unit}.d/10-profile.conf"]).stdout
    return text.splitlines()[0]


def private_network(box: Box, unit: str) -> str:
    return box.systemctl(["show", "-p", "PrivateNetwork", "--value", unit]).stdout.strip()


def test_reattach_keeps_the_profile_where_portablectl_drops_it(
    box: Box, box_tmp: Path, clean: None
) -> None:
    theirs = images_in(box_tmp / "theirs", "ctl_1", "ctl_2")
    box.portablectl(["attach", "-q", "--profile", "strict", str(theirs[0])])
    assert profile_line(box, "ctl.service").startswith('# The "strict"')
    box.portablectl(["reattach", "-q", str(theirs[1])])
    # the documented difference: portablectl reattaches with its defaults
    assert profile_line(box, "ctl.service").startswith('# The "default"')
    assert private_network(box, "ctl.service") == "no"
    box.portablectl(["detach", "-q", str(theirs[1])])

    ours = images_in(box_tmp / "ours", "our_1", "our_2", "our_3")
    box.portable(["attach", "-q", "--profile", "strict", str(ours[0])])
    done = box.portable(["reattach", str(ours[1])])
    assert profile_line(box, "our.service").startswith('# The "strict"')
    assert private_network(box, "our.service") == "yes"
    assert "Description=our_2\n" in box.run(["cat", f"{ATTACHED}/our.service"]).stdout
    assert "changes from" not in done.stderr and "portable: " not in done.stderr
    done = box.portable(["reattach", "-p", "default", str(ours[2])])
    assert profile_line(box, "our.service").startswith('# The "default"')
    assert private_network(box, "our.service") == "no"
    changes = [line for line in done.stderr.splitlines() if line.startswith("portable: ")]
    assert changes == ["portable: profile changes from 'strict' to 'default' (as --profile says)"]
    box.portable(["detach", "-q", str(ours[2])])
    assert box.run(["ls", "-A", ATTACHED], check=False).stdout == ""
    assert box.portable(["is-attached", str(ours[2])], check=False).stdout == "detached\n"


SPELLINGS = [
    ["-q", "list"],
    ["--no-legend", "list"],
    ["list", "--no-legend"],
    ["--no-pager", "list"],
    ["--no-ask-password", "list"],
    ["is-attached", "--no-pager", "{name}"],
]


def test_options_anywhere_as_portablectl(box: Box, box_tmp: Path, clean: None) -> None:
    (img,) = images_in(box_tmp, "opt_1")
    for attached in (False, True):
        if attached:
            box.portablectl(["attach", "-q", str(img)])
        for spelling in SPELLINGS:
            args = [a.format(name="opt_1") for a in spelling]
            theirs = box.portablectl(args, check=False)
            ours = box.portable(args, check=False)
            assert ours.returncode == theirs.returncode, (attached, args, theirs, ours)
            assert ours.stdout == theirs.stdout, (attached, args, theirs, ours)
    box.portablectl(["detach", "-q", str(img)])


def test_no_pager_on_inspect_and_detach(box: Box, box_tmp: Path, clean: None) -> None:
    (img,) = images_in(box_tmp, "pager_1")
    theirs = box.portablectl(["inspect", "--no-pager", str(img)], check=False)
    ours = box.portable(["inspect", "--no-pager", str(img)], check=False)
    assert theirs.returncode == 0 and result(ours) == result(theirs)
    for tool in (box.portablectl, box.portable):
        tool(["attach", "-q", str(img)])
        done = tool(["detach", "--no-pager", "-q", str(img)], check=False)
        assert done.returncode == 0, (tool, done)
        assert box.portable(["is-attached", str(img)], check=False).stdout == "detached\n"


def test_list_as_nobody_names_and_states_as_portablectl(
    box: Box, box_tmp: Path, clean: None
) -> None:
    probe = box.run([*NOBODY, str(box.python_executable), "-c", "import portable"], check=False)
    if probe.returncode != 0:
        pytest.skip(f"nobody can't run {box.python_executable} in the box: {probe.stderr[-200:]}")
    top = box_tmp / "x"
    (img,) = images_in(top / "0700dir", "img_1")
    box.run(["chmod", "755", str(box_tmp), str(top)])
    box.run(["chmod", "700", str(top / "0700dir")])
    assert box.run([*NOBODY, "ls", str(img)], check=False).returncode  # really out of reach
    box.portablectl(["attach", "-q", str(img)])

    def rows(args: list[str]) -> list[list[str]]:
        done = box.run([*NOBODY, *args, "list", "--no-legend"])
        assert done.stderr == ""
        return [[line.split()[0], line.split()[-1]] for line in done.stdout.splitlines()]

    theirs = rows(["portablectl"])
    ours = rows([str(box.python_executable), "-m", "portable"])
    assert ["img_1", "attached"] in theirs
    assert ours == theirs
    box.portablectl(["detach", "-q", str(img)])


def test_detach_running_refused_with_portablectls_sentence(
    box: Box, box_tmp: Path, clean: None
) -> None:
    (img,) = images_in(box_tmp, "run_1")
    box.portablectl(["attach", "-q", "--now", str(img)])
    assert box.systemctl(["is-active", "run.service"]).stdout == "active\n"
    theirs = box.portablectl(["detach", str(img)], check=False)
    ours = box.portable(["detach", str(img)], check=False)
    # portablectl names the D-Bus method it called first ("DetachImage failed: "); ours calls
    # none and says "portable: error: " instead, as for every error
    sentence = "Unit file 'run.service' is active, can't detach."
    assert result(theirs) == (1, "", f"DetachImage failed: {sentence}\n")
    assert result(ours) == (1, "", f"{PREFIX}{sentence} (use --now to stop it first)\n")
    assert box.systemctl(["is-active", "run.service"]).stdout == "active\n"  # nothing undone
    box.portablectl(["detach", "-q", "--now", str(img)])
