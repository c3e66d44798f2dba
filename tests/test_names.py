"""portable.systemd.names: image/unit names, prefixes, and the 20-portable.conf marker (spec
1.4-1.7, 2.4,
3.4, 4.3)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portable.errors import PortableError
from portable.systemd.names import (
    PORTABLE_UNIT_TYPES,
    UNIT_TYPES,
    extract_prefix,
    format_marker,
    image_name_from_filename,
    is_portable_unit_type,
    is_valid_filename,
    is_valid_image_name,
    is_valid_unit_name,
    marker_matches_image,
    parse_marker,
    path_extract_image_name,
    unescape_marker,
    unit_matches,
    unit_matches_prefix,
    unit_type,
    xescape_marker,
)

# Text as it can come from the file system: any bytes, decoded the way os.fsdecode does.
fs_text = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
any_text = st.one_of(st.text(max_size=40), fs_text)


# --- filenames and image names (spec 1.4) -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["foo", "foo_1.2", "foo.raw", "minimal_0.raw", ".foo", "ü", "a b", "a" * 255, "é" * 127],
)
def test_valid_image_names(name: str) -> None:
    assert is_valid_filename(name)
    assert is_valid_image_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b",
        "/foo",
        "foo/",
        "a" * 256,
        "é" * 128,  # 256 bytes of UTF-8
        "a\0b",
    ],
)
def test_invalid_filenames(name: str) -> None:
    assert not is_valid_filename(name)
    assert not is_valid_image_name(name)


@pytest.mark.parametrize(
    "name",
    ["a\nb", "tab\there", "del\x7f", "\x1f", ".#foo", ".#", "\udc80", "ok\udcff"],
)
def test_filename_but_not_image_name(name: str) -> None:
    # control characters, temporary-file names and invalid UTF-8 are valid filenames only
    assert is_valid_filename(name)
    assert not is_valid_image_name(name)


def test_c1_control_characters_are_allowed_in_image_names() -> None:
    # systemd's string_has_cc looks at bytes < 0x20 and 0x7f only; U+0085 is bytes c2 85
    assert is_valid_image_name("a\x85b")


def test_unencodable_surrogate_is_never_valid() -> None:
    assert not is_valid_filename("\ud800")
    assert not is_valid_image_name("\ud800")


@given(any_text)
def test_image_name_validity_never_raises(name: str) -> None:
    if is_valid_image_name(name):
        assert is_valid_filename(name)
        assert "/" not in name


# --- unit names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "foo.service",
        "foo@.service",
        "foo@bar.service",
        "foo@bar@baz.service",  # further '@' belong to the instance
        "foo@a.b.socket",
        "foo.bar.timer",
        "foo-bar_baz:qux\\x2d.path",
        "-.mount",
        "dev-sda.device",
        "user.slice",
        "x.scope",
        "x.swap",
        "x.automount",
        "x.target",
        "a" * (255 - len(".service")) + ".service",
    ],
)
def test_valid_unit_names(name: str) -> None:
    assert is_valid_unit_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "foo",
        "foo.",
        ".service",
        "@.service",
        "@foo.service",
        "foo.unknown",
        "foo.SERVICE",
        "foo.service.d",
        "foo bar.service",
        "foo/bar.service",
        "fooé.service",
        "foo\n.service",
        "foo*.service",
        "a" * (256 - len(".service")) + ".service",  # 256 bytes: UNIT_NAME_MAX includes NUL
    ],
)
def test_invalid_unit_names(name: str) -> None:
    assert not is_valid_unit_name(name)


@given(any_text)
def test_unit_name_validity_never_raises(name: str) -> None:
    if is_valid_unit_name(name):
        assert unit_type(name) is not None
        assert len(name.encode()) <= 255


def test_unit_types() -> None:
    assert PORTABLE_UNIT_TYPES == ("service", "socket", "target", "timer", "path")
    assert set(PORTABLE_UNIT_TYPES) <= set(UNIT_TYPES)
    assert len(UNIT_TYPES) == 11
    assert unit_type("foo.service") == "service"
    assert unit_type("foo@x.mount") == "mount"
    assert unit_type("foo.bar.slice") == "slice"
    assert unit_type("foo") is None
    assert unit_type("foo.d") is None
    assert unit_type("foo.service.d") is None
    assert unit_type("foo.") is None


@pytest.mark.parametrize("kind", ["service", "socket", "target", "timer", "path"])
def test_portable_unit_types(kind: str) -> None:
    assert is_portable_unit_type(f"foo.{kind}")
    assert is_portable_unit_type(f"foo@x.{kind}")


@pytest.mark.parametrize(
    "name", ["foo.mount", "foo.slice", "foo.scope", "foo.device", "foo.swap", "foo", "x.conf"]
)
def test_not_portable_unit_types(name: str) -> None:
    assert not is_portable_unit_type(name)


# --- default prefix (spec 2.4) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "prefix"),
    [
        ("foobar_47.11.raw", "foobar"),
        ("minimal_0.raw", "minimal"),
        ("rootdir", "rootdir"),
        ("my.app.raw", "my.app"),
        ("/srv/x/foo_1.2", "foo"),
        ("/srv/x/foo_1.2/", "foo"),  # v257+ behaviour, adopted (v252 failed here)
        ("/srv/x/foo_1.2//", "foo"),
        ("/srv/x/foo_1.2/.", "foo"),
        ("./foo.raw", "foo"),
        ("foo.raw.raw", "foo.raw"),
        ("foo_bar_baz", "foo"),
        ("app1.v", "app1.v"),  # no vpick (v256+) suffixes in v252 (see below for 257)
        ("foo-bar", "foo-bar"),
        ("a.b-c_d.raw", "a.b-c"),
    ],
)
def test_extract_prefix(image: str, prefix: str) -> None:
    assert extract_prefix(image, systemd=252) == prefix


@pytest.mark.parametrize(
    ("image", "on_252", "on_257"),
    [
        ("/srv/app1.v", "app1.v", "app1"),
        ("/srv/app1.v/", "app1.v", "app1"),
        ("/srv/app1.raw.v", "app1.raw.v", "app1"),
        ("/srv/app1_2.v", "app1", "app1"),
        ("/srv/app1.raw", "app1", "app1"),
    ],
)
def test_extract_prefix_of_versioned_directories_from_256(image, on_252, on_257) -> None:
    """systemd 256 (vpick) also strips .raw.v and .v from the image name."""
    assert extract_prefix(image, systemd=252) == on_252
    assert extract_prefix(image, systemd=256) == on_257
    assert extract_prefix(image, systemd=257) == on_257


@pytest.mark.parametrize(
    "image",
    ["", "/", ".", "..", "foo/..", "_foo", ".raw", "..raw", "...raw", "a b", "a:b", "é", "a@b"],
)
def test_extract_prefix_fails(image: str) -> None:
    with pytest.raises(PortableError) as exc:
        extract_prefix(image, systemd=252)
    assert str(exc.value) == f"Failed to extract prefix of image name '{image}': Invalid argument"


@given(any_text)
def test_extract_prefix_result_is_prefix_charset(image: str) -> None:
    try:
        prefix = extract_prefix(image, systemd=257)
    except PortableError:
        return
    assert re.fullmatch(r"[A-Za-z0-9.-]+", prefix)
    assert is_valid_filename(prefix)


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.-]{0,20}", fullmatch=True),
    st.text(st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]), max_size=10),
)
def test_extract_prefix_cuts_at_first_underscore(name: str, version: str) -> None:
    for systemd in (252, 257):
        assert extract_prefix(f"/some/dir/{name}_{version}", systemd=systemd) == name
        assert extract_prefix(f"{name}_{version}/", systemd=systemd) == name


# --- prefix matching (spec 2.4) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "unit", ["foo.service", "foo-bar.service", "foo@.service", "foo@x.service", "foo.x.path", "foo"]
)
def test_prefix_matches(unit: str) -> None:
    assert unit_matches_prefix(unit, "foo")


@pytest.mark.parametrize("unit", ["foobar.service", "foo_x.service", "fo.service", "bar.service"])
def test_prefix_does_not_match(unit: str) -> None:
    assert not unit_matches_prefix(unit, "foo")


def test_full_unit_name_as_prefix() -> None:
    assert unit_matches_prefix("foo.service", "foo.service")
    assert not unit_matches_prefix("foo.socket", "foo.service")
    assert not unit_matches_prefix("foo-bar.service", "foo.service")


@given(
    st.text(max_size=20),
    st.sampled_from("-.@"),
    st.text(max_size=20),
)
def test_prefix_followed_by_separator_matches(prefix: str, sep: str, rest: str) -> None:
    assert unit_matches_prefix(prefix + sep + rest, prefix)
    assert unit_matches_prefix(prefix, prefix)


@given(st.text(max_size=20), st.characters(exclude_characters="-.@"), st.text(max_size=20))
def test_prefix_followed_by_other_char_does_not_match(prefix: str, ch: str, rest: str) -> None:
    assert not unit_matches_prefix(prefix + ch + rest, prefix)


def test_unit_matches() -> None:
    assert unit_matches("anything.service", ["-"])
    assert unit_matches("anything.service", ("-",))
    assert unit_matches("anything.service", [])  # portabled: an empty list means everything
    assert unit_matches("foo.service", ["bar", "foo"])
    assert unit_matches("bar-x.socket", ["bar", "foo"])
    assert not unit_matches("baz.service", ["bar", "foo"])
    # '-' is only special on its own
    assert not unit_matches("baz.service", ["-", "foo"])
    assert unit_matches("foo.service", ["-", "foo"])
    assert unit_matches("-.service", ["-", "foo"])


# --- image names for list and detach (spec 1.6) -------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("foo_2.0.raw", "foo_2.0"),
        ("minimal_0.raw", "minimal_0"),
        ("foo_1.2", "foo_1.2"),
        ("foo.raw.raw", "foo.raw"),
        ("foo.RAW", "foo.RAW"),
    ],
)
def test_image_name_from_filename(filename: str, name: str) -> None:
    assert image_name_from_filename(filename) == name


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/tmp/app1.v/app1_2.0.raw", "app1"),
        ("/srv/images/minimal_0.raw", "minimal"),
        ("minimal_1.raw", "minimal"),
        ("minimal_0", "minimal"),
        ("/srv/images/foo_1.2", "foo"),
        ("/srv/images/fooext", "fooext"),
        ("foo.sysext.raw", "foo"),
        ("foo.confext.raw", "foo"),
        ("foo.sysext.raw.raw", "foo.sysext.raw"),  # only the first matching suffix goes
        ("foo+3-1.raw", "foo"),
        ("foo_1+2", "foo"),
        ("/srv/foo.raw/", "foo.raw"),  # a directory keeps its suffix
        ("/srv/foo_1.raw/.", "foo"),
        ("app1", "app1"),
    ],
)
def test_path_extract_image_name(path: str, name: str) -> None:
    assert path_extract_image_name(path) == name


def test_path_extract_image_name_known_directory() -> None:
    assert path_extract_image_name("/srv/foo.raw", is_dir=True) == "foo.raw"
    assert path_extract_image_name("/srv/foo_1.raw", is_dir=True) == "foo"
    assert path_extract_image_name("/srv/foo.sysext.raw", is_dir=False) == "foo"


@pytest.mark.parametrize("path", ["", "/", ".", "/a/..", "_1.raw", ".raw", "+x", "/x/.#tmp"])
def test_path_extract_image_name_fails(path: str) -> None:
    with pytest.raises(PortableError):
        path_extract_image_name(path)


@given(any_text, st.booleans())
def test_path_extract_image_name_only_raises_portable_error(path: str, is_dir: bool) -> None:
    try:
        name = path_extract_image_name(path, is_dir=is_dir)
    except PortableError:
        return
    assert is_valid_image_name(name)
    assert "_" not in name
    assert "+" not in name


# --- marker escaping and format (spec 3.4) ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("/srv/images/foo_1.2", "/srv/images/foo_1.2"),
        ("/a:b", "/a\\x3ab"),
        ("a\\b", "a\\x5cb"),
        ("new\nline", "new\\x0aline"),
        ("tab\t", "tab\\x09"),
        ("del\x7f", "del\\x7f"),
        ("é", "\\xc3\\xa9"),
        ("\udcff", "\\xff"),  # a surrogate-escaped byte goes out as that byte
        ("sp ace'\"~", "sp ace'\"~"),
        ("", ""),
    ],
)
def test_xescape_marker(raw: str, escaped: str) -> None:
    assert xescape_marker(raw) == escaped
    assert unescape_marker(escaped) == raw


def test_unescape_is_lenient() -> None:
    assert unescape_marker("\\x3A") == ":"  # upper-case hex accepted
    assert unescape_marker("\\q") == "\\q"
    assert unescape_marker("\\x4") == "\\x4"
    assert unescape_marker("\\xzz") == "\\xzz"
    assert unescape_marker("end\\") == "end\\"
    assert unescape_marker("\\xff") == "\udcff"


@given(st.text())
def test_xescape_round_trip_text(s: str) -> None:
    assert unescape_marker(xescape_marker(s)) == s


@given(fs_text)
def test_xescape_round_trip_fs_bytes(s: str) -> None:
    assert unescape_marker(xescape_marker(s)) == s


@given(any_text)
def test_xescape_output_is_plain_ascii(s: str) -> None:
    escaped = xescape_marker(s)
    assert ":" not in escaped
    assert all(0x20 <= ord(c) < 0x7F for c in escaped)
    # every backslash starts an escape sequence
    assert re.fullmatch(r"(?:[^\\]|\\x[0-9a-f]{2})*", escaped)


def test_format_marker_v252_examples() -> None:
    marker = format_marker("/srv/images/foo_1.2")
    assert marker == "# Drop-in created for image '/srv/images/foo_1.2', do not edit."
    assert len(marker) + 1 == 64  # the whole non-service drop-in, newline included
    assert (
        format_marker("/srv/images/foo_1.2", ["/srv/images/fooext"])
        == "# Drop-in created for image '/srv/images/foo_1.2:/srv/images/fooext', do not edit."
    )
    assert format_marker("/a", ("/b:c", "/d")) == (
        "# Drop-in created for image '/a:/b\\x3ac:/d', do not edit."
    )


def test_parse_marker() -> None:
    line = "# Drop-in created for image '/srv/images/foo_1.2:/srv/images/fooext', do not edit."
    assert parse_marker(line) == ["/srv/images/foo_1.2", "/srv/images/fooext"]
    assert parse_marker(line + "\n") == ["/srv/images/foo_1.2", "/srv/images/fooext"]
    assert parse_marker(line + "\r\n") == ["/srv/images/foo_1.2", "/srv/images/fooext"]
    assert parse_marker("# Drop-in created for image '/a\\x3ab', do not edit.") == ["/a:b"]
    assert parse_marker("# Drop-in created for image '', do not edit.") == [""]


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[Service]",
        "# Drop-in created for image '/a', do not edit",
        "# Drop-in created for image '/a', do not edit. ",
        " # Drop-in created for image '/a', do not edit.",
        "# Drop-in created for image ', do not edit.",  # prefix and suffix overlap
        "# Drop-in created for image '/a', do not edit.\n\n",
    ],
)
def test_parse_marker_rejects(line: str) -> None:
    assert parse_marker(line) is None


@given(any_text, st.lists(any_text, max_size=4))
def test_marker_round_trip(root: str, extensions: list[str]) -> None:
    marker = format_marker(root, extensions)
    assert parse_marker(marker) == [root, *extensions]
    assert parse_marker(marker + "\n") == [root, *extensions]


@given(any_text, st.lists(any_text, max_size=4))
def test_marker_colons_only_separate(root: str, extensions: list[str]) -> None:
    marker = format_marker(root, extensions)
    assert "\n" not in marker
    assert all(0x20 <= ord(c) < 0x7F for c in marker)
    body = marker[len("# Drop-in created for image '") : -len("', do not edit.")]
    assert body.count(":") == len(extensions)


# --- marker <-> image matching, v254+ (spec 4.3) ------------------------------------------------

ROOT0 = "/usr/share/minimal_0.raw"
ROOT1 = "/usr/share/minimal_1.raw"
APP0 = "/tmp/app0.raw"
APP1 = "/tmp/app1.raw"


@pytest.mark.parametrize("match_all", [True, False])
def test_marker_matches_same_image(match_all: bool) -> None:
    assert marker_matches_image([ROOT0], ROOT0, match_all=match_all)
    assert marker_matches_image([ROOT0], "minimal_0.raw", match_all=match_all)
    assert marker_matches_image([ROOT0], "minimal", match_all=match_all)
    assert marker_matches_image([ROOT0, APP0], ROOT0, [APP0], match_all=match_all)


@pytest.mark.parametrize("match_all", [True, False])
def test_marker_matches_other_versions(match_all: bool) -> None:
    assert marker_matches_image([ROOT0], ROOT1, match_all=match_all)
    assert marker_matches_image([ROOT0], "minimal_1", match_all=match_all)
    assert marker_matches_image(["/x/app1.raw"], "/y/app1_2.raw", match_all=match_all)
    assert marker_matches_image(["/srv/foo_1.2"], "/srv/foo_1.3/", match_all=match_all)
    assert marker_matches_image([ROOT0, APP1], ROOT1, ["/tmp/app1_2.0.raw"], match_all=match_all)


@pytest.mark.parametrize("match_all", [True, False])
def test_marker_does_not_match_other_image(match_all: bool) -> None:
    assert not marker_matches_image([ROOT0], "/srv/other_0.raw", match_all=match_all)
    assert not marker_matches_image([ROOT0], "minimalist", match_all=match_all)
    # a directory named *.raw keeps the suffix, the marker token of a file loses it
    assert not marker_matches_image(["/srv/foo.raw"], "/srv/foo.raw/", match_all=match_all)


def test_detach_needs_the_same_extensions() -> None:
    # TEST-29 "two portables share the same base image": detaching minimal_0.raw alone must not
    # take away units attached as minimal_0.raw + app0
    assert not marker_matches_image([ROOT0, APP0], ROOT0, match_all=True)
    assert not marker_matches_image([ROOT0, APP0], ROOT0, [APP1], match_all=True)
    assert not marker_matches_image([ROOT0, APP0], APP0, [ROOT0], match_all=True)  # order counts
    assert not marker_matches_image([ROOT0], ROOT0, [APP0], match_all=True)  # too few tokens


def test_state_query_matches_any_component() -> None:
    assert marker_matches_image([ROOT0, APP0], ROOT0, match_all=False)
    assert marker_matches_image([ROOT0, APP0], "/srv/other.raw", [APP0], match_all=False)
    assert marker_matches_image([ROOT0], ROOT0, [APP0, APP1], match_all=False)
    # the element a token is compared with is fixed by its position...
    assert not marker_matches_image([ROOT0, APP0], APP0, [ROOT0], match_all=False)
    # ...cyclically: with one element every token is compared with it (systemd does the same)
    assert marker_matches_image([ROOT0, APP0], APP0, match_all=False)


def test_marker_tokens_are_consumed_cyclically() -> None:
    # systemd walks the marker round after round against [image, *extensions]
    assert marker_matches_image([ROOT0, ROOT1], ROOT0, match_all=True)
    assert marker_matches_image([ROOT0, APP0, ROOT0, APP0], ROOT0, [APP0], match_all=True)
    assert not marker_matches_image([ROOT0, APP0, ROOT0], ROOT0, [APP0], match_all=True)
    # in a state query the second round still compares: APP0 (token 1) vs ROOT (element 0)
    assert not marker_matches_image(["/x/a.raw", APP0], "/x/b.raw", match_all=False)
    assert marker_matches_image(["/x/a.raw", "/x/b_1.raw"], "/x/b.raw", match_all=False)


@pytest.mark.parametrize("match_all", [True, False])
def test_marker_edge_cases(match_all: bool) -> None:
    assert not marker_matches_image([], ROOT0, match_all=match_all)
    assert not marker_matches_image([""], ROOT0, match_all=match_all)
    assert not marker_matches_image(["/"], "/", match_all=match_all)  # no image name at all
    assert not marker_matches_image([ROOT0], "/", match_all=match_all)
    # empty tokens are skipped, as systemd's splitter coalesces "::"
    assert marker_matches_image([ROOT0, "", APP0], ROOT0, [APP0], match_all=match_all)
    # tokens are compared unescaped
    line = format_marker("/srv/ünïcode_1.raw", ["/srv/ext:1.raw"])
    parsed = parse_marker(line)
    assert parsed is not None
    assert marker_matches_image(parsed, "ünïcode", ["/srv/ext:1.raw"], match_all=match_all)


@given(
    st.lists(st.from_regex(r"/srv/[a-z]{1,3}(_[0-9])?(\.raw)?", fullmatch=True), min_size=1),
    st.integers(min_value=1, max_value=3),
)
def test_marker_rules_property(paths: list[str], rounds: int) -> None:
    image, *extensions = paths
    # the marker written for exactly these images always matches, in both modes
    assert marker_matches_image(paths, image, extensions, match_all=True)
    assert marker_matches_image(paths, image, extensions, match_all=False)
    # repeating it whole keeps matching; cutting it short never matches for detach
    assert marker_matches_image(paths * rounds, image, extensions, match_all=True)
    assert not marker_matches_image(paths[:-1], image, extensions, match_all=True)
    if len(paths) > 1:
        assert not marker_matches_image(paths + paths[:1], image, extensions, match_all=True)
