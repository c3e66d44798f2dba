"""What `portable` writes follows the systemd that runs it: checked in each box.

The version-specific bytes (20-portable.conf, profiles) are compared with portablectl in
test_box_attach_diff.py; this file checks the version detection and the profile source itself.
"""

from __future__ import annotations

import pytest

from portable.plugins.profiles import builtin
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box

PROFILES = "/usr/lib/systemd/portable/profile"


def test_version_is_the_running_managers(box):
    out = box.portable(["--version"]).stdout.splitlines()
    full = box.systemctl(["--version"]).stdout.split("(", 1)[1].split(")", 1)[0]
    assert out[1] == f"follows systemd {full} (running)"
    assert full.startswith(str(box.systemd_version))


def test_bundled_profiles_are_this_systemds(box):
    """The copies used where a host ships no profile are byte for byte this version's files."""
    for name in builtin.NAMES:
        shipped = box.path(f"{PROFILES}/{name}/service.conf").read_bytes()
        assert builtin.data_path(name, box.systemd_version).read_bytes() == shipped, name


@pytest.mark.parametrize("profile", builtin.NAMES)
def test_profile_links_to_the_hosts_own_file(box, box_tmp, profile):
    """As portablectl: 10-profile.conf links to systemd's file, never into the Python package."""
    img = make_directory_image(box_tmp / "pf_1", units={"pf.service": service_unit()})
    box.portable(["attach", "--runtime", "-q", f"--profile={profile}", str(img)])
    try:
        link = box.path("/run/systemd/system.attached/pf.service.d/10-profile.conf")
        assert str(link.readlink()) == f"{PROFILES}/{profile}/service.conf"
        shown = box.systemctl(["show", "-P", "DropInPaths", "pf.service"]).stdout
        assert "/run/systemd/system.attached/pf.service.d/10-profile.conf" in shown
    finally:
        box.portable(["detach", "--runtime", "-q", str(img)])


def test_profile_copied_from_the_bundle_where_the_host_has_none(box, box_tmp):
    """A host without systemd's profile files gets this version's bundled copy, as a copy."""
    img = make_directory_image(box_tmp / "pc_1", units={"pc.service": service_unit()})
    box.run(["mount", "-t", "tmpfs", "tmpfs", PROFILES])  # hide the shipped profiles
    try:
        box.portable(["attach", "--runtime", "-q", "--profile=strict", str(img)])
        dropin = box.path("/run/systemd/system.attached/pc.service.d/10-profile.conf")
        assert not dropin.is_symlink()
        expected = builtin.data_path("strict", box.systemd_version).read_bytes()
        assert dropin.read_bytes() == expected
        box.portable(["detach", "--runtime", "-q", str(img)])
    finally:
        box.run(["umount", PROFILES])
