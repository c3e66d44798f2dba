"""Property-based tests (hypothesis) for what parses or renders untrusted input, where
test_osrelease.py and test_names.py leave gaps.

Already covered elsewhere, not repeated here: os-release round trips and the reference state
machine (test_osrelease.py); unit names, prefixes, image names, marker escaping and matching
(test_names.py). Added here: the ``20-portable.conf`` drop-in parsed back gives the marker and
the settings; the transaction's temporary names always fit in a file name and map back to the
file they stand for; confined reads of generated symlink forests never leave the image; os-release
parsing and unit discovery never raise anything but a one-line error on arbitrary bytes.

GPT headers (plugins/image_formats/probe.py): a table written by tests/helpers/corpus.gpt_image
reads back as written; any header a hostile image can carry (every field arbitrary, checksums
right) and any bytes at all give a table or a BadImage, nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portable.engine.dropins import (
    UnwritableValue,
    path_problem,
    render_portable_dropin,
    value_problem,
)
from portable.engine.transaction import NAME_MAX, TEMP_PREFIX, _original_name, _temp_name
from portable.images.confined import UnsafePath, open_root, read_file
from portable.images.osrelease import parse_os_release
from portable.plugin.types import ExtraSetting, Image, ImageFormat, UnitFile
from portable.plugins.image_formats.directory import DIRECTORY
from portable.systemd.names import parse_marker

# --- drop-in rendering round trip ---------------------------------------------------------

RAW = ImageFormat(
    name="raw-test",
    description="a raw image (test double)",
    image_type="raw",
    detect=lambda p: False,
    open=DIRECTORY.open,
    root_setting="RootImage",
)

# Path components as they come from a file system: anything but '/' and NUL. Control
# characters are excluded: resolve_image refuses such image paths (test_hostile's
# image-path-with-newline cases), so they never reach the renderer.
component = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"),
    min_size=1,
    max_size=12,
).filter(lambda c: c not in (".", ".."))
image_path = st.lists(component, min_size=1, max_size=4).map(lambda cs: "/" + "/".join(cs))
unit_name = st.builds(
    lambda stem, inst, kind: f"{stem}{inst}.{kind}",
    st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True),
    st.sampled_from(["", "@", "@x"]),
    st.sampled_from(["service", "socket", "timer", "path", "target"]),
)
setting_value = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=20
)
extra_setting = st.builds(
    ExtraSetting,
    key=st.from_regex(r"[A-Z][A-Za-z0-9]{0,12}", fullmatch=True),
    value=setting_value,
    section=st.sampled_from(["Service", "Socket", "Unit", "Timer"]),
    units=st.lists(unit_name, max_size=2).map(tuple),
)


def parse_unit_file(text: str) -> list[tuple[str | None, str, str]]:
    """(section, key, value) for every assignment, in order; comments and blanks skipped.

    Strict: a line that is neither blank, a comment, a section header nor ``key=value`` fails.
    """
    out: list[tuple[str | None, str, str]] = []
    section = None
    for line in text.split("\n"):
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        assert eq and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"not an assignment: {line!r}"
        out.append((section, key, value))
    return out


def make_image(path: str, fmt: ImageFormat) -> Image:
    return Image(path=path, host_path=Path(path), name=path.rsplit("/", 1)[-1], format=fmt)


def make_unit(name: str) -> UnitFile:
    return UnitFile(name=name, source=f"/usr/lib/systemd/system/{name}", resolved="", data=b"x")


def applicable(unit: UnitFile, extra: list[ExtraSetting]) -> list[tuple[str, str, str]]:
    """The extra settings that apply to ``unit``, grouped by section in order of first
    appearance, a service's own [Service] group first (it continues the [Service] section)."""
    out = [
        (s.section, s.key, s.value)
        for s in extra
        if ((unit.name in s.units) if s.units else s.section.lower() == unit.type)
    ]
    order = list(dict.fromkeys(sec for sec, _, _ in out))
    if unit.type == "service" and "Service" in order:
        order.remove("Service")
        order.insert(0, "Service")
    return [x for sec in order for x in out if x[0] == sec]


@given(
    path=image_path,
    extensions=st.lists(image_path, max_size=3),
    unit=unit_name.map(make_unit),
    fmt=st.sampled_from([DIRECTORY, RAW]),
    extra=st.lists(extra_setting, max_size=5),
    host_os_release=st.sampled_from(["/etc/os-release", "/usr/lib/os-release"]),
)
def test_portable_dropin_round_trip(path, extensions, unit, fmt, extra, host_os_release):
    """Parsed back, 20-portable.conf gives the marker (image and extensions), the settings
    pointing at the image, and every hook setting in its section; or, exactly when systemd
    would not read one of them as written, rendering raises a one-line error."""
    extras = applicable(unit, extra)
    image = make_image(path, fmt)
    unreadable = (unit.type == "service" and path_problem(fmt.root_setting, path) is not None) or (
        any(value_problem(value) is not None for _, _, value in extras)
    )
    try:
        data = render_portable_dropin(
            image, unit, host_os_release=host_os_release, extensions=extensions, extra=extra
        )
    except UnwritableValue as exc:
        assert unreadable and "\n" not in str(exc)
        return
    assert not unreadable
    text = data.decode("utf-8", "surrogateescape")
    assert text.endswith("\n")
    first, _, rest = text.partition("\n")
    assert parse_marker(first) == [path, *extensions]
    base = []
    if unit.type == "service":
        filename = path.rsplit("/", 1)[-1]
        base = [
            ("Service", fmt.root_setting, path),
            ("Service", "Environment", f"PORTABLE={filename}"),
            ("Service", "BindReadOnlyPaths", f"{host_os_release}:/run/host/os-release"),
            ("Service", "LogExtraFields", f"PORTABLE={filename}"),
        ]
    assert parse_unit_file(rest) == base + extras


def test_hook_service_settings_after_another_section_stay_in_service():
    extra = [
        ExtraSetting(key="After", value="netns@x.service", section="Unit", units=("foo.service",)),
        ExtraSetting(key="NetworkNamespacePath", value="/run/netns/x"),
    ]
    data = render_portable_dropin(
        make_image("/srv/foo_1", DIRECTORY),
        make_unit("foo.service"),
        host_os_release="/etc/os-release",
        extra=extra,
    )
    text = data.decode()
    parsed = parse_unit_file(text.partition("\n")[2])
    assert ("Service", "NetworkNamespacePath", "/run/netns/x") in parsed, text
    assert ("Unit", "After", "netns@x.service") in parsed, text


# --- the transaction's temporary names --------------------------------------------------------

any_filename = st.binary(min_size=1, max_size=NAME_MAX).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@given(name=any_filename, kind=st.sampled_from(["new", "backup", "removed"]))
def test_temporary_names_fit_and_map_back(name, kind):
    target = Path("/x") / os.fsdecode(name)
    temp = _temp_name(target, kind)
    assert len(os.fsencode(temp.name)) <= NAME_MAX
    if temp.parent == target.parent:  # decorated name: it says what it stands for
        assert temp.name.startswith(TEMP_PREFIX)
        assert _original_name(temp.name) == (kind, target.name)
    else:  # too long: a holder directory says the kind, the entry keeps the name
        assert temp.name == target.name
        assert temp.parent.parent == target.parent
        assert _original_name(temp.parent.name) == ("hold", kind)


@given(a=any_filename, b=any_filename, kind=st.sampled_from(["new", "backup", "removed"]))
def test_temporary_names_are_never_unit_or_dropin_names(a, b, kind):
    from portable.systemd.names import is_valid_unit_name

    temp = _temp_name(Path("/x") / os.fsdecode(a), kind)
    for name in (temp.name, temp.parent.name):
        if name.startswith(TEMP_PREFIX):
            assert not is_valid_unit_name(name)
            assert not name.endswith(".conf")


# --- confined reads of generated symlink forests ---------------------------------------------

link_target = st.one_of(
    st.sampled_from(["/", "..", "../..", "/etc", "/etc/os-release", "secret", "../secret"]),
    st.lists(
        st.sampled_from(["..", ".", "a", "b", "c", "etc", "os-release", "x" * 300]),
        min_size=1,
        max_size=6,
    ).map("/".join),
    st.lists(st.sampled_from(["a", "b", "c", ".."]), min_size=1, max_size=4).map(
        lambda cs: "/" + "/".join(cs)
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    links=st.dictionaries(
        st.sampled_from(["a", "b", "c", "etc/os-release", "a/x", "b/y"]), link_target, max_size=6
    )
)
def test_confined_reads_never_leave_the_image(tmp_path_factory, links):
    """Whatever symlinks an image holds, a read inside it gives a file of the image, None, or
    an UnsafePath: never the secret next to the image, never another exception."""
    top = tmp_path_factory.mktemp("forest")
    (top / "secret").write_text("SECRET")
    img = top / "img"
    (img / "etc").mkdir(parents=True)
    (img / "inside").write_text("inside")
    for rel, target in links.items():
        p = img / rel
        if os.path.lexists(p) or os.path.islink(p.parent) or not os.path.isdir(p.parent):
            continue
        os.symlink(target, p)
    with open_root(img) as fd:
        for path in ("/a", "/b", "/c", "/etc/os-release", "/a/x", "/b/y", "/a/../b", "/../secret"):
            try:
                got = read_file(fd, path, max_size=1024)
            except UnsafePath:
                continue
            assert got is None or got.data == b"inside", (path, got)


# --- arbitrary bytes into the parsers an image feeds --------------------------------------------


@given(st.binary(max_size=2000))
def test_os_release_fields_are_single_line_safe_strings(data):
    """What parse_os_release returns can be put in a one-line message: str keys/values,
    keys without '=' or newlines."""
    fields = parse_os_release(data)
    for key, value in fields.items():
        assert isinstance(key, str) and isinstance(value, str)
        assert "\n" not in key and "=" not in key


# --- GPT headers ------------------------------------------------------------------------------

GPT_TYPES = [
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",  # root x86-64
    "8484680c-9521-48c6-9c11-b0720656f69e",  # usr x86-64
    "0fc63daf-8483-4772-8e79-3d69d8477de4",  # generic Linux data
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",  # swap
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",  # ESP
]


def _gpt_fd(data: bytes) -> int:
    fd = os.memfd_create("gpt", os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


def _read_gpt(data: bytes):  # -> GptTable | None (None: a BadImage)
    from portable.errors import BadImage
    from portable.plugins.image_formats.probe import choose_root, read_gpt

    fd = _gpt_fd(data)
    try:
        table = read_gpt(fd, image="/x.raw", file_size=len(data))
        with contextlib.suppress(BadImage):
            choose_root(table, image="/x.raw")
        return table
    except BadImage as exc:
        assert "\n" not in str(exc)
        return None
    finally:
        os.close(fd)


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.sampled_from(GPT_TYPES), st.integers(1, 64).map(lambda k: k * 4096)),
        max_size=5,
    )
)
def test_gpt_round_trip(parts):
    from helpers.corpus import gpt_image

    data = gpt_image(2 * 1024 * 1024, tuple((t, size, b"") for t, size in parts))
    table = _read_gpt(data)
    assert table is not None and table.sector_size == 512
    assert [(p.type_uuid, p.size) for p in table.partitions] == parts
    offsets = [p.offset for p in table.partitions]
    assert offsets == sorted(offsets) and all(o % 512 == 0 for o in offsets)


def _with_header(fields: dict[str, int]) -> bytes:
    """A GPT image whose primary header has the given fields, with a correct header CRC."""
    import struct
    import zlib

    from helpers.corpus import gpt_image

    disk = bytearray(gpt_image(256 * 1024, (("0fc63daf-8483-4772-8e79-3d69d8477de4", 4096, b""),)))
    hdr = bytearray(disk[512:604])
    layout = {"size": ("<I", 12), "entries_lba": ("<Q", 72), "count": ("<I", 80)}
    layout |= {"entry_size": ("<I", 84), "entries_crc": ("<I", 88), "first": ("<Q", 40)}
    for name, value in fields.items():
        fmt, offset = layout[name]
        struct.pack_into(fmt, hdr, offset, value)
    struct.pack_into("<I", hdr, 16, 0)
    struct.pack_into(
        "<I", hdr, 16, zlib.crc32(bytes(hdr[: max(92, min(fields.get("size", 92), 512))]))
    )
    disk[512:604] = hdr
    return bytes(disk)


header_fields = st.fixed_dictionaries(
    {},
    optional={
        # (hypothesis rarely draws huge integers on its own: ask for them explicitly)
        "entries_lba": st.one_of(st.integers(0, 600), st.integers(2**40, 2**64 - 1)),
        "count": st.one_of(st.integers(0, 200), st.integers(1000, 2**32 - 1)),
        "entry_size": st.one_of(
            st.sampled_from([0, 64, 127, 128, 256, 4096]), st.integers(4000, 2**32 - 1)
        ),
        "entries_crc": st.integers(0, 2**32 - 1),
        "first": st.one_of(st.integers(0, 600), st.integers(2**40, 2**64 - 1)),
    },
)


@settings(max_examples=150, deadline=None)
@given(fields=header_fields)
def test_gpt_any_header_is_a_table_or_a_clean_error(fields):
    _read_gpt(_with_header(fields))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=0, max_size=4096), flips=st.lists(st.integers(0, 4095), max_size=8))
def test_gpt_any_bytes_are_a_table_or_a_clean_error(data, flips):
    from helpers.corpus import gpt_image

    disk = bytearray(gpt_image(64 * 1024))
    disk[: len(data)] = data
    for i in flips:
        disk[i] ^= 0xFF
    _read_gpt(bytes(disk))
