"""Pure name rules: image names, unit names, prefixes, and the ``20-portable.conf`` marker line.

Everything here is string manipulation only (no I/O), mirroring the corresponding helpers of
systemd (``image_name_is_valid``, ``unit_name_is_valid``, portablectl's ``extract_prefix``,
portabled's ``prefix_match``/``marker_matches_images``, ``path_extract_image_name``, ``xescape``).

Strings that may come from the file system are handled as systemd handles bytes: they are encoded
as UTF-8 with ``surrogateescape``, so a non-UTF-8 file name decoded by :func:`os.fsdecode` keeps its
original bytes. A string that cannot be encoded that way (a lone surrogate outside U+DC80..U+DCFF)
is never a valid name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from portable.errors import PortableError

__all__ = [
    "JOB_METHODS",
    "MARKER_BEGIN",
    "MARKER_END",
    "PORTABLE_UNIT_TYPES",
    "TRIGGER_UNIT_TYPES",
    "UNIT_NAME_MAX",
    "UNIT_TYPES",
    "extract_prefix",
    "format_marker",
    "has_control",
    "image_name_from_filename",
    "is_portable_unit_type",
    "is_template",
    "is_valid_filename",
    "is_valid_image_name",
    "is_valid_unit_name",
    "marker_matches_image",
    "parse_marker",
    "path_extract_image_name",
    "printable",
    "printable_path",
    "unescape_marker",
    "unit_matches",
    "unit_matches_prefix",
    "unit_template",
    "unit_type",
    "xescape_marker",
]

NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)
PATH_MAX = 4096  # bytes in a path including the terminating NUL (Linux PATH_MAX)

# systemd's UNIT_NAME_MAX counts the terminating NUL, so a unit name is at most 255 bytes.
UNIT_NAME_MAX = 256

# Every unit type systemd 252 knows (unit_type_table order).
UNIT_TYPES = (
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
)

# The unit types portabled copies out of an image (spec 2.3 rule 2), and a profile may carry a
# drop-in for (systemd looks up <type>.conf per unit type).
PORTABLE_UNIT_TYPES = ("service", "socket", "target", "timer", "path")

# The unit types that start another unit (a socket, timer or path unit triggers its service).
TRIGGER_UNIT_TYPES = ("socket", "timer", "path")

MARKER_BEGIN = "# Drop-in created for image '"
MARKER_END = "', do not edit."

# unit-name.c VALID_CHARS plus '@', which may appear anywhere after the first character.
_UNIT_NAME_CHARS = re.compile(r"[A-Za-z0-9:\-_.\\@]*")
# portablectl's extract_prefix: "a slightly reduced version of what's permitted in unit names".
_PREFIX_CHARS = re.compile(r"[A-Za-z0-9.\-]*")
_ESCAPE = rb"\\x([0-9a-fA-F]{2})"  # compiled by re on first use: a plain attach parses no marker

_IMAGE_SUFFIXES = (".sysext.raw", ".confext.raw", ".raw")


# The service manager's D-Bus method for each job verb (org.freedesktop.systemd1.Manager).
JOB_METHODS = {"start": "StartUnit", "stop": "StopUnit", "restart": "RestartUnit"}


def has_control(text: str) -> bool:
    """Does ``text`` hold a control character (``\\n``, ``\\x1b``, DEL...)?"""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def printable(text: str) -> str:
    """``text`` for an error message: control characters escaped (``\\n``, ``\\x1b``), so a
    message quoting a hostile name stays one line and can't forge output; else unchanged."""
    if not has_control(text):
        return text
    return "".join(repr(c)[1:-1] if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)


def printable_path(path: str) -> str:
    """A path (or name) for an error message: :func:`printable`, and bytes that are not UTF-8
    (surrogate-escaped by :func:`os.fsdecode`) shown as ``\\xNN``."""
    if all(ord(c) < 0xD800 or ord(c) > 0xDFFF for c in path):
        return printable(path)
    return printable(
        "".join(
            f"\\x{ord(c) - 0xDC00:02x}"
            if 0xDC80 <= ord(c) <= 0xDCFF
            else f"\\u{ord(c):04x}"
            if 0xD800 <= ord(c) <= 0xDFFF
            else c
            for c in path
        )
    )


def _encode(s: str) -> bytes | None:
    """The bytes systemd would see for ``s``, or ``None`` if it has no byte form."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def is_valid_filename(name: str) -> bool:
    """systemd's ``filename_is_valid``: one non-empty path component, not ``.``/``..``, ≤255 bytes.

    A NUL cannot be part of a C string, so it makes the name invalid here.
    """
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return False
    raw = _encode(name)
    return raw is not None and len(raw) <= NAME_MAX


def is_valid_image_name(name: str) -> bool:
    """systemd's ``image_name_is_valid`` (spec 1.4).

    A valid filename without control characters (bytes < 0x20 and 0x7f), valid UTF-8 and not
    starting with ``.#`` (the prefix of temporary files being created atomically).
    """
    if not is_valid_filename(name) or name.startswith(".#"):
        return False
    try:
        raw = name.encode("utf-8")  # strict: surrogate-escaped bytes are not valid UTF-8
    except UnicodeEncodeError:
        return False
    return not any(b < 0x20 or b == 0x7F for b in raw)


def unit_type(name: str) -> str | None:
    """The unit type named by the suffix after the last ``.``, or ``None`` if it is not one.

    Only the suffix is looked at; use :func:`is_valid_unit_name` for the whole name.
    """
    _, dot, suffix = name.rpartition(".")
    return suffix if dot and suffix in UNIT_TYPES else None


def is_portable_unit_type(name: str) -> bool:
    """Whether the suffix is one of ``.service .socket .target .timer .path``."""
    return unit_type(name) in PORTABLE_UNIT_TYPES


def is_valid_unit_name(name: str) -> bool:
    """systemd's ``unit_name_is_valid(name, UNIT_NAME_ANY)``.

    Plain ``foo.service``, template ``foo@.service`` or instance ``foo@inst.service``: the part
    before the last ``.`` is non-empty, does not start with ``@`` and consists of
    ``[A-Za-z0-9:_.\\-]`` and ``@`` (further ``@`` are allowed, they belong to the instance); the
    suffix is a known unit type; at most 255 bytes in total.
    """
    # Only ASCII can pass the character check below, so characters count as bytes here.
    if not name or len(name) >= UNIT_NAME_MAX:
        return False
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or suffix not in UNIT_TYPES:
        return False
    # An '@' as first character would leave an empty unit prefix.
    return not stem.startswith("@") and _UNIT_NAME_CHARS.fullmatch(stem) is not None


def is_template(name: str) -> bool:
    """``foo@.service``: a template, no instance between ``@`` and the suffix."""
    _, at, rest = name.partition("@")
    return bool(at) and rest.rfind(".") == 0


def unit_template(name: str) -> str | None:
    """systemd's ``unit_name_template``: ``foo@.service`` for the instance ``foo@bar.service``;
    ``None`` for anything that is not an instance (a template, a plain unit)."""
    stem, _, suffix = name.rpartition(".")
    prefix, at, instance = stem.partition("@")
    return f"{prefix}@.{suffix}" if at and prefix and instance else None


def _path_last_component(path: str) -> tuple[str, bool] | None:
    """systemd's ``path_extract_filename``: the last component and whether a ``/`` followed it.

    ``.`` components and repeated slashes are ignored; the path must be valid (non-empty,
    components ≤255 bytes, shorter than PATH_MAX) and the last component must not be ``..``.
    Returns ``None`` where systemd returns an error.
    """
    raw = _encode(path)
    if not raw or len(raw) >= PATH_MAX or "\0" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts):
        return None
    if not parts or parts[-1] == "..":
        return None
    last = parts[-1]
    # Anything after the last component ("/", "/.", "//./") marks the path as a directory.
    is_dir = not path.endswith(last)
    return last, is_dir


def extract_prefix(image: str, *, systemd: int) -> str:
    """The default unit prefix for an image argument as typed (spec 2.4, portablectl).

    Last component (trailing slashes ignored, as systemd v257+ does; v252's ``basename()`` gave
    an empty name there), cut at the first ``_``, else without a ``.raw`` suffix (``systemd``
    256 and later, which pick versions from ``.v/`` directories: also without ``.raw.v`` or
    ``.v``). The result must consist of ``[A-Za-z0-9.-]`` only and be a valid filename.

    :raises PortableError: no usable prefix can be derived.
    """
    last = _path_last_component(image)
    if last is not None:
        name = last[0]
        head, underscore, _ = name.partition("_")
        suffixes = (".raw.v", ".raw", ".v") if systemd >= 256 else (".raw",)
        if underscore:
            name = head
        else:
            name = next((name.removesuffix(s) for s in suffixes if name.endswith(s)), name)
        if _PREFIX_CHARS.fullmatch(name) and is_valid_filename(name):
            return name
    raise PortableError(
        f"Failed to extract prefix of image name '{printable(image)}': Invalid argument"
    )


def unit_matches_prefix(unit: str, prefix: str) -> bool:
    """portabled's ``prefix_match``: ``unit`` starts with ``prefix`` followed by ``-``, ``.``,
    ``@`` or nothing, so ``foo`` matches ``foo-bar.service`` but not ``foobar.service``."""
    if not unit.startswith(prefix):
        return False
    rest = unit[len(prefix) :]
    return rest == "" or rest[0] in "-.@"


def unit_matches(unit: str, prefixes: Sequence[str]) -> bool:
    """Whether ``unit`` is selected by the match list.

    ``["-"]`` alone means all unit files (portablectl turns it into an empty list on the wire);
    an empty list also means all, as it does for portabled. The CLI layer substitutes the default
    prefix (:func:`extract_prefix`) for a missing list before getting here. ``-`` together with
    other prefixes is an ordinary prefix, as in portablectl. The unit type is not checked here
    (see :func:`is_portable_unit_type`).
    """
    if not prefixes or (len(prefixes) == 1 and prefixes[0] == "-"):
        return True
    return any(unit_matches_prefix(unit, p) for p in prefixes)


def image_name_from_filename(filename: str) -> str:
    """The image name (``list`` NAME column) for a file name: the name without ``.raw``.

    The result is not validated; check it with :func:`is_valid_image_name`.
    """
    return filename[: -len(".raw")] if filename.endswith(".raw") else filename


def path_extract_image_name(path: str, is_dir: bool = False) -> str:
    """systemd's ``path_extract_image_name`` (v254+, spec 1.6): the version-less image name.

    Last component; unless it is known to be a directory (``is_dir``, or the path ends in ``/``)
    the first matching suffix of ``.sysext.raw``, ``.confext.raw``, ``.raw`` is removed; then
    everything from the first ``_`` or ``+`` is cut. ``/tmp/app1.v/app1_2.0.raw`` → ``app1``.

    :raises PortableError: the path has no last component or the result is no valid image name.
    """
    last = _path_last_component(path)
    if last is not None:
        name, trailing_slash = last
        if not (is_dir or trailing_slash):
            for suffix in _IMAGE_SUFFIXES:
                if name.endswith(suffix):
                    name = name[: -len(suffix)]
                    break
        name = re.split(r"[_+]", name, maxsplit=1)[0]
        if is_valid_image_name(name):
            return name
    raise PortableError(f"Failed to extract image name from '{printable(path)}': Invalid argument")


def xescape_marker(path: str) -> str:
    """Escape one path for the marker line (spec 3.4, systemd ``xescape(path, ":")``).

    Every byte < 0x20, ≥ 0x7f, ``\\`` and ``:`` becomes ``\\xNN`` (lowercase hex); non-ASCII
    characters are escaped byte by byte of their UTF-8 form.

    :raises UnicodeEncodeError: ``path`` holds a lone surrogate that surrogateescape can't map.
    """
    out: list[str] = []
    for b in path.encode("utf-8", "surrogateescape"):
        if b < 0x20 or b >= 0x7F or b in (0x5C, 0x3A):  # 0x5c '\', 0x3a ':'
            out.append(f"\\x{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


def unescape_marker(s: str) -> str:
    """Inverse of :func:`xescape_marker`; bytes that are not UTF-8 come back surrogate-escaped.

    A backslash not followed by ``x`` and two hex digits is kept literally, so hand-edited or
    foreign markers never raise.
    """
    # A marker read from disk may carry surrogate-escaped bytes itself: keep them as bytes.
    raw = s.encode("utf-8", "surrogateescape")
    raw = re.sub(_ESCAPE, lambda m: bytes.fromhex(m.group(1).decode("ascii")), raw)
    return raw.decode("utf-8", "surrogateescape")


def format_marker(root: str, extensions: Sequence[str] = ()) -> str:
    """The first line of ``20-portable.conf``, without its newline (spec 3.4)."""
    escaped = ":".join(xescape_marker(p) for p in (root, *extensions))
    return f"{MARKER_BEGIN}{escaped}{MARKER_END}"


def parse_marker(line: str) -> list[str] | None:
    """The image paths (root first) named by a marker line, or ``None`` if it is not one.

    The line must start with ``# Drop-in created for image '`` and end with ``', do not edit.``
    (one trailing line ending is tolerated). Tokens are split at ``:``, which the writer always
    escapes, and unescaped; empty tokens are kept so that this is the exact inverse of
    :func:`format_marker`.
    """
    for eol in ("\r\n", "\n", "\r"):
        if line.endswith(eol):
            line = line[: -len(eol)]
            break
    if (
        len(line) < len(MARKER_BEGIN) + len(MARKER_END)
        or not line.startswith(MARKER_BEGIN)
        or not line.endswith(MARKER_END)
    ):
        return None
    body = line[len(MARKER_BEGIN) : len(line) - len(MARKER_END)]
    return [unescape_marker(token) for token in body.split(":")]


def _image_name_or_none(path: str) -> str | None:
    try:
        return path_extract_image_name(path)
    except PortableError:
        return None


def marker_matches_image(
    marker_paths: Sequence[str],
    image: str,
    extensions: Sequence[str] = (),
    *,
    match_all: bool,
) -> bool:
    """Whether a unit's marker belongs to ``image`` (+ ``extensions``): v254+ rule (spec 4.3).

    Let L = [image, *extensions] (n elements) and T the marker's non-empty tokens (m of them).
    Both sides are reduced with :func:`path_extract_image_name`, so versions (``_1.2``) and
    ``.raw`` don't matter; ``image`` may be a bare image name or a path. The tokens are consumed
    in order, cyclically against L: token k is compared with L[k mod n], round after round while
    tokens remain, and running out of tokens in the middle of a round is a mismatch. Hence:

    * ``match_all=True`` (detach): true iff m > 0, m is a multiple of n and every token equals
      its element. One marker token per element is the normal case; a marker with more tokens
      (units attached with extensions, detach without them) fails unless the extra tokens repeat
      the same names round after round, exactly as in systemd.
    * ``match_all=False`` (is-attached, list state): true as soon as a token equals its element,
      false if the tokens run out first.

    Deliberate differences from systemd 254+: tokens are compared unescaped (systemd compares the
    still-escaped token text, so a name with a non-ASCII or ``:`` character never matched there);
    quotes in a token are not special (systemd's word splitter would strip them); a token or
    argument without a valid image name compares unequal (systemd's error path made the whole
    marker match); an empty marker matches nothing (systemd: a marker of zero length matched any
    detach). Empty tokens are skipped, as systemd's splitter coalesces ``::``. vpick (v256+)
    resolution of ``*.v`` arguments is the caller's business.
    """
    wanted = [_image_name_or_none(p) for p in (image, *extensions)]
    tokens = [t for t in marker_paths if t]
    if not tokens:
        return False
    n = len(wanted)
    rounds = -(-len(tokens) // n)  # ceil: a partial last round still has to be completed
    for k in range(rounds * n):
        if k >= len(tokens):
            return False  # ran out of tokens in the middle of a round
        name = _image_name_or_none(tokens[k])
        equal = name is not None and name == wanted[k % n]
        if match_all and not equal:
            return False
        if not match_all and equal:
            return True
    return match_all
