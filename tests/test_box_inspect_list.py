"""inspect and list against systemd's own portablectl, on the same images in a real systemd.

Our output must be what portablectl prints: the same units selected, the same os-release facts,
the same table. The one intended difference (a unit that is an absolute symlink resolves inside
the image) is asserted explicitly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def images(box: Box) -> Path:
    """Several directory images in one directory visible inside the box."""
    d = box.mkdtemp(prefix="inspect-")
    make_directory_image(d / "hello_1.0", template=EXAMPLES / "hello", os_release=None)
    unit = service_unit("/usr/bin/sleep 1000")
    make_directory_image(
        d / "foo_1.2",
        os_release='ID=debian\nVERSION_ID=12\nPRETTY_NAME="Test OS 12"\n'
        'PORTABLE_PRETTY_NAME="Foo Portable"\n',
        units={
            "foo.service": unit,
            "foo-bar.service": unit,
            "foo@.service": unit,
            "foo.socket": "[Socket]\nListenStream=/run/foo.sock\n",
            "foo.timer": "[Timer]\nOnCalendar=daily\n",
            "foo.x.path": "[Path]\nPathExists=/tmp/x\n",
            "foobar.service": unit,
            "bar.service": unit,
            "foo.mount": "[Mount]\nWhat=/x\nWhere=/y\n",
            "foo-empty.service": "",
        },
        files={"etc/systemd/system/foo.service": "# the image's /etc copy\n" + unit},
    )
    # os-release only in /usr/lib, odd quoting, no PORTABLE_PRETTY_NAME; units in /etc only
    img = make_directory_image(
        d / "quirky",
        os_release="# comment\nID=q\nPRETTY_NAME='single \"quoted\"'\n  VERSION_ID = 3\n",
        unit_dir="/etc/systemd/system",
        units={"quirky.service": unit, "quirky-x@.service": unit, "quirky.target": "[Unit]\n"},
    )
    (img / "etc/os-release").unlink()
    # a unit directory reached through a relative symlink inside the image
    img = make_directory_image(d / "linked_2", units={}, unit_dir="/opt/units")
    (img / "opt/units/linked.service").write_text(unit)
    (img / "usr/local/lib/systemd").mkdir(parents=True)
    (img / "usr/local/lib/systemd/system").symlink_to("../../../../opt/units")
    return d


def both(box: Box, args: list[str]) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    theirs = box.portablectl(args, check=False)
    ours = box.portable(args, check=False)
    return (
        (theirs.returncode, theirs.stdout, theirs.stderr),
        (ours.returncode, ours.stdout, ours.stderr),
    )


CASES = [
    ("hello_1.0", []),
    ("hello_1.0", ["hello-tick"]),
    ("hello_1.0", ["-"]),
    ("foo_1.2", []),
    ("foo_1.2", ["-"]),
    ("foo_1.2", ["foobar", "bar"]),
    ("foo_1.2", ["foo.socket"]),
    ("quirky", []),
    ("linked_2", []),
]


@pytest.mark.parametrize("cat", [False, True], ids=["plain", "cat"])
@pytest.mark.parametrize(("image", "prefixes"), CASES)
def test_inspect_same_as_portablectl(box, images, image, prefixes, cat):
    args = ["inspect", *(["--cat"] if cat else []), str(images / image), *prefixes]
    theirs, ours = both(box, args)
    assert theirs[0] == 0, theirs
    assert ours == theirs


def test_inspect_by_name_same_as_portablectl(box, images):
    box.run(["mkdir", "-p", "/var/lib/portables"])
    box.run(["ln", "-sfn", str(images / "foo_1.2"), "/var/lib/portables/foo_1.2"])
    try:
        theirs, ours = both(box, ["inspect", "foo_1.2"])
        assert theirs[0] == 0 and ours == theirs
        assert "\t/var/lib/portables/foo_1.2\n" in ours[1]
    finally:
        box.run(["rm", "-f", "/var/lib/portables/foo_1.2"])


@pytest.mark.parametrize(
    ("setup", "prefixes", "message"),
    [
        (None, ["nothing"], "Couldn't find any matching unit files in image '{img}', refusing."),
        (
            "rm -f {img}/etc/os-release {img}/usr/lib/os-release",
            [],
            "Image '{img}' lacks os-release data, refusing.",
        ),
    ],
)
def test_inspect_errors_like_portablectl(box, box_tmp, setup, prefixes, message):
    img = make_directory_image(box_tmp / "err_1", units={"err.service": service_unit()})
    if setup:
        box.run(setup.format(img=img))
    theirs, ours = both(box, ["inspect", str(img), *prefixes])
    expected = message.format(img=img)
    assert theirs[0] == 1 and expected in theirs[2]
    assert ours[0] == 1 and ours[2].rstrip("\n").endswith(expected)
    assert ours[2].count("\n") == 1 and ours[1] == ""


def test_absolute_unit_symlink_is_confined_not_followed_on_host(box, box_tmp):
    # systemd 252 opens the link on the host: a host file would be copied (issue #43049);
    # one that does not exist on the host is skipped. We resolve it inside the image. A link
    # to a unit of another name in a unit directory is an alias: left out (issue 16).
    img = make_directory_image(box_tmp / "abs_1", units={"abs.service": service_unit()})
    (img / "usr/lib/systemd/system/abs-link.service").symlink_to(
        "/usr/lib/systemd/system/abs.service"
    )
    (img / "usr/lib/systemd/system/abs-host.service").symlink_to(
        "/usr/lib/systemd/system/systemd-journald.service"  # exists on the host, not in image
    )
    (img / "opt/abs").mkdir(parents=True)
    (img / "opt/abs/abs-linked.service").write_text(service_unit(description="linked"))
    (img / "usr/lib/systemd/system/abs-linked.service").symlink_to("/opt/abs/abs-linked.service")
    theirs, ours = both(box, ["inspect", "--cat", str(img), "-"])
    assert "-- Unit file: abs-host.service --" in theirs[1]  # systemd leaks the host's file
    assert "abs-host.service" not in ours[1]
    assert "abs-link.service" not in theirs[1] and "abs-link.service" not in ours[1]
    assert "abs-linked.service" not in theirs[1]  # not on the host
    assert "-- Unit file: abs-linked.service --\n[Unit]\nDescription=linked" in ours[1]
    assert "Journal" not in ours[1]


def test_list_same_as_portablectl(box, images):
    """NAME/TYPE/RO/CRTIME/MTIME/USAGE/STATE as portablectl: search path, links, attach state."""
    box.run(["mkdir", "-p", "/var/lib/portables"])
    box.run(["ln", "-sfn", str(images / "quirky"), "/var/lib/portables/quirky"])
    box.run(["cp", "-a", str(images / "linked_2"), "/var/lib/portables/copied_3"])
    attached = [("hello_1.0", ["--runtime"]), ("foo_1.2", [])]
    try:
        for image, flags in attached:
            box.portablectl(["attach", "--no-reload", "-q", *flags, str(images / image)])
        for args in (["list"], ["list", "--no-legend"], []):
            theirs, ours = both(box, args)
            assert theirs[0] == 0
            assert ours == theirs
        rows = {
            line.split()[0]: line.split()[-1]
            for line in box.portable(["list", "--no-legend"]).stdout.splitlines()
        }
        assert rows == {
            "copied_3": "detached",
            "foo_1.2": "attached",
            "hello_1.0": "attached-runtime",
            "quirky": "detached",
        }
    finally:
        for image, flags in attached:
            box.portablectl(
                ["detach", "--no-reload", "-q", *flags, str(images / image)], check=False
            )
        box.run("rm -rf /var/lib/portables/quirky /var/lib/portables/copied_3")
    theirs, ours = both(box, ["list"])
    assert ours == theirs == (0, "No images.\n", "")


@pytest.mark.parametrize("verb", ["inspect", "is-attached", "detach", "attach"])
def test_empty_image_argument_like_portablectl(box, verb):
    """'' is not the current directory nor the root: the same one-line refusal."""
    theirs, ours = both(box, [verb, ""])
    expected = "Cannot normalize specified image path '': Invalid argument"
    assert theirs[0] == 1 and expected in theirs[2], theirs
    assert ours == (1, "", f"portable: error: {expected}\n"), ours
