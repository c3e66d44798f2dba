"""Hardening 2 (issue 16), on an alternate root: image paths the drop-in can't carry, instances
of host templates, alias links inside images.

1. An image path that is not UTF-8 is refused in portablectl's words (sd-bus can't send it);
   one that systemd would read differently in a unit file (a ``%`` specifier, whitespace at the
   end, a trailing backslash; for an extension list also whitespace, quotes, ``:``) is refused
   too: PID 1 would run the service on another root, or ignore ``RootDirectory=`` and run it on
   the host's. The drop-in writer itself raises rather than write such a value.
   ``Environment=PORTABLE=``/``LogExtraFields=`` carry the image's file name exactly as
   portablectl writes it: a space in the name splits the assignment as it does for portablectl.
2. An image's instance of a template the host has (``getty@tty9.service`` on a host with
   ``getty@.service``) exists on the host already, as systemd's unit_file_exists() says.
3. A symlink in an image's unit directory to a unit of another name in a unit directory is an
   alias, and left out; a symlink to a file elsewhere is a linked unit file and is attached.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import roots

from portable.engine.attach import UnitExists, attach
from portable.engine.dropins import UnwritableValue, path_problem, render_portable_dropin
from portable.errors import PortableError
from portable.images.inspect import inspect_image_with_extensions
from portable.plugin.types import AttachOptions, ExtraSetting, Image, ImageFormat, UnitFile
from portable.plugins.image_formats.directory import DIRECTORY
from portable.systemd.host import Host
from portable.systemd.names import printable_path, unit_template
from portable.testing.images import make_directory_image, mark_systemd_version, service_unit

U8 = os.fsdecode(b"u8_1\xff")  # a file name that is not UTF-8, as Python sees it
ATTACHED = "run/systemd/system.attached"


root = roots.host_root  # (a fixture)


registry = roots.registry  # (a fixture)


def image(root: Path, name: str, units: dict[str, str], **kw: object) -> str:
    make_directory_image(root / "srv/images" / name, units=units, busybox=False, **kw)
    return f"/srv/images/{name}"


def do_attach(root: Path, registry, arg: str, **kw: object):
    return attach(arg, AttachOptions(runtime=True, **kw), host=Host(root), registry=registry)


def snapshot(root: Path) -> set[str]:
    """Every path below the root outside the images."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if not rel.startswith("srv"):
                out.add(rel)
    return out


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "portable", "--root", str(root), *args],
        capture_output=True,
        check=False,
        env={**os.environ, "PORTABLE_SERVICES_NO_PLUGINS": "1"},
    )


# --- 1. image paths the drop-in can't carry ---------------------------------------------------


@pytest.mark.parametrize("systemd", [252, 257])
def test_non_utf8_image_path_is_refused_in_portablectls_words(root, registry, systemd):
    mark_systemd_version(root, systemd)
    arg = image(root, U8, {"u8.service": service_unit()})
    before = snapshot(root)
    with pytest.raises(PortableError) as err:
        do_attach(root, registry, arg)
    # portablectl (252 and 257): sd-bus refuses the string; then a hint of ours.
    assert str(err.value).startswith("Failed to create bus message: Invalid argument (")
    assert "'/srv/images/u8_1\\xff' is not valid UTF-8" in str(err.value)
    assert snapshot(root) == before
    proc = cli(root, "attach", "--runtime", arg)
    assert proc.returncode == 1
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "portable: error: Failed to create bus message: Invalid argument"
    ), proc.stderr
    assert snapshot(root) == before
    with pytest.raises(PortableError, match=r"^Failed to create bus message"):
        inspect_image_with_extensions(arg, host=Host(root), registry=registry)


def test_symlink_to_a_non_utf8_image_is_refused(root, registry):
    real = image(root, U8, {"u8.service": service_unit()})
    os.symlink(os.path.basename(real), root / "srv/images/u8_2")
    before = snapshot(root)
    with pytest.raises(PortableError, match=r"^Failed to create bus message: Invalid argument"):
        do_attach(root, registry, "/srv/images/u8_2", prefixes=("u8",))
    assert snapshot(root) == before


def test_non_utf8_extension_is_refused(root, registry):
    arg = image(root, "app_1", {"app.service": service_unit()})
    ext = image(
        root,
        os.fsdecode(b"ext\xfe"),
        {},
        os_release=None,
        files={"usr/lib/extension-release.d/extension-release.ext\udcfe": "ID=_any\n"},
    )
    before = snapshot(root)
    with pytest.raises(PortableError, match=r"^Failed to create bus message: Invalid argument"):
        do_attach(root, registry, arg, extensions=(ext,))
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("pc_1%z", "contains '%' (systemd expands it as a specifier)"),
        ("pn_1%n", "contains '%' (systemd expands it as a specifier)"),
        ("ws_1 ", "begins or ends with whitespace (systemd strips it)"),
        ("bk_1\\", "ends with a backslash (systemd would join the next line to it)"),
    ],
)
@pytest.mark.parametrize("systemd", [252, 257])
def test_image_path_systemd_would_read_otherwise_is_refused(root, registry, name, why, systemd):
    """portablectl writes these paths: %z makes PID 1 ignore RootDirectory= (the service runs
    on the host's root), %n points it at another directory, the trailing space is stripped
    (another directory), the trailing backslash joins the next line to the path."""
    mark_systemd_version(root, systemd)
    arg = image(root, name, {f"{name[:2]}.service": service_unit()})
    before = snapshot(root)
    with pytest.raises(PortableError) as err:
        do_attach(root, registry, arg, prefixes=(name[:2],))
    assert str(err.value) == (
        f"Image path '{arg}' {why}, so it can't be written as RootDirectory= in a unit file, "
        "refusing."
    )
    assert snapshot(root) == before


def test_extension_path_that_a_list_would_split_is_refused(root, registry):
    arg = image(root, "app_1", {"app.service": service_unit()})
    ext = image(
        root,
        "ext 1",
        {},
        os_release=None,
        files={"usr/lib/extension-release.d/extension-release.ext 1": "ID=_any\n"},
    )
    before = snapshot(root)
    with pytest.raises(PortableError, match="as ExtensionDirectories= in a unit file"):
        do_attach(root, registry, arg, extensions=(ext,))
    assert snapshot(root) == before


def test_path_rules():
    for setting in ("RootDirectory", "RootImage", "ExtensionDirectories", "ExtensionImages"):
        assert path_problem(setting, "/srv/images/foo_1.2") is None
        assert path_problem(setting, "/srv/images/foo\udcff") == "is not valid UTF-8"
        assert path_problem(setting, "/srv/a\tb") == "contains a control character"
        assert path_problem(setting, "/srv/a%%b") is not None
    # A space, quotes, a backslash inside a root path are read as written (no word splitting).
    for path in ("/srv/my images/a_1", "/srv/a\"b'c", "/srv/a\\b"):
        assert path_problem("RootDirectory", path) is None
        assert path_problem("RootImage", path) is None
        assert path_problem("ExtensionDirectories", path) is not None
        assert path_problem("ExtensionImages", path) is not None
    assert path_problem("ExtensionDirectories", "/srv/a:b") is None
    assert path_problem("RootImage", "/srv/a:b.raw") is None
    assert path_problem("ExtensionImages", "/srv/a:b.raw") == (
        "contains ':' (systemd takes what follows for mount options)"
    )


def test_a_space_in_the_image_name_is_written_as_portablectl_writes_it(root, registry):
    """portablectl 252 and 257 write the name as it is; PID 1 then splits Environment= and
    LogExtraFields= at the space (PORTABLE=sp_1, "x" ignored): the same bytes split the same way
    (tests/test_box_hardening2.py compares them with portablectl's)."""
    mark_systemd_version(root, 257)
    arg = image(root, "sp_1 x", {"sp.service": service_unit()})
    do_attach(root, registry, arg, prefixes=("sp",))
    dropin = (root / ATTACHED / "sp.service.d/20-portable.conf").read_bytes()
    assert dropin == (
        b"# Drop-in created for image '/srv/images/sp_1 x', do not edit.\n\n[Service]\n"
        b"RootDirectory=/srv/images/sp_1 x\nEnvironment=PORTABLE=sp_1 x\n"
        b"LogExtraFields=PORTABLE=sp_1 x\nLogExtraFields=PORTABLE_NAME_AND_VERSION=portabletest_1\n"
    )


# --- the drop-in writer's own guard -----------------------------------------------------------

RAW = ImageFormat(
    name="raw-test",
    description="a raw image (test double)",
    image_type="raw",
    detect=lambda p: False,
    open=DIRECTORY.open,
    root_setting="RootImage",
)
UNIT = UnitFile(
    name="foo.service", source="/usr/lib/systemd/system/foo.service", resolved="", data=b"x"
)


def img(path: str, fmt: ImageFormat = DIRECTORY) -> Image:
    return Image(path=path, host_path=Path(path), name=path.rsplit("/", 1)[-1], format=fmt)


def render(image: Image, **kw: object) -> bytes:
    return render_portable_dropin(image, UNIT, host_os_release="/etc/os-release", **kw)


@pytest.mark.parametrize(
    ("path", "fmt", "message"),
    [
        (
            "/srv/u8_1\udcff",
            DIRECTORY,
            "RootDirectory=/srv/u8_1\\xff is not valid UTF-8",
        ),
        ("/srv/pc_1%z", RAW, "RootImage=/srv/pc_1%z contains '%'"),
        ("/srv/ws_1 ", DIRECTORY, "RootDirectory=/srv/ws_1  begins or ends with whitespace"),
        ("/srv/bk_1\\", RAW, "RootImage=/srv/bk_1\\ ends with a backslash"),
    ],
)
def test_writer_raises_rather_than_write_a_path_systemd_would_not_read(path, fmt, message):
    with pytest.raises(UnwritableValue) as err:
        render(img(path, fmt))
    assert str(err.value).startswith(f"Can't write 20-portable.conf of 'foo.service': {message}")
    assert "\n" not in str(err.value)


def test_writer_checks_extension_lines():
    ext = img("/srv/ext 1")
    with pytest.raises(
        UnwritableValue, match="ExtensionDirectories=/srv/ext 1 contains whitespace"
    ):
        render(img("/srv/app_1"), extension_images=[ext], origin=ext, systemd=257)
    raw = img("/srv/e:1.raw", RAW)
    with pytest.raises(UnwritableValue, match="contains ':'"):
        render(img("/srv/app_1"), extension_images=[raw], origin=raw, relax_extension_check=True)
    fine = img("/srv/e_1.raw", RAW)
    out = render(
        img("/srv/app_1"), extension_images=[fine], origin=fine, relax_extension_check=True
    )
    assert b"ExtensionImages=/srv/e_1.raw:x-systemd.relax-extension-release-check\n" in out


@pytest.mark.parametrize("systemd", [254, 257])
def test_writer_checks_values_from_the_images_os_release(systemd):
    """A version ending in a backslash would join the next line (a hook's setting, e.g.
    NetworkNamespacePath=) to LogExtraFields=; a newline (254-256 keep control characters)
    would add a line of the image's choosing."""
    extra = [ExtraSetting(key="NetworkNamespacePath", value="/run/netns/x")]
    with pytest.raises(UnwritableValue, match="ends with a backslash"):
        render(
            img("/srv/a_1"),
            systemd=systemd,
            os_release_fields={"ID": "a", "VERSION_ID": "1\\"},
            extra=extra,
        )
    fields = {"ID": "a", "VERSION_ID": "1\nUser=root"}
    if systemd >= 257:  # dropped, as portabled 257 drops it
        assert b"User=root" not in render(
            img("/srv/a_1"), systemd=systemd, os_release_fields=fields
        )
    else:
        with pytest.raises(UnwritableValue, match="contains a control character"):
            render(img("/srv/a_1"), systemd=systemd, os_release_fields=fields)


def test_writer_checks_hook_settings():
    for value in ("a\tb", "x\\", "\udcff"):
        with pytest.raises(
            UnwritableValue, match=r"^Can't write 20-portable\.conf of 'foo\.service': Foo="
        ):
            render(img("/srv/a_1"), extra=[ExtraSetting(key="Foo", value=value)])
    with pytest.raises(UnwritableValue, match="section 'X\\]Y' is not a section name"):
        render(
            img("/srv/a_1"),
            extra=[ExtraSetting(key="Foo", value="1", section="X]Y", units=("foo.service",))],
        )
    # Specifiers, spaces and quotes are a hook's to use: PID 1 reads them as the hook meant.
    out = render(img("/srv/a_1"), extra=[ExtraSetting(key="LogsDirectory", value='%N "a b"')])
    assert out.endswith(b'\nLogsDirectory=%N "a b"\n')


# --- 2. an instance of a host template --------------------------------------------------------


@pytest.mark.parametrize("where", ["usr/lib/systemd/system", "etc/systemd/system", ATTACHED])
def test_instance_of_a_host_template_exists_on_the_host(root, registry, where):
    host_units = root / where
    host_units.mkdir(parents=True, exist_ok=True)
    (host_units / "getty@.service").write_text("[Service]\nExecStart=/sbin/agetty %I\n")
    arg = image(root, "getty_1", {"getty@tty9.service": service_unit()})
    before = snapshot(root)
    with pytest.raises(UnitExists) as err:
        do_attach(root, registry, arg)
    assert str(err.value) == "Unit file 'getty@tty9.service' exists on the host already, refusing."
    assert snapshot(root) == before
    proc = cli(root, "attach", "--runtime", arg)
    assert proc.returncode == 1 and proc.stderr == (
        b"portable: error: Unit file 'getty@tty9.service' exists on the host already, refusing.\n"
    )
    # --force attaches over it, as portablectl --force does
    res = do_attach(root, registry, arg, force=True)
    assert [u.name for u in res.units] == ["getty@tty9.service"]


def test_template_and_its_instance_from_one_image_attach_and_reattach(root, registry):
    arg = image(root, "foo_1", {"foo@.service": service_unit(), "foo@x.service": service_unit()})
    first = do_attach(root, registry, arg)
    assert [u.name for u in first.units] == ["foo@.service", "foo@x.service"]
    again = do_attach(root, registry, arg)
    assert again.already_attached
    # an interrupted attach (the instance's file missing) is completed, not refused
    (root / ATTACHED / "foo@x.service").unlink()
    assert do_attach(root, registry, arg).completed_interrupted
    # attaching only the instance while the same image's template is attached: not refused
    (root / ATTACHED / "foo@x.service").unlink()
    for f in (root / ATTACHED / "foo@x.service.d").iterdir():
        f.unlink()
    (root / ATTACHED / "foo@x.service.d").rmdir()
    do_attach(root, registry, arg, prefixes=("foo@x",))


def test_template_of_another_image_is_refused(root, registry):
    do_attach(root, registry, image(root, "foo_1", {"foo@.service": service_unit()}))
    other = image(root, "foo_2", {"foo@x.service": service_unit()})
    with pytest.raises(UnitExists, match=r"'foo@x\.service' exists on the host already"):
        do_attach(root, registry, other)


def test_unit_template():
    assert unit_template("getty@tty9.service") == "getty@.service"
    assert unit_template("a@b@c.socket") == "a@.socket"
    assert unit_template("getty@.service") is None
    assert unit_template("foo.service") is None


# --- 3. alias links inside images --------------------------------------------------------------


def units_of(root: Path, registry, arg: str, prefixes: tuple[str, ...] = ()) -> list[str]:
    found = inspect_image_with_extensions(arg, prefixes, host=Host(root), registry=registry)
    return [u.name for u in found.units]


def test_debian_alias_link_is_left_out(root, registry):
    """As a Debian package ships it (what enabling a unit with Alias=redis.service makes):
    /lib is a link to usr/lib in the image, the alias an absolute link into it."""
    arg = image(
        root,
        "redis_1",
        {"redis-server.service": service_unit() + "Alias=redis.service\n"},
        symlinks={"etc/systemd/system/redis.service": "/lib/systemd/system/redis-server.service"},
    )
    assert units_of(root, registry, arg) == ["redis-server.service"]
    res = do_attach(root, registry, arg)
    assert [u.name for u in res.units] == ["redis-server.service"]
    assert sorted(os.listdir(root / ATTACHED)) == ["redis-server.service", "redis-server.service.d"]


@pytest.mark.parametrize(
    "target",
    [
        "foo-server.service",  # relative, the same directory
        "../../../../usr/lib/systemd/system/foo-server.service",
        "/usr/lib/systemd/system/foo-server.service",
    ],
)
def test_alias_links_are_left_out(root, registry, target):
    arg = image(
        root,
        "foo_1",
        {"foo-server.service": service_unit()},
        symlinks={"usr/lib/systemd/system/foo.service": target},
    )
    assert units_of(root, registry, arg) == ["foo-server.service"]


def test_an_alias_hides_a_file_of_its_name_further_down(root, registry):
    """systemd's search order: the image's /etc/systemd/system/foo.service (an alias) is what
    the name stands for, not the /usr/lib file below it."""
    arg = image(
        root,
        "foo_1",
        {"foo.service": service_unit(), "foo-real.service": service_unit()},
        symlinks={"etc/systemd/system/foo.service": "/usr/lib/systemd/system/foo-real.service"},
    )
    assert units_of(root, registry, arg) == ["foo-real.service"]


def test_linked_unit_files_are_attached(root, registry):
    """A link to a file outside the unit directories is the unit itself (systemd: a linked
    unit file, loaded under the link's name), and so is a link to a file of the same name."""
    arg = image(
        root,
        "foo_1",
        {"foo-a.service": service_unit(description="a")},
        files={"opt/foo/main.service": service_unit(description="b")},
        symlinks={
            "etc/systemd/system/foo-b.service": "/opt/foo/main.service",
            "etc/systemd/system/foo-a.service": "/usr/lib/systemd/system/foo-a.service",
        },
    )
    found = inspect_image_with_extensions(arg, host=Host(root), registry=registry)
    assert {u.name: u.resolved for u in found.units} == {
        "foo-a.service": "/usr/lib/systemd/system/foo-a.service",
        "foo-b.service": "/opt/foo/main.service",
    }


def test_link_to_a_file_that_is_no_unit_name_is_read_through(root, registry):
    """No alias (systemd ignores an alias to a name that is no unit of the same type): the
    link is followed as before; a loop through such names stays an error."""
    arg = image(
        root,
        "foo_1",
        {},
        files={"usr/lib/systemd/system/foo.conf": service_unit()},
        symlinks={"usr/lib/systemd/system/foo.service": "foo.conf"},
    )
    assert units_of(root, registry, arg) == ["foo.service"]


def test_printable_path():
    assert printable_path("/srv/u8_1\udcff") == "/srv/u8_1\\xff"
    assert printable_path("/srv/a\nb") == "/srv/a\\nb"
    assert printable_path("/srv/plain") == "/srv/plain"
