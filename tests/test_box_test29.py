"""TEST-29-PORTABLE (systemd's own integration test of portable services), with ``portable``.

The scripts of systemd 257 (test/units/TEST-29-PORTABLE{,.image,.directory}.sh) and 252
(test/units/testsuite-29.sh), ported: each scenario runs the script's commands with ``tool`` in
place of portablectl and makes the script's assertions (``set -e``, ``systemctl is-active``,
``is-attached`` states, ``list``, greps of 20-portable.conf, file types); each runs once with
portablectl too, which shows the port and the fixtures are faithful. Where the script's check is
weaker than what it means (``test -f`` passes for a link, ``grep -f`` for one line), it is
checked stricter; a few checks are added (journal fields). The fixtures are the v257 ones
(util.sh, mkosi's minimal images) built on the box's own os-release, with busybox for bash.
Scenario numbers are those of the spec (systemd-portable-spec.md, 8.2); "252"/"257": the
script of that version has the scenario; the last two columns are the outcome on each box
(both tools unless said).

=====  ============================  =======  ==================================  ========  ========
#      scenario                      in       test (test_...; x, r: also there)   252 box   257 box
=====  ============================  =======  ==================================  ========  ========
1      dissect sees the fixtures     252 257  dissect_classifies_the_fixtures     pass      pass
2      empty os-release refused      252 257  empty_os_release_fails_...; x       pass      pass
3-5    raw attach/reattach/detach    252 257  raw_attach_reattach_...[plain]; r   pass      pass
6      --force over stale files      252 257  raw_attach_reattach_...[force]      pass      pass
-      is-attached minimal-app0 [a]  252 257  is_attached_by_a_name_no_...        pass      pass [a]
7-8    raw extension, log fields     252 257  raw_extension_attach_...; x         pass [b]  pass
9      app0_1.0.raw, no --force      257      versioned_extension_...; x          pass [c]  pass
10-12  relaxed name, versions        252 257  relaxed_extension_...; x            pass      pass
13     vpick: --extension app1.v/    257      vpick_extension_directory           pass [c]  pass
14     state kept after detach       252 257  (in 7-8 and 10-12)                  pass      pass
15-16  --force name, deleted image   252 257  force_overrides_release_...; x      pass      pass
17     confext with a sysext         257      confext                             pass [c]  pass
18     --copy=mixed, raw images      257      mixed_copy_of_raw_images            pass [d]  pass
19     shared base image             257      shared_base_image; x                pass [e]  pass [f]
20     directory images              252 257  directory_images                    pass      pass
21-22  overlayfs image, --force      252 257  overlay_directory_and_...           pass      pass
23     directory extensions          252 257  directory_extensions; x             pass [b]  pass
24     detach --clean                257      detach_clean                        pass [d]  pass
25     --copy=mixed, directories     257      mixed_copy_of_directory_...         pass [d]  pass
26     --force, directory extension  257      force_with_directory_... [g]        pass      pass
27     detach --enable, #23481       252 257  detach_enable_after_...             pass      pass
28     wrong release file ignored    257      wrong_extension_release_...         pass [h]  pass
29     --user scope                  (258)    not ported [i]                      -         -
=====  ============================  =======  ==================================  ========  ========

"in": the scripts that have the scenario; test names without ``test_``, here, and where
"x"/"r" follows, a comparison with portablectl in test_box_extensions.py/test_box_raw.py too.
"pass" on a box: with both tools, unless a note says otherwise.

[a] Not a scenario: what ``is-attached minimal-app0`` prints (scenarios 3, 6 only need it to
    succeed). portablectl 257 prints the state of whatever is attached (portabled's marker
    match takes path_pick()'s ENOENT for a name that is no path as a match); 252 and we print
    ``detached``, asserted so.
[b] systemd 252: no PORTABLE_* log fields but the os-release bind, asserted so; 257: the
    script's greps, and (not in the script) the fields in the unit's journal entries.
[c] systemd 252 refuses the attach (no version fallback / vpick / confexts there): both
    tools, asserted so.
[d] ours only: portablectl 252 has no --copy=mixed / --clean (skipped, with the reason).
[e] ours as 257; portablectl 252 detaches both portables with the base (asserted so).
[f] the comparison in x: portablectl 257 reports removing the base's link a second time
    (it was removed with app0's detach, by both tools); we report what we removed.
[g] + force_with_directory_extension_on_raw_root: a raw root, where portablectl 252 puts
    the relax option on ExtensionDirectories= and the service fails; 257 and we don't.
[h] systemd 252 takes the release file with the xattr too.
[i] TEST-29-PORTABLE.user.sh comes after 257, and ``portable`` has no --user scope.

Not ported: the script's sanitizer variant (--profile=trusted everywhere) and its debug
logging; ``busctl tree`` is portabled's view of the images, which it builds from
/run/portables, so it is asserted after either tool.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.attach_diff import REF, Run, invoke

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image

pytestmark = pytest.mark.box

OURS = "portable"
TOOLS = (REF, OURS)
ATTACHED = "/run/systemd/system.attached"
UNITS = (
    "minimal-app0.service",
    "minimal-app0-foo.service",
    "minimal-app0-bar.service",
    "app0.service",
    "app1.service",
)
# Where the units keep their data (DynamicUser=yes of the default profile: .../private/).
DATA_DIRS = (
    "/var/lib/app0",
    "/var/lib/app1",
    "/var/lib/private/app0",
    "/var/lib/private/app1",
    "/run/app0",
    "/run/app1",
)
STATE_DIRECTORY = "/var/lib/private"  # the script's $STATE_DIRECTORY (no sanitizers here)

# mkosi/mkosi.images/minimal-0/mkosi.extra/usr/lib/systemd/system/minimal-app0.service
MINIMAL_APP0 = "[Service]\nExecStartPre=cat /usr/lib/os-release\nExecStart=sleep 120\n"
# test/units/util.sh install_extension_images(); /bin/sh for /bin/bash: the images carry busybox.
APP_UNIT = (
    "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/opt/script{n}.sh\n"
    "{extra}StateDirectory=app{n}\nRuntimeDirectory=app{n}\n"
)
APP_SCRIPT = (
    "#!/bin/sh\nset -e\ntest -e /usr/lib/os-release\necho {word} >${{STATE_DIRECTORY}}/foo\n"
    "cat /usr/lib/extension-release.d/extension-release.{release}\n"
)


# --- the fixture images, as TEST-29 builds them -------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """The script's directories, inside one scratch directory (same path in and out of the box):
    ``share`` for /usr/share (read-only in the box), ``tmp`` for /tmp, ``cache`` for /var/cache."""

    share: Path
    tmp: Path
    cache: Path


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _release_lines(os_release: str, *keys: str) -> str:
    """``grep ^KEY= os-release`` for each key, in the order given."""
    lines = os_release.splitlines()
    return "".join(line + "\n" for key in keys for line in lines if line.startswith(key + "="))


def build_images(box: Box) -> Paths:
    """minimal_0/1.raw (mkosi's ``portable`` images: the box's os-release + MARKER + prefixes),
    app0.raw, app1.raw, conf0.raw (util.sh), unsquashed minimal_0/1, and the sources."""
    top = box.mkdtemp(prefix="t29-")
    p = Paths(share=top / "share", tmp=top / "tmp", cache=top / "cache")
    for d in (p.share, p.tmp, p.cache, top / "src"):
        d.mkdir()
    # The images are of the distribution the box runs, as mkosi builds them for the test VM.
    os_release = box.run(["cat", "/usr/lib/os-release"]).stdout
    for n, extra in ((0, "foo"), (1, "bar")):
        tree = make_directory_image(
            top / f"src/minimal_{n}",
            os_release=os_release
            + f"MARKER={n + 1}\nPORTABLE_PREFIXES=app0 minimal minimal-app0\n",
            units={
                "minimal-app0.service": MINIMAL_APP0,
                f"minimal-app0-{extra}.service": MINIMAL_APP0,
            },
        )
        (tree / "var/lib/app1").mkdir(parents=True, exist_ok=True)
        _write(tree / "opt/some_file", "")
        make_squashfs_image(p.share / f"minimal_{n}.raw", tree)
    version_id = _release_lines(os_release, "VERSION_ID")
    ident = _release_lines(os_release, "ID")
    # app0: extension-release.app0 (VERSION_ID twice, as util.sh writes it) and SYSEXT_IMAGE_ID.
    app0 = top / "src/app0"
    _write(
        app0 / "usr/lib/extension-release.d/extension-release.app0",
        ident + version_id + version_id + "SYSEXT_IMAGE_ID=app\n",
    )
    _write(
        app0 / "usr/lib/systemd/system/app0.service",
        APP_UNIT.format(n=0, extra="TemporaryFileSystem=/var/lib\n"),
    )
    _write(app0 / "opt/script0.sh", APP_SCRIPT.format(word="bar", release="app0"), 0o755)
    _write(app0 / "usr/lib/systemd/system/some_file", "MARKER=1\n")
    make_squashfs_image(p.tmp / "app0.raw", app0)
    # conf0: a configuration extension (/etc/extension-release.d), no units.
    conf0 = top / "src/conf0"
    _write(
        conf0 / "etc/extension-release.d/extension-release.conf0",
        ident + version_id + version_id + "CONFEXT_IMAGE_ID=app\n",
    )
    _write(conf0 / "etc/systemd/system/some_file", "MARKER_1\n")
    (conf0 / "opt").mkdir()
    make_squashfs_image(p.tmp / "conf0.raw", conf0)
    # app1: its release file deliberately named for app2, made acceptable by the xattr.
    app1 = top / "src/app1"
    release = app1 / "usr/lib/extension-release.d/extension-release.app2"
    _write(
        release,
        ident
        + version_id
        + "SYSEXT_SCOPE=portable\nSYSEXT_IMAGE_ID=app\nSYSEXT_IMAGE_VERSION=1\n"
        + "PORTABLE_PREFIXES=app1\n",
    )
    os.setxattr(release, "user.extension-release.strict", b"false")
    _write(app1 / "usr/lib/systemd/system/app1.service", APP_UNIT.format(n=1, extra=""))
    _write(app1 / "opt/script1.sh", APP_SCRIPT.format(word="baz", release="app2"), 0o755)
    _write(app1 / "usr/lib/systemd/system/other_file", "MARKER=1\n")
    make_squashfs_image(p.tmp / "app1.raw", app1)
    # TEST-29-PORTABLE.directory.sh: unsquashfs -dest /tmp/minimal_N /usr/share/minimal_N.raw
    for n in (0, 1):
        subprocess.run(
            [
                "unsquashfs",
                "-no-progress",
                "-dest",
                str(p.tmp / f"minimal_{n}"),
                str(p.share / f"minimal_{n}.raw"),
            ],
            check=True,
            capture_output=True,
        )
    return p


@pytest.fixture(scope="module")
def paths(box: Box) -> Iterator[Paths]:
    """The images, and (directory.sh) app0.raw, app1.raw and minimal_0.raw mounted in the box at
    /tmp/app0, /tmp/app1 and /tmp/rootdir."""
    p = build_images(box)
    mounted: list[Path] = []
    try:
        for name, image in (
            ("app0", p.tmp / "app0.raw"),
            ("app1", p.tmp / "app1.raw"),
            ("rootdir", p.share / "minimal_0.raw"),
        ):
            (p.tmp / name).mkdir()
            box.run(["mount", "-o", "ro", str(image), str(p.tmp / name)])
            mounted.append(p.tmp / name)
        yield p
    finally:
        for where in mounted:
            box.run(["umount", str(where)], check=False)


# --- running the script's commands --------------------------------------------------------------


class T29:
    """The box, the images, and the script's idioms: a command that must succeed (``set -e``),
    ``systemctl is-active``, ``portablectl is-attached``, a grep of a drop-in."""

    def __init__(self, box: Box, paths: Paths) -> None:
        self.box = box
        self.p = paths
        self.systemd = box.systemd_version

    def ok(self, tool: str, *args: str | Path) -> Run:
        r = invoke(self.box, tool, [str(a) for a in args])
        assert r.rc == 0, f"{tool} {' '.join(map(str, args))}: {r}"
        return r

    def fails(self, tool: str, *args: str | Path) -> Run:
        r = invoke(self.box, tool, [str(a) for a in args])
        assert r.rc != 0, f"{tool} {' '.join(map(str, args))} succeeded: {r}"
        return r

    def status(self, tool: str, *args: str | Path) -> str:
        """``status="$(portablectl is-attached ARGS)"``."""
        return self.ok(tool, "is-attached", *args).stdout.strip()

    def active(self, unit: str) -> bool:
        return self.box.systemctl(["is-active", unit], check=False).returncode == 0

    def assert_active(self, *units: str) -> None:
        assert [u for u in units if not self.active(u)] == [], "not active"

    def assert_not_active(self, *units: str) -> None:
        assert [u for u in units if self.active(u)] == [], "active"

    def sh(self, script: str) -> str:
        return self.box.run(["sh", "-c", script]).stdout

    def dropin(self, unit: str) -> str:
        return self.box.path(f"{ATTACHED}/{unit}.d/20-portable.conf").read_text()

    def listing(self, tool: str) -> str:
        return self.ok(tool, "list").stdout

    def object_paths(self) -> str:
        """``busctl tree org.freedesktop.portable1``: portabled's view of the images (which it
        builds from /run/portables, so this works after ``portable`` too)."""
        return self.box.run(["busctl", "tree", "org.freedesktop.portable1", "--no-pager"]).stdout

    def file_kind(self, path: str) -> str:
        return self.sh(
            f'if [ -L "{path}" ]; then echo link; elif [ -d "{path}" ]; then echo dir; '
            f'elif [ -f "{path}" ]; then echo file; else echo none; fi'
        ).strip()

    def journal_fields(self, unit: str) -> dict[str, set[str]]:
        """The fields of what the unit's current run logged (waits for its first lines)."""
        invocation = self.box.systemctl(["show", "-P", "InvocationID", unit]).stdout.strip()
        assert invocation, unit
        deadline = time.monotonic() + 10
        while True:
            self.box.run(["journalctl", "--sync"], check=False)
            out = self.box.run(
                ["journalctl", "--no-pager", "-o", "json", f"_SYSTEMD_INVOCATION_ID={invocation}"]
            ).stdout
            if out.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        fields: dict[str, set[str]] = {}
        for line in out.splitlines():
            for key, value in json.loads(line).items():
                values = value if isinstance(value, list) else [value]
                fields.setdefault(key, set()).update(v for v in values if isinstance(v, str))
        return fields

    def needs_ref(self, tool: str, version: int, why: str) -> None:
        """Skip the portablectl run where the box's systemd is older than the scenario."""
        if tool == REF and self.systemd < version:
            pytest.skip(f"portablectl {self.systemd}: {why} (systemd {version}+)")

    def cleanup(self) -> None:
        """Stop, remove everything attached and every unit's data: each test starts clean."""
        box = self.box
        box.systemctl(["stop", *UNITS], check=False)
        box.run(
            [
                "sh",
                "-c",
                'rm -rf "$@"; true',
                "sh",
                ATTACHED,
                "/etc/systemd/system.attached",
                "/run/portables",
                "/etc/portables",
                *DATA_DIRS,
                *(str(self.p.tmp / n) for n in ("app0_1.0.raw", "app1_2.raw", "app10.raw")),
                str(self.p.tmp / "app1.v"),
                str(self.p.cache / "wrongext"),
            ]
        )
        box.systemctl(["daemon-reload"])
        box.systemctl(["reset-failed"], check=False)


@pytest.fixture
def t(box: Box, paths: Paths) -> Iterator[T29]:
    harness = T29(box, paths)
    harness.cleanup()
    yield harness
    harness.cleanup()


def os_name_and_version(t: T29) -> str:
    """``<ID>_<VERSION_ID>`` of the box's os-release, which the minimal images carry."""
    release = dict(
        line.split("=", 1) for line in t.sh("cat /usr/lib/os-release").splitlines() if "=" in line
    )
    return f"{release['ID'].strip(chr(34))}_{release['VERSION_ID'].strip(chr(34))}"


def assert_journal_fields(t: T29, unit: str, fields: list[str], *, portable: str) -> None:
    """What the unit logged carries PORTABLE= and (systemd 254+) ``fields``: PID 1 took the
    drop-in's LogExtraFields= lines."""
    got = t.journal_fields(unit)
    assert portable in got.get("PORTABLE", set()), got.get("PORTABLE")
    for field in fields:
        key, value = field.split("=", 1)
        if t.systemd >= 254:
            assert value in got.get(key, set()), (field, got.get(key))
        else:
            assert key not in got, (field, got.get(key))


def assert_log_fields(t: T29, unit: str, fields: list[str], *, portable: str) -> None:
    """The script's greps of 20-portable.conf (systemd 254+). On 252 the drop-in has none of
    them but ``PORTABLE=`` and the os-release bind that 254 dropped."""
    dropin = t.dropin(unit)
    assert f"LogExtraFields=PORTABLE={portable}\n" in dropin
    if t.systemd >= 254:
        for field in fields:
            assert f"LogExtraFields={field}" in dropin, (field, dropin)
        assert ":/run/host/os-release" not in dropin
    else:
        assert "LogExtraFields=PORTABLE_" not in dropin
        assert ":/run/host/os-release\n" in dropin


# --- TEST-29-PORTABLE.sh ----------------------------------------------------------------------


def test_dissect_classifies_the_fixtures(t):
    """Scenario 1 (smoke test): systemd-dissect sees the fixtures as TEST-29 expects (they are
    the same images then). The words changed in v254 ("sysext"); confexts are v255+."""
    p = t.p
    kinds = {
        p.share / "minimal_0.raw": "portable service",
        p.share / "minimal_1.raw": "portable service",
        p.tmp / "app0.raw": "extension for portable service",
        p.tmp / "app1.raw": "extension for portable service",
    }
    if t.systemd >= 254:
        kinds |= {
            p.tmp / "app0.raw": "sysext for portable service",
            p.tmp / "app1.raw": "sysext for portable service",
            p.tmp / "conf0.raw": "confext for portable service",
        }
    for image, kind in kinds.items():
        out = t.box.run(["systemd-dissect", "--no-pager", str(image)]).stdout
        assert f"✓ {kind}\n" in out, (image, out)


@pytest.mark.parametrize("tool", TOOLS)
def test_empty_os_release_fails_without_crash(t, box_tmp, tool):
    """Scenario 2: an empty os-release / extension-release is refused; portabled crashed once
    ("Remote peer disconnected")."""
    (box_tmp / "emptyroot/usr/lib").mkdir(parents=True)
    (box_tmp / "emptyext/usr/lib/extension-release.d").mkdir(parents=True)
    (box_tmp / "emptyroot/usr/lib/os-release").touch()
    (box_tmp / "emptyext/usr/lib/extension-release.d/extension-release.emptyext").touch()
    r = t.fails(tool, "attach", "--extension", box_tmp / "emptyext", box_tmp / "emptyroot")
    assert "Remote peer disconnected" not in r.stderr
    assert t.listing(tool) == "No images.\n"


# --- TEST-29-PORTABLE.image.sh ------------------------------------------------------------------


def _expect_minimal(t: T29, marker: int) -> None:
    """minimal-app0 runs, with -foo from minimal_0 (MARKER=1) or -bar from minimal_1."""
    on, off = ("foo", "bar") if marker == 1 else ("bar", "foo")
    t.assert_active("minimal-app0.service", f"minimal-app0-{on}.service")
    t.assert_not_active(f"minimal-app0-{off}.service")


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("tool", TOOLS)
def test_raw_attach_reattach_detach(t, tool, force):
    """Scenarios 3-5, and 6 (``force``: stale unit files and drop-ins in the way, --force)."""
    share = t.p.share
    f = ["--force"] if force else []
    if force:
        t.sh(
            f"mkdir -p {ATTACHED}/minimal-app0.service.d && cd {ATTACHED} && "
            "for x in minimal-app0.service minimal-app0.service.d/10-profile.conf "
            "minimal-app0.service.d/20-portable.conf; do "
            "printf '[Unit]\\nDescription=Minimal App 0\\n' > $x; done && systemctl daemon-reload"
        )
    t.ok(tool, "attach", *f, "--now", "--runtime", share / "minimal_0.raw", "minimal-app0")
    t.ok(tool, "is-attached", *f, "minimal-app0")
    t.ok(tool, "inspect", *f, share / "minimal_0.raw", "minimal-app0.service")
    _expect_minimal(t, 1)
    # Not in the script: the v254+ log field of an image without extensions, and the journal.
    nv = [f"PORTABLE_NAME_AND_VERSION={os_name_and_version(t)}"]
    assert_log_fields(t, "minimal-app0.service", nv, portable="minimal_0.raw")
    assert_journal_fields(t, "minimal-app0.service", nv, portable="minimal_0.raw")
    t.ok(tool, "reattach", *f, "--now", "--runtime", share / "minimal_1.raw", "minimal-app0")
    t.ok(tool, "is-attached", *f, "minimal-app0")
    t.ok(tool, "inspect", *f, share / "minimal_0.raw", "minimal-app0.service")
    _expect_minimal(t, 2)
    assert "minimal_1" in t.listing(tool)
    assert "/org/freedesktop/portable1/image/minimal_5f1" in t.object_paths()
    t.ok(tool, "detach", *f, "--now", "--runtime", share / "minimal_1.raw", "minimal-app0")
    assert "No images." in t.listing(tool)
    assert "/org/freedesktop/portable1/image/minimal_5f1" not in t.object_paths()


@pytest.mark.parametrize("tool", TOOLS)
def test_is_attached_by_a_name_no_image_has(t, tool):
    """Not a scenario: what ``is-attached minimal-app0`` (scenarios 3, 6) prints. portablectl
    257 answers for whatever is attached (portabled's marker match takes a path_pick() failure,
    here ENOENT for a name that is no path, for a match: a negative int returned as bool); 252
    and we answer for the image named minimal-app0, which is not attached."""
    t.ok(tool, "attach", "--now", "--runtime", t.p.share / "minimal_0.raw", "minimal-app0")
    buggy = tool == REF and t.systemd >= 254
    for name in ("minimal-app0", "nonexistent"):
        assert t.status(tool, name) == ("running-runtime" if buggy else "detached"), name
    assert t.status(tool, "minimal_0") == "running-runtime"


@pytest.mark.parametrize("tool", TOOLS)
def test_raw_extension_attach_reattach_detach(t, tool):
    """Scenarios 7, 8 and 14 (app0): the log fields of v254+, the state kept after detach."""
    share, tmp = t.p.share, t.p.tmp
    ext = ["--extension", tmp / "app0.raw"]
    t.ok(tool, "attach", "--now", "--runtime", *ext, share / "minimal_0.raw", "app0")
    t.assert_active("app0.service")
    assert t.status(tool, "--extension", "app0", "minimal_0") == "running-runtime"
    fields = ["PORTABLE_EXTENSION=app0.raw", "PORTABLE_EXTENSION_NAME_AND_VERSION=app"]
    assert_log_fields(
        t, "app0.service", ["PORTABLE_ROOT=minimal_0.raw", *fields], portable="app0.raw"
    )
    # Not in the script: PID 1 logs them (with the root's name and version, v254+ too).
    root_nv = f"PORTABLE_ROOT_NAME_AND_VERSION={os_name_and_version(t)}"
    logged = ["PORTABLE_ROOT=minimal_0.raw", root_nv, *fields]
    assert_journal_fields(t, "app0.service", logged, portable="app0.raw")
    t.ok(tool, "reattach", "--now", "--runtime", *ext, share / "minimal_1.raw", "app0")
    t.assert_active("app0.service")
    assert t.status(tool, "--extension", "app0", "minimal_1") == "running-runtime"
    assert_log_fields(
        t, "app0.service", ["PORTABLE_ROOT=minimal_1.raw", *fields], portable="app0.raw"
    )
    t.ok(tool, "detach", "--now", "--runtime", *ext, share / "minimal_1.raw", "app0")
    # Scenario 14: DynamicUser=, a read-only image and StateDirectory= keep the state.
    assert "bar" in t.sh(f"cat {STATE_DIRECTORY}/app0/foo")


@pytest.mark.parametrize("tool", TOOLS)
def test_versioned_extension_without_force(t, tool):
    """Scenario 9 (v254+): app0_1.0.raw may carry extension-release.app0 (the name without
    its version); detach names minimal_1.raw, the root matched without its version. systemd
    252 refuses such an image (its PID 1 would refuse to mount it too), and so do we there."""
    share, tmp = t.p.share, t.p.tmp
    t.sh(f"cp {tmp}/app0.raw {tmp}/app0_1.0.raw")
    ext = ["--extension", tmp / "app0_1.0.raw"]
    if t.systemd < 254:
        r = t.fails(tool, "attach", "--now", "--runtime", *ext, share / "minimal_0.raw", "app0")
        assert "lacks extension-release data, refusing." in r.stderr, r
        assert t.listing(tool) == "No images.\n"
        return
    t.ok(tool, "attach", "--now", "--runtime", *ext, share / "minimal_0.raw", "app0")
    t.assert_active("app0.service")
    assert t.status(tool, "--extension", "app0_1", "minimal_0") == "running-runtime"
    t.ok(tool, "detach", "--now", "--runtime", *ext, share / "minimal_1.raw", "app0")
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_relaxed_extension_versions_and_no_reload(t, tool):
    """Scenarios 10, 11, 12 and 14 (app1: extension-release.app2 with the strict=false xattr)."""
    share, tmp = t.p.share, t.p.tmp
    app1, app1_2 = ["--extension", tmp / "app1.raw"], ["--extension", tmp / "app1_2.raw"]
    t.ok(tool, "attach", "--now", "--runtime", *app1, share / "minimal_0.raw", "app1")
    t.assert_active("app1.service")
    assert t.status(tool, "--extension", "app1", "minimal_0") == "running-runtime"
    # Adding or removing a version to the image doesn't break reattaching.
    t.sh(f"cp {tmp}/app1.raw {tmp}/app1_2.raw")
    t.ok(tool, "reattach", "--now", "--runtime", *app1_2, share / "minimal_1.raw", "app1")
    t.assert_active("app1.service")
    assert t.status(tool, "--extension", "app1_2", "minimal_1") == "running-runtime"
    t.ok(tool, "reattach", "--now", "--runtime", *app1, share / "minimal_1.raw", "app1")
    t.assert_active("app1.service")
    assert t.status(tool, "--extension", "app1", "minimal_1") == "running-runtime"
    # Scenario 12: --no-reload while the service runs, then reload and restart by hand.
    no_reload = ["--force", "--no-reload", "--runtime", *app1]
    t.ok(tool, "detach", *no_reload, share / "minimal_1.raw", "app1")
    t.ok(tool, "attach", *no_reload, share / "minimal_0.raw", "app1")
    t.box.systemctl(["daemon-reload"])
    t.box.systemctl(["restart", "app1.service"])
    t.assert_active("app1.service")
    assert t.status(tool, "--extension", "app1", "minimal_0") == "running-runtime"
    t.ok(tool, "detach", "--now", "--runtime", *app1, share / "minimal_0.raw", "app1")
    assert "baz" in t.sh(f"cat {STATE_DIRECTORY}/app1/foo")  # scenario 14


@pytest.mark.parametrize("tool", TOOLS)
def test_vpick_extension_directory(t, tool):
    """Scenario 13 (v256+): an extension given as app1.v/ is the newest app1_*.raw in it, and
    reattach picks again. Before vpick (252) app1.v/ is a plain directory extension, which
    has no extension-release file."""
    share, tmp = t.p.share, t.p.tmp
    t.sh(
        f"mkdir -p {tmp}/app1.v && cp {tmp}/app1.raw {tmp}/app1.v/app1_1.0.raw && "
        f"cp {tmp}/app1.raw {tmp}/app1.v/app1_2.0.raw"
    )
    ext = ["--extension", f"{tmp}/app1.v/"]
    if t.systemd < 256:
        r = t.fails(tool, "attach", "--now", "--runtime", *ext, share / "minimal_1.raw", "app1")
        assert "lacks extension-release data, refusing." in r.stderr, r
        assert t.listing(tool) == "No images.\n"
        return
    t.ok(tool, "attach", "--now", "--runtime", *ext, share / "minimal_1.raw", "app1")
    t.assert_active("app1.service")
    assert t.status(tool, "--extension", "app1_2.0.raw", "minimal_1") == "running-runtime"
    t.sh(f"rm -f {tmp}/app1.v/app1_2.0.raw")
    t.ok(tool, "reattach", "--now", "--runtime", *ext, share / "minimal_1.raw", "app1")
    t.assert_active("app1.service")
    assert t.status(tool, "--extension", "app1_1.0.raw", "minimal_1") == "running-runtime"
    t.ok(tool, "detach", "--now", "--runtime", *ext, share / "minimal_0.raw", "app1")
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_force_overrides_release_name_and_detach_after_deletion(t, tool):
    """Scenarios 15 and 16: app10.raw carries extension-release.app0; --force takes it (and
    tells PID 1 to relax its own check); detach works once the image is gone."""
    share, tmp = t.p.share, t.p.tmp
    t.sh(f"cp {tmp}/app0.raw {tmp}/app10.raw")
    ext = ["--extension", tmp / "app10.raw"]
    t.ok(tool, "attach", "--force", "--now", "--runtime", *ext, share / "minimal_0.raw", "app0")
    t.assert_active("app0.service")
    assert t.status(tool, *ext, share / "minimal_0.raw") == "running-runtime"
    assert "ExtensionImages=" in t.dropin("app0.service")
    assert f"ExtensionImages={tmp}/app10.raw:x-systemd.relax-extension-release-check\n" in t.dropin(
        "app0.service"
    )
    out = t.ok(tool, "inspect", "--force", "--cat", *ext, share / "minimal_0.raw", "app0").stdout
    assert f"Extension Release: {tmp}/app10.raw" in out
    t.sh(f"rm -f {tmp}/app10.raw && systemctl stop app0.service")
    t.ok(tool, "detach", "--force", "--runtime", *ext, share / "minimal_0.raw", "app0")
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_confext(t, tool):
    """Scenario 17 (v255+): a configuration extension (/etc/extension-release.d) next to a
    sysext. systemd 252 knows sysexts only: conf0.raw lacks extension-release data there."""
    share, tmp = t.p.share, t.p.tmp
    exts = ["--extension", tmp / "app0.raw", "--extension", tmp / "conf0.raw"]
    if t.systemd < 255:
        r = t.fails(tool, "attach", "--now", "--runtime", *exts, share / "minimal_0.raw", "app0")
        assert f"Image '{tmp}/conf0.raw' lacks extension-release data, refusing." in r.stderr, r
        assert t.listing(tool) == "No images.\n"
        return
    t.ok(tool, "attach", "--now", "--runtime", *exts, share / "minimal_0.raw", "app0")
    t.assert_active("app0.service")
    assert t.status(tool, *exts, share / "minimal_0.raw") == "running-runtime"
    out = t.ok(tool, "inspect", "--force", "--cat", *exts, share / "minimal_0.raw", "app0").stdout
    assert f"Extension Release: {tmp}/conf0.raw" in out
    t.ok(tool, "detach", "--now", "--runtime", *exts, share / "minimal_0.raw", "app0")
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_mixed_copy_of_raw_images(t, tool):
    """Scenario 18 (v256+; ours on every systemd): --copy=mixed copies the images and units
    (client-owned) but links the profile (OS-owned). Checked stricter than ``test -f``, which
    a link to a file passes too."""
    t.needs_ref(tool, 256, "no --copy=mixed")
    share, tmp = t.p.share, t.p.tmp
    ext = ["--extension", tmp / "app0.raw"]
    t.ok(tool, "attach", "--copy=mixed", "--runtime", *ext, share / "minimal_0.raw", "app0")
    assert t.file_kind("/run/portables/app0.raw") == "file"
    assert t.file_kind("/run/portables/minimal_0.raw") == "file"
    assert t.file_kind(f"{ATTACHED}/app0.service") == "file"
    assert t.file_kind(f"{ATTACHED}/app0.service.d/10-profile.conf") == "link"
    t.ok(tool, "detach", "--runtime", *ext, share / "minimal_0.raw", "app0")
    assert t.file_kind("/run/portables/app0.raw") == "none"
    assert t.file_kind("/run/portables/minimal_0.raw") == "none"


def _list_states(t: T29, tool: str) -> dict[str, str]:
    out = t.ok(tool, "list", "--no-legend").stdout
    return {line.split()[0]: line.split()[-1] for line in out.splitlines()}


@pytest.mark.parametrize("tool", TOOLS)
def test_shared_base_image(t, tool):
    """Scenario 19 (v254+ marker matching; ours on every systemd): two portables on one base
    image; detaching the base alone must fail and leave both."""
    share, tmp = t.p.share, t.p.tmp
    base = share / "minimal_0.raw"
    t.ok(tool, "attach", "--runtime", "--extension", tmp / "app0.raw", base, "app0")
    t.ok(tool, "attach", "--runtime", "--extension", tmp / "app1.raw", base, "app1")
    assert t.status(tool, "--extension", "app0", "minimal_0") == "attached-runtime"
    assert t.status(tool, "--extension", "app1", "minimal_0") == "attached-runtime"
    if tool == REF and t.systemd < 254:
        # systemd 252 matches the marker's first path alone: the base detaches both.
        t.ok(tool, "detach", "--runtime", base, "app")
        assert t.listing(tool) == "No images.\n"
        return
    t.fails(tool, "detach", "--runtime", base, "app")
    assert t.status(tool, "--extension", "app0", "minimal_0") == "attached-runtime"
    assert t.status(tool, "--extension", "app1", "minimal_0") == "attached-runtime"
    assert _list_states(t, tool) == {
        "app0": "attached-runtime",
        "app1": "attached-runtime",
        "minimal_0": "attached-runtime",
    }
    t.ok(tool, "detach", "--runtime", "--extension", tmp / "app0.raw", base, "app")
    assert t.status(tool, "--extension", "app1", "minimal_0") == "attached-runtime"
    t.ok(tool, "detach", "--runtime", "--extension", tmp / "app1.raw", base, "app")
    assert t.listing(tool) == "No images.\n"


# --- TEST-29-PORTABLE.directory.sh --------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_directory_images(t, tool):
    """Scenario 20: unsquashed minimal_0/1 as directory images, --copy=symlink, reattach
    --enable, detach --enable."""
    tmp = t.p.tmp
    t.ok(tool, "attach", "--copy=symlink", "--now", "--runtime", tmp / "minimal_0", "minimal-app0")
    _expect_minimal(t, 1)
    t.ok(tool, "reattach", "--now", "--enable", "--runtime", tmp / "minimal_1", "minimal-app0")
    _expect_minimal(t, 2)
    assert "minimal_1" in t.listing(tool)
    assert "/org/freedesktop/portable1/image/minimal_5f1" in t.object_paths()
    t.ok(tool, "detach", "--now", "--enable", "--runtime", tmp / "minimal_1", "minimal-app0")
    assert "No images." in t.listing(tool)
    assert "/org/freedesktop/portable1/image/minimal_5f1" not in t.object_paths()


@pytest.fixture
def overlay(t: T29) -> Iterator[Path]:
    """/tmp/overlay: app1 and rootdir stacked by overlayfs, with an os-release without
    PORTABLE_PREFIXES (portabled sees no extension here, so not app1's prefix either)."""
    tmp = t.p.tmp
    fix = tmp / "os-release-fix"
    (fix / "etc").mkdir(parents=True, exist_ok=True)
    (tmp / "overlay").mkdir(exist_ok=True)
    t.sh(f"grep -v '^PORTABLE_PREFIXES=' {tmp}/rootdir/etc/os-release > {fix}/etc/os-release")
    t.sh(f"mount -t overlay overlay -o lowerdir={fix}:{tmp}/app1:{tmp}/rootdir {tmp}/overlay")
    try:
        assert "SYSEXT_SCOPE=portable" in t.sh(
            f"grep . {tmp}/overlay/usr/lib/extension-release.d/*"
        )
        assert "PORTABLE_PREFIXES" not in t.sh(f"grep . {tmp}/overlay/etc/os-release")
        yield tmp / "overlay"
    finally:
        t.cleanup()  # nothing may keep the overlay busy
        t.box.run(["umount", str(tmp / "overlay")], check=False)


@pytest.mark.parametrize("tool", TOOLS)
def test_overlay_directory_and_force_over_stale_files(t, overlay, tool):
    """Scenarios 21 and 22: an overlayfs directory, detached by name; then --force with
    --copy=symlink over stale app1 unit files and drop-ins."""
    t.ok(tool, "attach", "--copy=symlink", "--now", "--runtime", overlay, "app1")
    t.assert_active("app1.service")
    t.ok(tool, "detach", "--now", "--runtime", "overlay", "app1")
    t.sh(
        f"mkdir -p {ATTACHED}/app1.service.d && cd {ATTACHED} && "
        "for x in app1.service app1.service.d/10-profile.conf app1.service.d/20-portable.conf; "
        "do printf '[Unit]\\nDescription=App 1\\n' > $x; done && systemctl daemon-reload"
    )
    t.ok(tool, "attach", "--force", "--copy=symlink", "--now", "--runtime", overlay, "app1")
    t.assert_active("app1.service")
    t.ok(tool, "detach", "--now", "--runtime", "overlay", "app1")
    assert t.listing(tool) == "No images.\n"


def _attach_directory_extensions(t: T29, tool: str, *flags: str) -> list[str | Path]:
    tmp = t.p.tmp
    exts: list[str | Path] = ["--extension", tmp / "app0", "--extension", tmp / "app1"]
    t.ok(tool, "attach", *flags, "--runtime", *exts, tmp / "rootdir", "app0", "app1")
    return exts


@pytest.mark.parametrize("tool", TOOLS)
def test_directory_extensions(t, tool):
    """Scenario 23: directory root and extensions; inspect by name shows every release file and
    unit; the drop-ins' log fields (v254+)."""
    tmp = t.p.tmp
    exts = _attach_directory_extensions(t, tool, "--copy=symlink", "--now")
    t.assert_active("app0.service", "app1.service")
    args = ["inspect", "--cat", "--extension", "app0", "--extension", "app1", "rootdir"]
    out = t.ok(tool, *args, "app0", "app1").stdout
    # grep -q -f FILE: here every line of each file must be in the output, not only one.
    for f in (
        "rootdir/usr/lib/os-release",
        "app0/usr/lib/extension-release.d/extension-release.app0",
        "app1/usr/lib/extension-release.d/extension-release.app2",
        "app1/usr/lib/systemd/system/app1.service",
        "app0/usr/lib/systemd/system/app0.service",
    ):
        lines = t.sh(f"cat {tmp}/{f}").splitlines()  # mounted in the box only
        assert [x for x in lines if x and x not in out.splitlines()] == [], f
    common = [
        "PORTABLE_ROOT=rootdir",
        "PORTABLE_EXTENSION=app0",
        "PORTABLE_EXTENSION_NAME_AND_VERSION=app",
        "PORTABLE_EXTENSION=app1",
        "PORTABLE_EXTENSION_NAME_AND_VERSION=app_1",
    ]
    assert_log_fields(t, "app0.service", common, portable="app0")
    assert_log_fields(t, "app1.service", common, portable="app1")
    t.ok(tool, "detach", "--now", "--runtime", *exts, tmp / "rootdir", "app0", "app1")
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_detach_clean(t, tool):
    """Scenario 24 (v256+; ours on every systemd): detach --clean removes the state and runtime
    directories of the services."""
    t.needs_ref(tool, 256, "no detach --clean")
    tmp = t.p.tmp
    exts = _attach_directory_extensions(t, tool, "--copy=symlink", "--now")
    t.assert_active("app0.service", "app1.service")
    assert t.file_kind(f"{STATE_DIRECTORY}/app0") == "dir"
    t.ok(tool, "detach", "--clean", "--now", "--runtime", *exts, tmp / "rootdir", "app0", "app1")
    for d in ("/var/lib/app0", "/run/app0", f"{STATE_DIRECTORY}/app0", f"{STATE_DIRECTORY}/app1"):
        assert t.file_kind(d) == "none", d


@pytest.mark.parametrize("tool", TOOLS)
def test_mixed_copy_of_directory_images(t, tool):
    """Scenario 25 (v256+; ours on every systemd): --copy=mixed with directories: the trees
    are copied (``test -d`` would pass for links too: checked they are not), the units copied,
    the profiles linked."""
    t.needs_ref(tool, 256, "no --copy=mixed")
    tmp = t.p.tmp
    exts = _attach_directory_extensions(t, tool, "--copy=mixed")
    for name in ("app0", "app1", "rootdir"):
        assert t.file_kind(f"/run/portables/{name}") == "dir", name
    for unit in ("app0.service", "app1.service"):
        assert t.file_kind(f"{ATTACHED}/{unit}") == "file", unit
        assert t.file_kind(f"{ATTACHED}/{unit}.d/10-profile.conf") == "link", unit
    t.ok(tool, "detach", "--runtime", *exts, tmp / "rootdir", "app0", "app1")
    for name in ("app0", "app1", "rootdir"):
        assert t.file_kind(f"/run/portables/{name}") == "none", name


@pytest.mark.parametrize("tool", TOOLS)
def test_force_with_directory_extension(t, tool):
    """Scenario 26 (v257): --force relaxes the release check of extension images only; an
    ExtensionDirectories= path gets no ``:x-systemd.relax-extension-release-check`` (PID 1
    would take it for part of the path). systemd 252 decided by the root image's type, here a
    directory too (see the next test for a raw root)."""
    tmp = t.p.tmp
    ext = ["--extension", tmp / "app0"]
    t.ok(
        tool,
        "attach",
        "--force",
        "--copy=symlink",
        "--now",
        "--runtime",
        *ext,
        tmp / "rootdir",
        "app0",
    )
    t.assert_active("app0.service")
    assert t.status(tool, "--extension", "app0", "rootdir") == "running-runtime"
    dropin = t.dropin("app0.service")
    assert f"ExtensionDirectories={tmp}/app0\n" in dropin
    assert "x-systemd.relax-extension-release-check" not in dropin
    t.ok(tool, "detach", "--now", "--runtime", *ext, tmp / "rootdir", "app0")
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_force_with_directory_extension_on_raw_root(t, tool):
    """Not a TEST-29 scenario: the case where systemd 252 gets scenario 26 wrong. With a raw
    root it appends the relax option to ExtensionDirectories= too, and PID 1 then fails to
    start the service (no such directory); 257 and we write the bare path."""
    share, tmp = t.p.share, t.p.tmp
    ext = ["--extension", tmp / "app0"]
    args = ["--force", "--runtime", *ext, share / "minimal_0.raw", "app0"]
    t.ok(tool, "attach", *args)
    dropin = t.dropin("app0.service")
    if tool == REF and t.systemd < 257:
        relaxed = f"ExtensionDirectories={tmp}/app0:x-systemd.relax-extension-release-check\n"
        assert relaxed in dropin
        assert t.box.systemctl(["start", "app0.service"], check=False).returncode != 0
    else:
        assert f"ExtensionDirectories={tmp}/app0\n" in dropin
        t.box.systemctl(["start", "app0.service"])
        t.assert_active("app0.service")
    t.ok(tool, "detach", "--now", "--runtime", *ext, share / "minimal_0.raw", "app0")
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_detach_enable_after_symlink_attach(t, tool):
    """Scenario 27 (systemd issue #23481): detach --enable of a --copy=symlink attach, twice,
    so drop-ins left without unit files would show."""
    tmp = t.p.tmp
    for _ in range(2):
        t.ok(
            tool, "attach", "--copy=symlink", "--now", "--runtime", tmp / "rootdir", "minimal-app0"
        )
        t.ok(tool, "detach", "--now", "--runtime", "--enable", tmp / "rootdir", "minimal-app0")
        assert t.file_kind(ATTACHED) == "none"
    assert t.listing(tool) == "No images.\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_wrong_extension_release_file_ignored(t, tool):
    """Scenario 28: an extension-release.* named for another image and without the xattr is
    ignored when the one that applies has user.extension-release.strict=false."""
    tmp, wrongext = t.p.tmp, t.p.cache / "wrongext"
    rel = wrongext / "usr/lib/extension-release.d"
    _write(wrongext / "usr/lib/systemd/system/app0.service", "[Service]\n")
    _write(rel / "extension-release.wrongext_somethingwrong.txt", "")
    t.sh(f"cp {tmp}/rootdir/usr/lib/os-release {rel}/extension-release.app0")  # a box mount
    os.setxattr(rel / "extension-release.app0", "user.extension-release.strict", b"false")
    t.ok(tool, "attach", "--runtime", "--extension", wrongext, tmp / "rootdir", "app0")
    assert t.status(tool, "--extension", "wrongext", "rootdir") == "attached-runtime"
    t.ok(tool, "detach", "--runtime", "--extension", wrongext, tmp / "rootdir", "app0")
    assert t.listing(tool) == "No images.\n"
