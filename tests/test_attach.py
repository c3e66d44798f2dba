"""attach / detach / reattach / is-attached on an alternate root (files only, no manager).

What must hold without a service manager: the exact files and bytes systemd 252 writes,
refusals that leave the tree untouched, rollback on failure, and recovery from a kill at
every step.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import roots
from helpers.runners import fork_run

from portable import hookimpl
from portable.engine.attach import attach
from portable.engine.detach import detach
from portable.engine.reattach import reattach
from portable.engine.state import image_state
from portable.errors import AttachRefused, PluginError, PortableError
from portable.plugin.registry import make_registry
from portable.plugin.types import AttachOptions, DetachOptions, ExtraSetting
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, mark_systemd_version, service_unit

PROFILES = Path(__file__).resolve().parent.parent / "plugins" / "profiles"
# Parents that attach creates (mkdir -p) and, like systemd, never removes; and the lock.
KEPT_DIRS = {"run", "run/systemd", "run/portables", "run/lock", "etc/systemd", "etc/portables"}


def leftovers(root, before):
    return {k: v for k, v in tree(root).items() if k not in before and k not in KEPT_DIRS}


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/os-release").write_text("ID=host\n")
    make_directory_image(
        r / "srv/images/foo_1.2",
        busybox=False,
        os_release='ID=debian\nVERSION_ID=12\nPRETTY_NAME="Test OS 12"\n',
        units={
            "foo.service": service_unit(),
            "foo-bar.service": service_unit(),
            "foo.socket": "[Socket]\nListenStream=/run/foo.sock\n",
            "bar.service": "x\n",
        },
    )
    return r


registry = roots.registry  # (a fixture)


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Everything below the root except the images: path -> (kind, content or target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.startswith("srv"):
            continue
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            key = os.path.normpath(os.path.join(rel, name))
            if key.startswith("srv") or key.startswith("run/lock"):
                continue
            if p.is_symlink():
                out[key] = ("link", os.readlink(p))
            elif p.is_dir():
                out[key] = ("dir", "")
            else:
                out[key] = ("file", p.read_text(errors="replace"))
    return out


def do_attach(root, registry, arg="/srv/images/foo_1.2", **kw):
    return attach(arg, AttachOptions(**kw), host=Host(root), registry=registry)


def do_detach(root, registry, arg="/srv/images/foo_1.2", **kw):
    return detach(arg, DetachOptions(**kw), host=Host(root), registry=registry)


# What portabled writes for a service: 252 binds the host's os-release; from 254 on PID 1 provides
# it (a second bind fails the unit) and the image's ID_VERSION is logged.
SERVICE_DROPIN = {
    252: b"# Drop-in created for image '/srv/images/foo_1.2', do not edit.\n\n[Service]\n"
    b"RootDirectory=/srv/images/foo_1.2\nEnvironment=PORTABLE=foo_1.2\n"
    b"BindReadOnlyPaths=/etc/os-release:/run/host/os-release\n"
    b"LogExtraFields=PORTABLE=foo_1.2\n",
    257: b"# Drop-in created for image '/srv/images/foo_1.2', do not edit.\n\n[Service]\n"
    b"RootDirectory=/srv/images/foo_1.2\nEnvironment=PORTABLE=foo_1.2\n"
    b"LogExtraFields=PORTABLE=foo_1.2\n"
    b"LogExtraFields=PORTABLE_NAME_AND_VERSION=debian_12\n",
}


@pytest.mark.parametrize("systemd", [252, 257])
def test_attach_writes_what_the_roots_systemd_writes(root, registry, systemd):
    mark_systemd_version(root, systemd)
    res = do_attach(root, registry, runtime=True)
    w = root / "run/systemd/system.attached"
    assert sorted(os.listdir(w)) == [
        "foo-bar.service",
        "foo-bar.service.d",
        "foo.service",
        "foo.service.d",
        "foo.socket",
        "foo.socket.d",
    ]
    dropin = (w / "foo.service.d/20-portable.conf").read_bytes()
    assert dropin == SERVICE_DROPIN[systemd]
    if systemd == 252:
        assert len(dropin) == 225  # the spec's worked example
    assert (w / "foo.socket.d/20-portable.conf").read_bytes() == (
        b"# Drop-in created for image '/srv/images/foo_1.2', do not edit.\n"
    )
    assert not (w / "foo.socket.d/10-profile.conf").exists()  # only services get a profile
    # the root has no systemd profile files: the bundled copy of its version, copied
    assert (w / "foo.service.d/10-profile.conf").read_bytes() == (
        PROFILES / f"systemd{systemd}/default/service.conf"
    ).read_bytes()
    assert not (w / "foo.service.d/10-profile.conf").is_symlink()
    for f in ("foo.service", "foo.service.d/20-portable.conf", "foo.service.d/10-profile.conf"):
        assert (w / f).stat().st_mode & 0o777 == 0o644
    assert (w / "foo.service.d").stat().st_mode & 0o777 == 0o755
    assert os.readlink(root / "run/portables/foo_1.2") == "/srv/images/foo_1.2"
    assert [c.type for c in res.changes][:5] == ["mkdir", "mkdir", "write", "copy", "copy"]
    assert res.changes[-1].type == "symlink"
    assert image_state("/srv/images/foo_1.2", host=Host(root)) == "attached-runtime"


def test_attach_persistent_and_umask_independent(root, registry):
    old = os.umask(0o077)
    try:
        do_attach(root, registry)
    finally:
        os.umask(old)
    w = root / "etc/systemd/system.attached"
    assert (w / "foo.service").stat().st_mode & 0o777 == 0o644
    assert w.stat().st_mode & 0o777 == 0o755
    assert os.readlink(root / "etc/portables/foo_1.2") == "/srv/images/foo_1.2"
    assert image_state("foo", host=Host(root)) == "attached"


def test_symlink_mode_links_units_and_profile(root, registry):
    # a profile directory inside the root: linkable
    prof = root / "etc/systemd/portable/profile/mine"
    prof.mkdir(parents=True)
    (prof / "service.conf").write_text("[Service]\nPrivateNetwork=yes\n")
    reg = make_registry(root=root, load_entrypoints=False)
    do_attach(root, reg, runtime=True, copy_mode="symlink", profile="mine")
    w = root / "run/systemd/system.attached"
    assert os.readlink(w / "foo.service") == (
        "/srv/images/foo_1.2/usr/lib/systemd/system/foo.service"
    )
    assert os.readlink(w / "foo.service.d/10-profile.conf") == (
        "/etc/systemd/portable/profile/mine/service.conf"
    )


def test_copy_mode_copies_profile(root, registry):
    prof = root / "etc/systemd/portable/profile/mine"
    prof.mkdir(parents=True)
    (prof / "service.conf").write_text("[Service]\nPrivateNetwork=yes\n")
    reg = make_registry(root=root, load_entrypoints=False)
    do_attach(root, reg, runtime=True, copy_mode="copy", profile="mine")
    p = root / "run/systemd/system.attached/foo.service.d/10-profile.conf"
    assert not p.is_symlink() and p.read_text() == "[Service]\nPrivateNetwork=yes\n"


def test_detach_removes_every_trace(root, registry):
    before = tree(root)
    do_attach(root, registry, runtime=True)
    res = do_detach(root, registry, runtime=True)
    assert leftovers(root, before) == {}
    assert not (root / "run/systemd/system.attached").exists()
    assert [c.path for c in res.changes][-2:] == [
        "/run/portables/foo_1.2",
        "/run/systemd/system.attached",
    ]


def test_second_attach_reports_attached_and_changes_nothing(root, registry):
    do_attach(root, registry)
    before = tree(root)
    res = do_attach(root, registry)
    assert res.already_attached and res.changes == []
    assert tree(root) == before


def test_attach_with_other_settings_is_refused(root, registry):
    do_attach(root, registry)
    before = tree(root)
    with pytest.raises(PortableError, match="already attached with other settings"):
        do_attach(root, registry, profile="strict")
    assert tree(root) == before
    do_attach(root, registry, profile="strict", force=True)
    assert (
        b"TasksMax=4"
        in (root / "etc/systemd/system.attached/foo.service.d/10-profile.conf").read_bytes()
    )


@pytest.mark.parametrize(
    ("kw", "setup", "message"),
    [
        ({"profile": "nope"}, None, "unknown profile 'nope'; available profiles: default"),
        ({"profile": "../x"}, None, "profile path '../x' is outside the --root directory"),
        ({"profile": "/x/y.toml"}, None, "profile file /x/y.toml: No such file or directory"),
        ({"copy_mode": "bogus"}, None, "Failed to parse --copy= argument: bogus"),
        ({"prefixes": ("-",)}, None, "Refusing all unit file match."),
        ({"prefixes": ("nothing",)}, None, "Couldn't find any matching unit files"),
        ({}, "host-unit", "Unit file 'foo.service' exists on the host already, refusing."),
        ({}, "no-id", "os-release metadata lacks the ID field"),
        # a file where the unit's drop-in directory goes: as portablectl says it
        ({}, "file-for-dir", "Failed to attach unit 'foo.service': Not a directory"),
        (
            {},
            "prefixes",
            "Selected matches 'foo' are not compatible with portable service image "
            "'/srv/images/foo_1.2', refusing. (Acceptable prefix matches are: a, b)",
        ),
    ],
)
def test_refusals_leave_host_unchanged(root, registry, kw, setup, message):
    img = root / "srv/images/foo_1.2/usr/lib/os-release"
    if setup == "host-unit":
        (root / "etc/systemd/system").mkdir(parents=True)
        (root / "etc/systemd/system/foo.service").write_text("[Service]\n")
    elif setup == "no-id":
        img.write_text("VERSION_ID=1\n")
    elif setup == "file-for-dir":
        (root / "etc/systemd/system.attached").mkdir(parents=True)
        (root / "etc/systemd/system.attached/foo.service.d").write_text("")
    elif setup == "prefixes":
        img.write_text("ID=x\nPORTABLE_PREFIXES=b a\n")
    before = tree(root)
    with pytest.raises(PortableError) as info:
        do_attach(root, registry, **kw)
    assert message in str(info.value)
    assert tree(root) == before


def test_force_replaces_stale_files(root, registry):
    w = root / "run/systemd/system.attached"
    (w / "foo.service.d").mkdir(parents=True)
    (w / "foo.service").write_text("[Unit]\nDescription=stale\n")
    (w / "foo.service.d/10-profile.conf").write_text("[Unit]\n")
    (w / "foo.service.d/20-portable.conf").write_text("[Unit]\n")
    with pytest.raises(PortableError, match="exists on the host already"):
        do_attach(root, registry, runtime=True)
    do_attach(root, registry, runtime=True, force=True)
    assert "stale" not in (w / "foo.service").read_text()
    assert image_state("/srv/images/foo_1.2", host=Host(root)) == "attached-runtime"
    do_detach(root, registry, runtime=True)
    assert not w.exists()


def test_detach_never_touches_other_images_or_host_units(root, registry):
    make_directory_image(
        root / "srv/images/other_1",
        busybox=False,
        os_release="ID=x\n",
        units={"other.service": service_unit()},
    )
    do_attach(root, registry, runtime=True)
    do_attach(root, registry, "/srv/images/other_1", runtime=True)
    w = root / "run/systemd/system.attached"
    (w / "host.service").write_text("[Service]\n")  # a unit without our marker
    (w / "foo.service.d/50-admin.conf").write_text("[Service]\nNice=5\n")  # an admin drop-in
    do_detach(root, registry, runtime=True)
    assert sorted(os.listdir(w)) == [
        "foo.service.d",
        "host.service",
        "other.service",
        "other.service.d",
    ]
    assert os.listdir(w / "foo.service.d") == ["50-admin.conf"]  # kept, as systemd does
    with pytest.raises(PortableError, match="No unit files associated with"):
        do_detach(root, registry, runtime=True)


def test_detach_of_deleted_image(root, registry):
    import shutil

    do_attach(root, registry, runtime=True)
    shutil.rmtree(root / "srv/images/foo_1.2")
    do_detach(root, registry, runtime=True)
    assert not (root / "run/systemd/system.attached").exists()


def test_reattach_replaces_version(root, registry):
    make_directory_image(
        root / "srv/images/foo_2.0",
        busybox=False,
        os_release="ID=debian\nVERSION_ID=13\n",
        units={"foo.service": service_unit("/v2"), "foo-new.service": "x\n"},
    )
    do_attach(root, registry, runtime=True)
    res = reattach(
        "/srv/images/foo_2.0", AttachOptions(runtime=True), host=Host(root), registry=registry
    )
    w = root / "run/systemd/system.attached"
    assert sorted(n for n in os.listdir(w) if not n.endswith(".d")) == [
        "foo-new.service",
        "foo.service",
    ]
    assert "/v2" in (w / "foo.service").read_text()
    assert os.readlink(root / "run/portables/foo_2.0") == "/srv/images/foo_2.0"
    assert not os.path.lexists(root / "run/portables/foo_1.2")
    gone = {os.path.basename(c.path) for c in res.removed}
    assert "foo-bar.service" in gone and "foo.service" not in gone
    assert image_state("/srv/images/foo_2.0", host=Host(root)) == "attached-runtime"


def test_reattach_to_missing_image_detaches_nothing(root, registry):
    do_attach(root, registry, runtime=True)
    before = tree(root)
    with pytest.raises(PortableError, match="Cannot normalize"):
        reattach(
            "/srv/images/foo_9", AttachOptions(runtime=True), host=Host(root), registry=registry
        )
    assert tree(root) == before


# --- lifecycle hooks ----------------------------------------------------------------------


class Recorder:
    def __init__(self, refuse=False, fail_post=False, extra=()):
        self.calls = []
        self.refuse, self.fail_post, self.extra = refuse, fail_post, extra

    @hookimpl
    def portable_pre_attach(self, image, units, profile, options):
        self.calls.append(("pre_attach", image.path, [u.name for u in units], profile.name))
        if self.refuse:
            raise AttachRefused("vendor field missing")
        return list(self.extra)

    @hookimpl
    def portable_post_attach(self, image, changes):
        self.calls.append(("post_attach", image.path, len(changes)))
        if self.fail_post:
            raise RuntimeError("post hook broke")

    @hookimpl
    def portable_pre_detach(self, image, units):
        self.calls.append(("pre_detach", image, sorted(units)))

    @hookimpl
    def portable_post_detach(self, image, changes):
        self.calls.append(("post_detach", image, len(changes)))


def test_hooks_called_in_order(root, registry):
    rec = Recorder()
    registry.register(rec, "recorder")
    do_attach(root, registry, runtime=True, profile="strict")
    do_detach(root, registry, runtime=True)
    assert [c[0] for c in rec.calls] == ["pre_attach", "post_attach", "pre_detach", "post_detach"]
    assert rec.calls[0] == (
        "pre_attach",
        "/srv/images/foo_1.2",
        ["foo-bar.service", "foo.service", "foo.socket"],
        "strict",
    )


def test_pre_hook_refusal_writes_nothing(root, registry):
    registry.register(Recorder(refuse=True), "refuser")
    before = tree(root)
    with pytest.raises(AttachRefused, match="vendor field missing"):
        do_attach(root, registry, runtime=True)
    assert tree(root) == before


def test_post_hook_failure_rolls_back(root, registry):
    registry.register(Recorder(fail_post=True), "breaker")
    before = tree(root)
    with pytest.raises(PluginError, match=r"rolled back.*post hook broke"):
        do_attach(root, registry, runtime=True)
    assert leftovers(root, before) == {}
    assert not (root / "run/systemd/system.attached").exists()


def test_extra_settings_from_hooks(root, registry):
    extra = [
        ExtraSetting(key="NetworkNamespacePath", value="/run/netns/portable-foo"),
        ExtraSetting(key="Nice", value="5", units=("foo-bar.service",)),
    ]
    registry.register(Recorder(extra=extra), "netns")
    do_attach(root, registry, runtime=True)
    w = root / "run/systemd/system.attached"
    foo = (w / "foo.service.d/20-portable.conf").read_text()
    # after portabled's own lines (the root's systemd: the newest known, 257)
    assert foo.endswith(
        "LogExtraFields=PORTABLE_NAME_AND_VERSION=debian_12\n"
        "NetworkNamespacePath=/run/netns/portable-foo\n"
    )
    assert "Nice=5" in (w / "foo-bar.service.d/20-portable.conf").read_text()
    assert "Nice" not in foo
    assert "Network" not in (w / "foo.socket.d/20-portable.conf").read_text()
    do_detach(root, registry, runtime=True)
    assert not w.exists()


# --- crash points: kill the process at every step, re-run, final detach leaves nothing -----


def cli(root, *args, crash=None):
    """``portable --root ROOT ARGS`` in a forked child (killed at step ``crash``)."""
    return fork_run(
        ["--root", str(root), *args], {"PORTABLE_SERVICES_NO_PLUGINS": "1"}, crash_at=crash
    )


@pytest.mark.parametrize("verb", ["attach", "detach", "reattach"])
def test_kill_at_every_step_then_rerun_recovers(root, verb):
    make_directory_image(
        root / "srv/images/foo_2.0",
        busybox=False,
        os_release="ID=debian\nVERSION_ID=13\n",
        units={"foo.service": service_unit("/v2"), "foo-new.service": "x\n"},
    )
    pristine = tree(root)
    args = {
        "attach": ["attach", "--runtime", "/srv/images/foo_1.2"],
        "detach": ["detach", "--runtime", "/srv/images/foo_1.2"],
        "reattach": ["reattach", "--runtime", "/srv/images/foo_2.0"],
    }[verb]
    step = 0
    while True:
        step += 1
        assert step < 200, "crash points never ran out"
        if verb in ("detach", "reattach"):
            assert cli(root, "attach", "--runtime", "/srv/images/foo_1.2").returncode == 0
        proc = cli(root, *args, crash=step)
        if proc.returncode == 0:
            break  # ran to completion: every earlier step has been crashed into
        assert proc.returncode == -9, proc.stderr
        rerun = cli(root, *args)
        # Killed after its last trace was gone (while committing), a detach has nothing
        # left to do: the re-run truthfully says so. Either way nothing may be left behind.
        done_already = verb == "detach" and "Image not attached?" in rerun.stderr
        assert rerun.returncode == 0 or done_already, (step, rerun.stderr)
        final = "/srv/images/foo_2.0" if verb == "reattach" else "/srv/images/foo_1.2"
        if verb != "detach":
            state = cli(root, "is-attached", final).stdout.strip()
            assert state == "attached-runtime", step
            assert cli(root, "detach", "--runtime", final).returncode == 0
        assert leftovers(root, pristine) == {}, step
    assert step > 5


# --- several images in one call -------------------------------------------------------------


def test_batch_attach_and_detach(root):
    for name in ("a_1", "b_1", "c_1"):
        make_directory_image(
            root / "srv" / name,
            busybox=False,
            os_release="ID=x\n",
            units={f"{name[0]}.service": service_unit()},
        )
    r = cli(root, "attach", "--runtime", "/srv/a_1", "/srv/b_1", "/srv/c_1")
    assert r.returncode == 0, r.stderr
    for name in ("a_1", "b_1", "c_1"):
        assert cli(root, "is-attached", f"/srv/{name}").stdout == "attached-runtime\n"
    r = cli(root, "detach", "--runtime", "/srv/a_1", "/srv/b_1", "/srv/c_1")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == "Removed /run/systemd/system.attached."
    assert not (root / "run/systemd/system.attached").exists()


def test_batch_is_all_or_nothing(root):
    make_directory_image(
        root / "srv/a_1", busybox=False, os_release="ID=x\n", units={"a.service": service_unit()}
    )
    make_directory_image(
        root / "srv/b_1",
        busybox=False,
        os_release="VERSION_ID=1\n",
        units={"b.service": service_unit()},
    )  # no ID=: refused
    before = tree(root)
    r = cli(root, "attach", "--runtime", "/srv/a_1", "/srv/b_1")
    assert r.returncode == 1 and "lacks the ID field" in r.stderr
    assert tree(root) == before
    # a unit name in two images of one batch
    make_directory_image(
        root / "srv/a_2", busybox=False, os_release="ID=x\n", units={"a.service": service_unit()}
    )
    r = cli(root, "attach", "--runtime", "/srv/a_1", "/srv/a_2")
    assert r.returncode == 1 and "is in both" in r.stderr
    assert tree(root) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/srv/a_1", "foo", "/srv/b_1"], "either one IMAGE with PREFIX arguments"),
        (["/srv/a_1", "/srv/a_1"], "an image is given twice"),
    ],
)
def test_batch_argument_errors(root, args, message):
    r = cli(root, "attach", *args)
    assert r.returncode == 1 and message in r.stderr and r.stderr.count("\n") == 1
