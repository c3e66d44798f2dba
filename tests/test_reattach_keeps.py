"""reattach keeps what the attached version had (issue 14, item 1), on an alternate root.

Unlike portablectl: ``portablectl reattach`` is a detach then an attach with the options given,
so an image attached with ``--profile strict`` and reattached without ``-p`` comes back with
the ``default`` profile (and copy mode ``auto``, in /etc): its sandbox is silently dropped. Ours
keeps the profile, copy mode, /etc or /run, extensions and network namespace of the attached
version unless an option says otherwise, and says so in one line when one does.
"""

from __future__ import annotations

import os

import pytest
from helpers.roots import registry_for as registry_of

from portable.cli import main
from portable.engine.attach import attach
from portable.engine.reattach import attached_version, reattach
from portable.plugin.types import AttachOptions
from portable.plugins.hooks.netns import referenced_namespaces
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, service_unit

ETC = "etc/systemd/system.attached"
RUN = "run/systemd/system.attached"
# A profile of the host's own (systemd's profile directories below the root): linked in the
# default copy mode; its first line is not systemd's '# The "NAME" ...', so a copy of it is
# recognised by its content.
TIGHT = "[Service]\nPrivateTmp=yes\nPrivateNetwork=yes\nProtectSystem=strict\n"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/os-release").write_text("ID=host\n")
    for version in ("1", "2", "3"):
        make_directory_image(
            r / f"srv/images/foo_{version}",
            busybox=False,
            os_release=f"ID=debian\nVERSION_ID={version}\n",
            units={"foo.service": service_unit(f"/v{version}")},
        )
    tight = r / "etc/systemd/portable/profile/tight"
    tight.mkdir(parents=True)
    (tight / "service.conf").write_text(TIGHT)
    return r


def profile_of(root, where=ETC):
    """(link target or None, first line) of foo.service's 10-profile.conf."""
    p = root / where / "foo.service.d/10-profile.conf"
    target = os.readlink(p) if p.is_symlink() else None
    text = (root / target.lstrip("/") if target else p).read_text()  # absolute: in the root
    return target, text.splitlines()[0]


def cli(root, capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["--root", str(root), *args])
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    return out.err


def test_profile_kept_without_p_changed_with_p(root, capsys):
    """portablectl would write the 'default' profile on the reattach without -p."""
    cli(root, capsys, "attach", "-p", "strict", "/srv/images/foo_1")
    assert profile_of(root)[1].startswith('# The "strict"')  # a copy: no profile file in root
    err = cli(root, capsys, "reattach", "/srv/images/foo_2")
    assert profile_of(root)[1].startswith('# The "strict"')
    assert "/v2" in (root / ETC / "foo.service").read_text()
    assert "portable: profile" not in err
    err = cli(root, capsys, "reattach", "-p", "default", "/srv/images/foo_3")
    assert profile_of(root)[1].startswith('# The "default"')
    assert "portable: profile changes from 'strict' to 'default' (as --profile says)\n" in err
    # Given and the same as attached: nothing to say.
    err = cli(root, capsys, "reattach", "-p", "default", "/srv/images/foo_1")
    assert "portable: profile" not in err


def test_linked_profile_kept(root):
    reg = registry_of(root)
    attach("/srv/images/foo_1", AttachOptions(profile="tight"), host=Host(root), registry=reg)
    link = "/etc/systemd/portable/profile/tight/service.conf"
    assert profile_of(root)[0] == link
    res = reattach("/srv/images/foo_2", AttachOptions(), host=Host(root), registry=reg)
    assert profile_of(root)[0] == link
    assert res.attached.profile.name == "tight" and res.notes == []


def test_copy_mode_kept_and_copy_recognised_by_content(root, capsys):
    """portablectl would go back to --copy=auto (a link to the profile here)."""
    cli(root, capsys, "attach", "-p", "tight", "--copy", "copy", "/srv/images/foo_1")
    assert profile_of(root) == (None, "[Service]")
    cli(root, capsys, "reattach", "/srv/images/foo_2")
    assert profile_of(root) == (None, "[Service]")  # still a copy, still tight
    assert (root / ETC / "foo.service.d/10-profile.conf").read_text() == TIGHT
    err = cli(root, capsys, "reattach", "--copy", "auto", "/srv/images/foo_3")
    assert profile_of(root)[0] == "/etc/systemd/portable/profile/tight/service.conf"
    assert "portable: copy mode changes from 'copy' to 'auto' (as --copy says)\n" in err


def test_symlink_mode_kept(root):
    reg = registry_of(root)
    attach("/srv/images/foo_1", AttachOptions(copy_mode="symlink"), host=Host(root), registry=reg)
    reattach("/srv/images/foo_2", AttachOptions(), host=Host(root), registry=reg)
    assert (
        os.readlink(root / ETC / "foo.service")
        == "/srv/images/foo_2/usr/lib/systemd/system/foo.service"
    )


def test_runtime_kept(root, capsys):
    """portablectl would look in /etc only, and say the image is not attached."""
    cli(root, capsys, "attach", "--runtime", "-p", "strict", "/srv/images/foo_1")
    cli(root, capsys, "reattach", "/srv/images/foo_2")
    assert "/v2" in (root / RUN / "foo.service").read_text()
    assert profile_of(root, RUN)[1].startswith('# The "strict"')
    assert not (root / ETC).exists()


def test_unrecognised_profile_falls_back_to_default_and_says_so(root, capsys):
    cli(root, capsys, "attach", "-p", "strict", "/srv/images/foo_1")
    dropin = root / ETC / "foo.service.d/10-profile.conf"
    dropin.write_text("[Service]\nPrivateTmp=yes\n")  # another tool's drop-in
    err = cli(root, capsys, "reattach", "/srv/images/foo_2")
    assert profile_of(root)[1].startswith('# The "default"')
    assert "portable: the attached profile can't be determined" in err
    assert "using 'default'" in err


def test_attached_version_reads_netns(root):
    # The namespace is the netns plugin's to keep: it reads the attached version's drop-ins in
    # the attach half of the reattach (options.reattach), before they are replaced.
    reg = registry_of(root)
    attach("/srv/images/foo_1", AttachOptions(), host=Host(root), registry=reg)
    old = attached_version("/srv/images/foo_2", host=Host(root), registry=reg)
    assert old is not None and old.profile == "default"
    assert (old.runtime, old.extensions, old.copy_mode) == (False, (), "auto")
    assert referenced_namespaces(str(root)) == {}
    marker = root / ETC / "foo.service.d/20-portable.conf"
    with marker.open("a") as f:
        f.write("NetworkNamespacePath=/run/netns/portable-foo\n")
    assert referenced_namespaces(str(root)) == {"portable-foo": ["foo.service"]}
