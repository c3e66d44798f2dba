"""A corpus of hostile inputs, built at test time (nothing binary is committed).

Each :class:`Case` builds one bad input (an image, an argument, a host unit in the way) in a
:class:`Place` and says what ``portable`` must do with it: a one-line error containing some
text, or a safe success (then which unit files end up attached). The drivers are
``test_hostile.py`` (the real CLI with ``--root``) and ``test_box_hostile.py`` (a subset against
a real systemd in the box); both also check (:mod:`helpers.checks`) that nothing on the host
changed, that no secret was copied out of the host, and that no loop device, mount or network
namespace was left behind.

Secrets: :func:`plant_secrets` writes :data:`SECRET` into host files that the escaping symlinks
of the corpus point at (absolutely, relatively, through ``/proc``); it must never show up in
anything ``portable`` prints or writes.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from portable.testing.images import make_directory_image, service_unit

__all__ = [
    "BOX_CASES",
    "CASES",
    "SECRET",
    "SECRET_PATH",
    "SECRET_UNIT",
    "Built",
    "Case",
    "Expect",
    "Place",
    "case_param",
    "gpt_image",
    "gpt_without_partitions",
    "plant_secrets",
]

SECRET = f"hostile-secret-{secrets.token_hex(8)}"
SECRET_PATH = "/etc/portable-hostile-secret"  # a host file holding the secret
SECRET_UNIT = "/etc/systemd/system/foo-leak.service"  # a host unit holding the secret
UNIT_DIR = "usr/lib/systemd/system"
BIG = 64 * 1024 * 1024  # "huge": 64 MiB, sparse

# What a case expects of one verb: ("ok", "") or ("error", text the error line must contain;
# "" accepts any one-line error).
Expect = tuple[str, str]
OK: Expect = ("ok", "")


def error(text: str = "") -> Expect:
    return ("error", text)


def case_param(case: Case) -> object:
    """``case`` as a pytest parameter with its id (and its strict xfail, if it has one)."""
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@dataclass(frozen=True)
class Place:
    """Where a case builds its input.

    :param images: directory for images, as this process sees it.
    :param images_arg: the same directory as the command under test sees it.
    :param host: the host root as this process sees it (``--root`` dir, or the box's root).
    :param outside: a secret file outside the host root (``--root`` runs only), or ``None``.
    :param in_box: the command runs in the box (so ``cwd`` is ``/``, not outside the root).
    """

    images: Path
    images_arg: str
    host: Path
    outside: str | None = None
    in_box: bool = False


@dataclass(frozen=True)
class Built:
    """What the command line of a case is: image argument, prefixes, extra attach options."""

    image: str
    prefixes: tuple[str, ...] = ()
    attach_opts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """One hostile input and what must happen to it.

    ``inspect``/``attach``/``detach``: the expectation per verb (``None``: not run). After an
    ``ok`` attach, the unit files in the attached directory must be exactly ``attached`` and
    ``check`` (if any) is called with the attached directory; then the image is detached again.
    ``raw``: a file image (loop devices are watched).
    ``root_only``: can only be built for ``--root`` runs. ``xfail``: a known bug, described.
    """

    id: str
    build: Callable[[Place], Built]
    inspect: Expect | None = None
    attach: Expect | None = None
    detach: Expect | None = None
    attached: frozenset[str] = frozenset()
    check: Callable[[Path], None] | None = None
    raw: bool = False
    root_only: bool = False
    xfail: str = ""
    tags: tuple[str, ...] = field(default=())


# --- helpers ------------------------------------------------------------------------------


def plant_secrets(host: Path) -> None:
    """Host files holding :data:`SECRET`: escaping symlinks in the corpus point at them."""
    secret = host / SECRET_PATH.lstrip("/")
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    unit = host / SECRET_UNIT.lstrip("/")
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(service_unit("/bin/true", description=SECRET))


def _image(
    place: Place,
    name: str,
    *,
    units: dict[str, str] | None = None,
    os_release: str | None = "ID=hostile\nVERSION_ID=1\n",
) -> Path:
    path = place.images / name
    if path.exists() or path.is_symlink():
        raise FileExistsError(path)
    return make_directory_image(path, units=units or {}, os_release=os_release, busybox=False)


def _arg(place: Place, name: str) -> str:
    return f"{place.images_arg.rstrip('/')}/{name}"


def _escapes(place: Place) -> dict[str, str]:
    """Symlink targets that would leave the image and reach a host secret."""
    rel = "../" * 12 + SECRET_PATH.lstrip("/")
    out = {
        "abs": SECRET_PATH,
        "rel": rel,
        "proc-self": "/proc/self/root" + SECRET_PATH,
        "proc-1": "/proc/1/root" + SECRET_PATH,
    }
    if place.outside is not None:
        out["outside"] = place.outside
    return out


def _sparse(path: Path, size: int, head: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def _mknod(path: Path, kind: int, major: int, minor: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o600 | kind, os.makedev(major, minor))


def _unlink_os_release(img: Path) -> None:
    for rel in ("etc/os-release", "usr/lib/os-release"):
        p = img / rel
        if p.is_symlink() or p.exists():
            p.unlink()


GPT_ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
GPT_SWAP = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"


def gpt_image(
    size: int = 1024 * 1024, partitions: tuple[tuple[str, int, bytes], ...] = ()
) -> bytes:
    """A disk image with a protective MBR, valid primary and backup GPT headers (CRCs right),
    and the given partitions: (type GUID, size in bytes, content)."""
    import uuid

    sector = 512
    sectors = size // sector
    entries = bytearray(128 * 128)
    entry_sectors = len(entries) // sector
    first_usable = 2 + entry_sectors
    lba = 2048 if sectors > 4096 else first_usable
    contents = []
    for n, (type_guid, psize, data) in enumerate(partitions):
        count = -(-psize // sector)
        entries[n * 128 : (n + 1) * 128] = struct.pack(
            "<16s16sQQQ72s",
            uuid.UUID(type_guid).bytes_le,
            uuid.uuid4().bytes_le,
            lba,
            lba + count - 1,
            0,
            f"part{n}".encode("utf-16-le"),
        )
        contents.append((lba, data))
        lba += count
    assert lba <= sectors - 1 - entry_sectors, "partitions do not fit"
    entries_crc = zlib.crc32(entries)

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        fields = struct.pack(
            "<8sIIIIQQQQ16sQIII",
            b"EFI PART",
            0x00010000,
            92,
            0,  # header CRC, filled below
            0,
            current,
            backup,
            first_usable,
            sectors - 2 - entry_sectors,  # last usable LBA
            secrets.token_bytes(16),
            entries_lba,
            128,
            128,
            entries_crc,
        )
        crc = zlib.crc32(fields)
        fields = fields[:16] + struct.pack("<I", crc) + fields[20:]
        return fields.ljust(sector, b"\0")

    mbr = bytearray(sector)
    # One partition of type 0xEE covering the disk: the protective MBR.
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1, sectors - 1)
    mbr[510:512] = b"\x55\xaa"
    disk = bytearray(size)
    disk[0:sector] = mbr
    disk[sector : 2 * sector] = header(1, sectors - 1, 2)
    disk[2 * sector : 2 * sector + len(entries)] = entries
    backup_entries = sectors - 1 - entry_sectors
    disk[backup_entries * sector : (sectors - 1) * sector] = entries
    disk[(sectors - 1) * sector :] = header(sectors - 1, 1, backup_entries)
    for start, data in contents:
        disk[start * sector : start * sector + len(data)] = data
    return bytes(disk)


def gpt_without_partitions() -> bytes:
    """A valid GPT with an empty partition table."""
    return gpt_image()


def gpt_swap_only() -> bytes:
    """A valid GPT whose only partition is swap: nothing a portable service can run from."""
    return gpt_image(4 * 1024 * 1024, ((GPT_SWAP, 1024 * 1024, b"\0" * 4096),))


def gpt_garbage_root() -> bytes:
    """A valid GPT with an x86-64 root partition that holds no file system, just noise."""
    return gpt_image(4 * 1024 * 1024, ((GPT_ROOT_X86_64, 1024 * 1024, os.urandom(1024 * 1024)),))


def _squashfs(place: Place, name: str, *, keep: float) -> Path:
    """A squashfs image of a valid portable tree, cut to ``keep`` of its size (needs mksquashfs;
    without it, garbage that starts like one)."""
    target = place.images / name
    mksquashfs = shutil.which("mksquashfs")
    if mksquashfs is None:
        target.write_bytes(b"hsqs" + os.urandom(64 * 1024))
        return target
    tree = make_directory_image(
        place.images / f".tree-{name}",
        units={"foo.service": service_unit()},
        os_release="ID=hostile\n",
        busybox=False,
    )
    for i in range(8):  # something to cut into
        (tree / f"usr/lib/filler{i}").write_bytes(os.urandom(32 * 1024))
    subprocess.run(
        [mksquashfs, str(tree), str(target), "-quiet", "-noappend", "-comp", "gzip"],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    size = target.stat().st_size
    with open(target, "r+b") as f:
        f.truncate(max(int(size * keep), 96))
    return target


def _attached_dropins_only(expected_profile: str) -> Callable[[Path], None]:
    """The attached foo.service.d holds only our two drop-ins, the profile as shipped."""

    def check(attached: Path) -> None:
        d = attached / "foo.service.d"
        assert sorted(os.listdir(d)) == ["10-profile.conf", "20-portable.conf"], os.listdir(d)
        profile = (d / "10-profile.conf").read_bytes()
        assert b"weaken" not in profile and b"PrivateNetwork=no" not in profile
        assert expected_profile.encode() in profile
        for name in os.listdir(attached):
            assert not name.startswith("service.d"), name

    return check


# --- the corpus ---------------------------------------------------------------------------

LEGIT = service_unit("/usr/bin/sleep infinity", description="legit")
FOO_OK = frozenset({"foo-ok.service"})
cases: list[Case] = []


def case(**kw: object) -> None:
    cases.append(Case(**kw))  # type: ignore[arg-type]


def _baseline(place: Place) -> Built:
    _image(place, "foo_1", units={"foo.service": LEGIT, "foo.socket": "[Socket]\n"})
    return Built(_arg(place, "foo_1"))


case(
    id="baseline",
    build=_baseline,
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo.service", "foo.socket"}),
)


# Unit files that are symlinks leaving the image: resolved inside it, where they dangle, so
# they are skipped; the image's legitimate unit is attached, the secret never read.
def _unit_escape(kind: str) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
        os.symlink(_escapes(place)[kind], img / UNIT_DIR / "foo.service")
        # ... also through a symlinked directory component
        os.symlink(os.path.dirname(_escapes(place)[kind]), img / UNIT_DIR / "hostetc")
        os.symlink("hostetc/" + os.path.basename(SECRET_PATH), img / UNIT_DIR / "foo-2.service")
        return Built(_arg(place, "foo_1"))

    return build


for _kind in ("abs", "rel", "proc-self", "proc-1", "outside"):
    case(
        id=f"unit-symlink-escape-{_kind}",
        build=_unit_escape(_kind),
        inspect=OK,
        attach=OK,
        attached=FOO_OK,
        root_only=_kind == "outside",
    )


def _unit_escape_only(place: Place) -> Built:
    img = _image(place, "foo_1")
    os.symlink(SECRET_PATH, img / UNIT_DIR / "foo.service")
    return Built(_arg(place, "foo_1"))


case(
    id="unit-symlink-escape-only-unit",
    build=_unit_escape_only,
    inspect=error("Couldn't find any matching unit files"),
    attach=error("Couldn't find any matching unit files"),
)


def _osrel_escape(kind: str, fallback: bool) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
        _unlink_os_release(img)
        if fallback:
            (img / "usr/lib/os-release").write_text("ID=inside\n")
        os.symlink(_escapes(place)[kind], img / "etc/os-release")
        return Built(_arg(place, "foo_1"))

    return build


for _kind in ("abs", "rel", "proc-self", "outside"):
    case(
        id=f"os-release-symlink-escape-{_kind}",
        build=_osrel_escape(_kind, fallback=False),
        inspect=error("lacks os-release data"),
        attach=error("lacks os-release data"),
        root_only=_kind == "outside",
    )
case(
    id="os-release-symlink-escape-falls-back-to-usr-lib",
    build=_osrel_escape("abs", fallback=True),
    inspect=OK,
    attach=OK,
    attached=FOO_OK,
)


# A unit directory that is a symlink out of the image: confined, so the host's units (one of
# them holds the secret) are never seen; a unit directory that loops is skipped (systemd too).
def _unitdir_escape(kind: str) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
        target = {
            "abs": "/etc/systemd/system",
            "rel": "../" * 12 + "etc/systemd/system",
            "loop": "system",
        }[kind]
        (img / "usr/local/lib/systemd").mkdir(parents=True)
        os.symlink(target, img / "usr/local/lib/systemd/system")
        (img / "etc/systemd").mkdir(parents=True)
        os.symlink(target if kind != "loop" else "../systemd/system", img / "etc/systemd/system")
        return Built(_arg(place, "foo_1"))

    return build


for _kind in ("abs", "rel", "loop"):
    case(
        id=f"unit-directory-symlink-{_kind}",
        build=_unitdir_escape(_kind),
        inspect=OK,
        attach=OK,
        attached=FOO_OK,
    )


# Loops.
def _loop(what: str, length: int) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
        if what == "unit":
            d, name = img / UNIT_DIR, "foo.service"
        else:
            _unlink_os_release(img)
            d, name = img / "etc", "os-release"
        names = [name] + [f"link{i}" for i in range(1, length)]
        for a, b in zip(names, [*names[1:], names[0]], strict=True):
            os.symlink(b, d / a)
        return Built(_arg(place, "foo_1"))

    return build


for _what in ("unit", "os-release"):
    for _length in (1, 2):
        case(
            id=f"{_what}-symlink-loop-{_length}",
            build=_loop(_what, _length),
            inspect=error("too many levels of symbolic links"),
            attach=error("too many levels of symbolic links"),
        )


def _chain(length: int) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1")
        d = img / UNIT_DIR
        (d / "real").write_text(LEGIT)
        names = ["foo.service"] + [f"c{i}" for i in range(1, length)]
        for a, b in zip(names, [*names[1:], "real"], strict=True):
            os.symlink(b, d / a)
        return Built(_arg(place, "foo_1"))

    return build


def _long_target(place: Place) -> Built:
    """Symlinks whose targets have components longer than any file name can be."""
    img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
    os.symlink("x" * 300, img / UNIT_DIR / "foo.service")
    os.symlink("/" + "y" * 300 + "/z", img / UNIT_DIR / "foo-2.service")
    os.symlink("/".join(["d" * 255] * 15), img / UNIT_DIR / "foo-3.service")
    return Built(_arg(place, "foo_1"))


case(
    id="unit-symlink-to-overlong-names",
    build=_long_target,
    inspect=OK,
    attach=OK,
    attached=FOO_OK,
)


case(
    id="unit-symlink-chain-40",
    build=_chain(40),
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo.service"}),
)
case(
    id="unit-symlink-chain-41",
    build=_chain(41),
    inspect=error("too many levels of symbolic links"),
    attach=error("too many levels of symbolic links"),
)


# Special files where a file is expected: refused without being opened (no hang, no device
# driver woken up).
def _special(what: str, kind: str) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
        if what == "unit":
            target = img / UNIT_DIR / "foo-bad.service"
        else:
            _unlink_os_release(img)
            target = img / "etc/os-release"
        # The special file is reached through a symlink (a directory entry of a special kind
        # is skipped, as systemd does); the symlink is inside the image.
        special = img / "special"
        if kind == "fifo":
            os.mkfifo(special)
        elif kind == "chardev":
            _mknod(special, stat.S_IFCHR, 5, 0)  # /dev/tty: opening it would fail (ENXIO)
        elif kind == "blockdev":
            _mknod(special, stat.S_IFBLK, 7, 255)  # a loop device nobody uses
        elif kind == "directory":
            special.mkdir()
        os.symlink("/special", target)
        return Built(_arg(place, "foo_1"))

    return build


_KIND_TEXT = {
    "fifo": "is a FIFO",
    "chardev": "is a character device",
    "blockdev": "is a block device",
    "directory": "is a directory",
}
for _what in ("unit", "os-release"):
    for _kind, _text in _KIND_TEXT.items():
        case(
            id=f"{_what}-is-{_kind}",
            build=_special(_what, _kind),
            inspect=error(_text),
            attach=error(_text),
        )


def _unit_entries_special(place: Place) -> Built:
    """Directory entries of odd kinds named like units are skipped (d_type, as systemd)."""
    img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
    d = img / UNIT_DIR
    os.mkfifo(d / "foo-fifo.service")
    (d / "foo-dir.service").mkdir()
    (d / "foo-dir.service" / "x").write_text(LEGIT)
    _mknod(d / "foo-chr.service", stat.S_IFCHR, 1, 3)
    return Built(_arg(place, "foo_1"))


case(
    id="unit-entries-of-special-kinds",
    build=_unit_entries_special,
    inspect=OK,
    attach=OK,
    attached=FOO_OK,
)


# Huge and binary files.
def _huge(what: str) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo-ok.service": LEGIT})
        if what == "unit":
            _sparse(img / UNIT_DIR / "foo.service", BIG, b"[Service]\nExecStart=/x\n")
        else:
            _unlink_os_release(img)
            _sparse(img / "usr/lib/os-release", BIG, b"ID=huge\n")
        return Built(_arg(place, "foo_1"))

    return build


for _what in ("unit", "os-release"):
    case(
        id=f"{_what}-huge",
        build=_huge(_what),
        inspect=error("is too large"),
        attach=error("is too large"),
    )

# The same bytes in every run: with os.urandom, about 1 run in 130 ended the garbage with a
# backslash (a continued line) or in a state that takes the next line in, so
# 'os-release-binary-with-id' lost its ID line at random (CI of 0d57bb2).
BINARY = bytes(range(256)) * 16 + b"\0\0\xff\xfe" + random.Random(0).randbytes(4096)


def _binary_unit(place: Place) -> Built:
    img = _image(place, "foo_1")
    (img / UNIT_DIR / "foo.service").write_bytes(BINARY)
    return Built(_arg(place, "foo_1"))


def _check_binary(attached: Path) -> None:
    assert (attached / "foo.service").read_bytes() == BINARY  # copied as is, as systemd does


case(
    id="unit-binary",
    build=_binary_unit,
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo.service"}),
    check=_check_binary,
)


def _binary_osrel(with_id: bool) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo.service": LEGIT})
        _unlink_os_release(img)
        data = BINARY.replace(b"\n", b" ") + (b"\nID=binary\n" if with_id else b"")
        (img / "usr/lib/os-release").write_bytes(data)
        return Built(_arg(place, "foo_1"))

    return build


case(
    id="os-release-binary",
    build=_binary_osrel(False),
    inspect=OK,
    attach=error("lacks the ID field"),
)
case(
    id="os-release-binary-with-id",
    build=_binary_osrel(True),
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo.service"}),
)


def _no_os_release(place: Place) -> Built:
    _image(place, "foo_1", units={"foo.service": LEGIT}, os_release=None)
    return Built(_arg(place, "foo_1"))


case(
    id="os-release-missing",
    build=_no_os_release,
    inspect=error("lacks os-release data"),
    attach=error("lacks os-release data"),
)


# Unit names: invalid ones are never picked up; odd valid ones ('..service') stay inside the
# attached directory.
def _odd_unit_names(place: Place) -> Built:
    img = _image(place, "foo_1", units={"foo.service": LEGIT})
    d = img / UNIT_DIR
    for name in (
        "foo bar.service",
        "foo\nExecStart=x.service",
        "foo.service~",
        "foo.mount",
        "foo-x.device",
        "foo-x.slice",
        "foo",
        ".service",
        "foo-\x7f.service",
        "foo-é.service",
    ):
        (d / name).write_text(LEGIT)
    (d / os.fsdecode(b"foo-\xff.service")).write_text(LEGIT)
    (d / "foo-\\x2d.service").write_text(LEGIT)  # valid: an escaped unit name
    (d / "foo...service").write_text(LEGIT)  # valid
    return Built(_arg(place, "foo_1"))


case(
    id="unit-names-invalid-and-odd",
    build=_odd_unit_names,
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo.service", "foo-\\x2d.service", "foo...service"}),
)


def _dotdot_unit_names(place: Place) -> Built:
    img = _image(place, "foo_1", units={"..service": LEGIT, "...service": LEGIT})
    (img / UNIT_DIR / "..socket").write_text("[Socket]\n")
    return Built(_arg(place, "foo_1"), prefixes=(".",))


case(
    id="unit-names-with-dotdot",
    build=_dotdot_unit_names,
    inspect=OK,
    attach=OK,
    attached=frozenset({"..service", "...service", "..socket"}),
)


def _long_unit_name(length: int) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        name = "foo-" + "a" * (length - len("foo-.service")) + ".service"
        assert len(name) == length
        _image(place, "foo_1", units={name: LEGIT})
        return Built(_arg(place, "foo_1"))

    return build


case(
    id="unit-name-253-bytes",  # its drop-in directory name is 255 bytes: fits
    build=_long_unit_name(253),
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo-" + "a" * 241 + ".service"}),
)
case(
    id="unit-name-255-bytes",  # valid, but "<name>.d" is longer than a file name can be
    build=_long_unit_name(255),
    inspect=OK,
    attach=error("255 bytes"),
)


# Drop-ins shipped in the image, trying to weaken the profile: never copied (systemd ignores
# them, PID 1 never sees them); the attached unit gets exactly the profile's drop-in.
def _weakening_dropins(place: Place) -> Built:
    img = _image(place, "foo_1", units={"foo.service": LEGIT})
    weaken = "# weaken\n[Service]\nPrivateNetwork=no\nUser=root\nProtectSystem=no\nTasksMax=\n"
    for d in (
        f"{UNIT_DIR}/foo.service.d",
        "etc/systemd/system/foo.service.d",
        f"{UNIT_DIR}/service.d",
        "etc/systemd/system.attached/foo.service.d",
        "run/systemd/system/foo.service.d",
    ):
        (img / d).mkdir(parents=True, exist_ok=True)
        (img / d / "99-weaken.conf").write_text(weaken)
        (img / d / "10-profile.conf").write_text(weaken)
        (img / d / "20-portable.conf").write_text(weaken)
    return Built(_arg(place, "foo_1"), attach_opts=("--profile=strict",))


case(
    id="image-drop-ins-weakening-the-profile",
    build=_weakening_dropins,
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo.service"}),
    check=_attached_dropins_only("TasksMax=4"),
)


# --copy=mixed copies the whole image into the portables directory: everything in the image
# is then read and written by root on the host.
def _mixed(what: str) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        img = _image(place, "foo_1", units={"foo.service": LEGIT})
        if what == "fifo":
            os.mkfifo(img / "var/pipe")
        elif what == "device":
            _mknod(img / "dev/null", stat.S_IFCHR, 1, 3)  # (1:5 would be read forever)
        elif what == "sparse":
            _sparse(img / "var/big", BIG, b"x")
        return Built(_arg(place, "foo_1"), attach_opts=("--copy=mixed",))

    return build


def _check_mixed_copy(what: str) -> Callable[[Path], None]:
    def check(attached: Path) -> None:
        copy = attached.parent.parent / "portables/foo_1"
        assert copy.is_dir() and not copy.is_symlink()
        if what == "fifo":
            assert stat.S_ISFIFO(os.lstat(copy / "var/pipe").st_mode)
        elif what == "device":  # left out of the copy (issue 16, hole 3)
            assert not os.path.lexists(copy / "dev/null")
        elif what == "sparse":
            assert os.stat(copy / "var/big").st_blocks * 512 < 1024 * 1024

    return check


for _what in ("plain", "fifo", "device", "sparse"):
    case(
        id=f"copy-mixed-image-with-{_what}",
        build=_mixed(_what),
        attach=OK,
        attached=frozenset({"foo.service"}),
        check=_check_mixed_copy(_what),
    )


# Profiles: unknown and path-like names.
def _with_profile(profile: str) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        _image(place, "foo_1", units={"foo.service": LEGIT})
        return Built(_arg(place, "foo_1"), attach_opts=(f"--profile={profile}",))

    return build


for _id, _profile in (
    ("unknown", "nope"),
    ("empty", ""),
    ("dot", "."),
    ("dotdot", ".."),
    ("relative-path", "../../etc/systemd"),
    ("nested-path", "foo/bar"),
    ("absolute-missing", "/nonexistent/profile"),
    ("absolute-dir", "/etc"),
    ("300-chars", "p" * 300),
    ("control-chars", "a\nb"),
):
    case(
        id=f"profile-{_id}",
        build=_with_profile(_profile),
        attach=error(),
    )


# A host unit of the same name.
def _host_unit(where: str, force: bool) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        _image(place, "foo_1", units={"foo.service": LEGIT})
        host_unit = place.host / where.lstrip("/") / "foo.service"
        host_unit.parent.mkdir(parents=True, exist_ok=True)
        host_unit.write_text(service_unit("/bin/true", description="the host's own foo"))
        return Built(_arg(place, "foo_1"), attach_opts=("--force",) if force else ())

    return build


def _host_unit_masked(place: Place) -> Built:
    _image(place, "foo_1", units={"foo.service": LEGIT})
    masked = place.host / "etc/systemd/system/foo.service"
    masked.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/dev/null", masked)
    return Built(_arg(place, "foo_1"))


case(
    id="host-unit-same-name-masked",
    build=_host_unit_masked,
    attach=error("Unit file 'foo.service' exists on the host already, refusing."),
)
for _where in ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system"):
    case(
        id=f"host-unit-same-name-{_where.split('/')[1]}",
        build=_host_unit(_where, False),
        inspect=OK,
        attach=error("Unit file 'foo.service' exists on the host already, refusing."),
    )
case(
    id="host-unit-same-name-force",
    build=_host_unit("/etc/systemd/system", True),
    attach=OK,
    attached=frozenset({"foo.service"}),
)


# Image names and paths given on the command line.
def _name(arg: str, *, in_images: bool = False) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        _image(place, "foo_1", units={"foo.service": LEGIT})
        return Built(_arg(place, arg) if in_images else arg)

    return build


for _id, _arg_text, _in_images, _xfail in (
    ("dotdot", "..", False, ""),
    ("dot", ".", False, ""),
    ("300-chars", "a" * 300, False, ""),
    ("300-chars-path", "a" * 300, True, ""),
    ("dotdot-components", "../../../../../../etc", True, ""),
    ("temporary-name", ".#foo_1", False, ""),
    ("control-chars", "foo\n1", False, ""),
    ("empty", "", False, ""),
):
    case(
        id=f"image-name-{_id}",
        build=_name(_arg_text, in_images=_in_images),
        inspect=error(),
        attach=error(),
        detach=error(),
        xfail=_xfail,
    )


def _image_name_300_with_prefix(place: Place) -> Built:
    """A long (but valid) image directory name, units chosen by an explicit prefix."""
    name = "x" * 240 + "_1"
    _image(place, name, units={"foo.service": LEGIT})
    return Built(_arg(place, name), prefixes=("foo",))


case(
    id="image-name-long-with-prefix",
    build=_image_name_300_with_prefix,
    inspect=OK,
    attach=OK,
    attached=frozenset({"foo.service"}),
)


def _newline_in_image_path(via_symlink: bool) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        evil = "foo_1\nProtectSystem=no\nUser=root"
        _image(place, evil, units={"foo.service": LEGIT})
        if via_symlink:  # the argument looks harmless; its canonical path does not
            os.symlink(evil, place.images / "foo_2")
            return Built(_arg(place, "foo_2"))
        return Built(_arg(place, evil))

    return build


for _via in (False, True):
    case(
        id=f"image-path-with-newline{'-via-symlink' if _via else ''}",
        build=_newline_in_image_path(_via),
        inspect=error("control characters"),
        attach=error("control characters"),
        detach=error(),
    )


def _image_symlink_to_root(place: Place) -> Built:
    os.symlink("/", place.images / "evil_1")
    return Built(_arg(place, "evil_1"))


case(
    id="image-symlink-to-host-root",
    build=_image_symlink_to_root,
    inspect=error(),
    attach=error(),
)


def _image_path_loop(place: Place) -> Built:
    os.symlink("foo_1", place.images / "foo_1")
    return Built(_arg(place, "foo_1"))


case(
    id="image-path-symlink-loop",
    build=_image_path_loop,
    inspect=error(),
    attach=error(),
    detach=error(),
)


def _by_name(place: Place) -> Built:
    """An image found by name in the search path, with escaping unit symlinks."""
    d = place.host / "run/portables"
    d.mkdir(parents=True, exist_ok=True)
    img = make_directory_image(
        d / "foo_7", units={"foo-ok.service": LEGIT}, os_release="ID=x\n", busybox=False
    )
    os.symlink(SECRET_PATH, img / UNIT_DIR / "foo.service")
    os.symlink("../" * 12 + SECRET_PATH.lstrip("/"), img / UNIT_DIR / "foo-rel.service")
    return Built("foo_7")


case(
    id="image-by-name-with-escaping-units",
    build=_by_name,
    inspect=OK,
    attach=OK,
    attached=FOO_OK,
)


# Files that are no image at all, and raw images that are broken. Without a raw format they
# are "not a recognised image"; once raw formats exist they must still fail with one line and
# leave no loop device or mount behind.
def _file(
    name: str, data: Callable[[], bytes] | None = None, size: int = 0
) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        p = place.images / name
        if data is not None:
            p.write_bytes(data())
        else:
            _sparse(p, size)
        return Built(_arg(place, name))

    return build


def _special_image(kind: str) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        p = place.images / "foo_1.raw"
        if kind == "fifo":
            os.mkfifo(p)
        else:
            _mknod(p, stat.S_IFCHR, 5, 0)
        return Built(_arg(place, "foo_1.raw"))

    return build


def _truncated_squashfs(place: Place) -> Built:
    _squashfs(place, "foo_1.raw", keep=0.5)
    return Built(_arg(place, "foo_1.raw"))


def _squashfs_header_only(place: Place) -> Built:
    _squashfs(place, "foo_1.raw", keep=0.0)
    return Built(_arg(place, "foo_1.raw"))


def _squashfs_of(place: Place, tree: Path) -> bytes | None:
    """The squashfs of ``tree`` (removed afterwards), or None without mksquashfs."""
    mksquashfs = shutil.which("mksquashfs")
    out = tree.with_name(tree.name + ".sqfs")
    try:
        if mksquashfs is None:
            return None
        subprocess.run(
            [mksquashfs, str(tree), str(out), "-quiet", "-noappend", "-comp", "gzip"],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()
    finally:
        shutil.rmtree(tree, ignore_errors=True)
        out.unlink(missing_ok=True)


def _escaping_tree(place: Place, what: str) -> Path:
    tree = make_directory_image(
        place.images / ".tree", units={"foo-ok.service": LEGIT}, busybox=False
    )
    if what == "units":
        os.symlink(SECRET_PATH, tree / UNIT_DIR / "foo.service")
        os.symlink("../" * 12 + SECRET_PATH.lstrip("/"), tree / UNIT_DIR / "foo-rel.service")
        os.symlink("/proc/1/root" + SECRET_PATH, tree / UNIT_DIR / "foo-proc.service")
    else:
        _unlink_os_release(tree)
        os.symlink(SECRET_PATH, tree / "etc/os-release")
        os.symlink("../" * 12 + SECRET_PATH.lstrip("/"), tree / "usr/lib/os-release")
    return tree


def _raw_escaping(what: str, gpt: bool) -> Callable[[Place], Built]:
    def build(place: Place) -> Built:
        data = _squashfs_of(place, _escaping_tree(place, what))
        if data is None:  # no mksquashfs: the case degenerates to a garbage image
            data = os.urandom(4096)
        if gpt:
            size = 2 * 1024 * 1024 + -(-len(data) // 1048576) * 1048576
            data = gpt_image(size, ((GPT_ROOT_X86_64, len(data), data),))
        (place.images / "foo_1.raw").write_bytes(data)
        return Built(_arg(place, "foo_1.raw"))

    return build


for _what, _gpt in (("units", False), ("units", True), ("os-release", False)):
    ok = _what == "units"
    case(
        id=f"raw-{'gpt' if _gpt else 'squashfs'}-with-escaping-{_what}",
        build=_raw_escaping(_what, _gpt),
        inspect=OK if ok else error("lacks os-release data"),
        attach=OK if ok else error("lacks os-release data"),
        attached=FOO_OK if ok else frozenset(),
        raw=True,
    )


def _gpt_entries_lba_huge() -> bytes:
    """A GPT whose header (checksum right) puts the partition entries at LBA 2**62."""
    disk = bytearray(gpt_image())
    hdr = bytearray(disk[512:604])
    struct.pack_into("<Q", hdr, 72, 2**62)
    struct.pack_into("<I", hdr, 16, 0)
    struct.pack_into("<I", hdr, 16, zlib.crc32(bytes(hdr)))
    disk[512:604] = hdr
    return bytes(disk)


case(
    id="raw-gpt-entries-lba-huge",
    build=_file("foo_1.raw", _gpt_entries_lba_huge),
    inspect=error(),
    attach=error(),
    raw=True,
)


for _id, _build in (
    ("not-an-image", _file("foo_1.tar", lambda: b"\0" * 10240)),
    ("empty-raw", _file("foo_1.raw", lambda: b"")),
    ("garbage-raw", _file("foo_1.raw", lambda: os.urandom(1024 * 1024))),
    ("zeros-raw-sparse-64M", _file("foo_1.raw", size=BIG)),
    ("truncated-squashfs", _truncated_squashfs),
    ("squashfs-header-only", _squashfs_header_only),
    ("gpt-without-partitions", _file("foo_1.raw", gpt_without_partitions)),
    ("gpt-swap-only", _file("foo_1.raw", gpt_swap_only)),
    ("gpt-root-partition-of-garbage", _file("foo_1.raw", gpt_garbage_root)),
    ("fifo-raw", _special_image("fifo")),
    ("chardev-raw", _special_image("chardev")),
):
    case(
        id=f"raw-{_id}",
        build=_build,
        inspect=error(),
        attach=error(),
        raw=True,
    )


CASES: tuple[Case, ...] = tuple(cases)

# The cases also run against a real systemd in the box: one or two of each kind.
BOX_CASES = frozenset(
    {
        "baseline",
        "unit-symlink-escape-abs",
        "unit-symlink-escape-rel",
        "unit-symlink-escape-proc-1",
        "os-release-symlink-escape-abs",
        "unit-directory-symlink-abs",
        "unit-symlink-loop-2",
        "unit-is-fifo",
        "unit-is-chardev",
        "os-release-is-fifo",
        "unit-huge",
        "os-release-huge",
        "unit-binary",
        "unit-names-invalid-and-odd",
        "image-drop-ins-weakening-the-profile",
        "profile-unknown",
        "profile-relative-path",
        "host-unit-same-name-etc",
        "host-unit-same-name-force",
        "image-name-dotdot",
        "image-name-300-chars",
        "image-symlink-to-host-root",
        "image-by-name-with-escaping-units",
        "raw-garbage-raw",
        "raw-truncated-squashfs",
        "raw-gpt-without-partitions",
        "raw-gpt-root-partition-of-garbage",
        "raw-squashfs-with-escaping-units",
        "raw-gpt-with-escaping-units",
        "image-path-with-newline-via-symlink",
        "raw-fifo-raw",
    }
)
_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"
assert set(_ids) >= BOX_CASES, BOX_CASES - set(_ids)
