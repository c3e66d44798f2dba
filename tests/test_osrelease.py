"""portable.images.osrelease: systemd env-file semantics for os-release (spec 2.1, 2.5)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portable.images.osrelease import (
    MAX_OS_RELEASE_SIZE,
    _assignments,
    os_release_error,
    parse_os_release,
    split_prefixes,
)

DEBIAN_12 = b"""\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""


def test_max_size() -> None:
    assert MAX_OS_RELEASE_SIZE == 1024 * 1024


def test_real_os_release() -> None:
    fields = parse_os_release(DEBIAN_12)
    assert fields["ID"] == "debian"
    assert fields["VERSION_ID"] == "12"
    assert fields["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert fields["HOME_URL"] == "https://www.debian.org/"
    assert len(fields) == 9


def test_portable_fields() -> None:
    data = b"""\
ID=debian
VERSION_ID=12
PORTABLE_PRETTY_NAME="My Service"
PORTABLE_PREFIXES="foo bar-"
SYSEXT_LEVEL=1.0
"""
    fields = parse_os_release(data)
    assert fields["PORTABLE_PRETTY_NAME"] == "My Service"
    assert split_prefixes(fields["PORTABLE_PREFIXES"]) == ["foo", "bar-"]
    assert fields["SYSEXT_LEVEL"] == "1.0"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # comments, blank and indented lines
        (b"# comment\n; also a comment\n\n   \nID=x\n", {"ID": "x"}),
        (b"   ID=x\n\t\tVERSION_ID=1", {"ID": "x", "VERSION_ID": "1"}),
        (b"  # indented comment\nID=x", {"ID": "x"}),
        (b"ID=x # not a comment", {"ID": "x # not a comment"}),
        # v254+: a comment ends at its newline even after a backslash
        (b"#c\\\nID=x", {"ID": "x"}),
        (b"#c\\\\\nID=x", {"ID": "x"}),
        # whitespace around '='
        (b"ID = x", {"ID": "x"}),
        (b"ID\t=\tx\t", {"ID": "x"}),
        # unquoted values
        (b"A=x   ", {"A": "x"}),
        (b"A=a b  c ", {"A": "a b  c"}),
        (b"A=a\\ ", {"A": "a "}),  # an escaped blank is not trailing
        (b"A=a\\  ", {"A": "a "}),
        (b'A=a\\"b', {"A": 'a"b'}),
        (b"A=a\\\\b", {"A": "a\\b"}),
        (b"A=a\\nb", {"A": "anb"}),
        (b"A=one\\\ntwo", {"A": "onetwo"}),  # continuation line
        (b"A=one \\\n  two  ", {"A": "one   two"}),
        (b'A=x "y"', {"A": 'x "y"'}),  # quotes are literal inside an unquoted part
        (b"A=it's", {"A": "it's"}),
        (b"A=x\\", {"A": "x"}),  # trailing backslash at end of file
        # single quotes: literal, across lines
        (b"A='a\\b \"c\"  '", {"A": 'a\\b "c"  '}),
        (b"A='line1\nline2'\nB=2", {"A": "line1\nline2", "B": "2"}),
        (b"A='unterminated\nB=2", {"A": "unterminated\nB=2"}),
        # double quotes: only \" \\ \` \$ and backslash-newline are escapes
        (b'A="a \\"b\\" \\\\ \\` \\$"', {"A": 'a "b" \\ ` $'}),
        (b'A="\\n\\t\\x41\\a"', {"A": "\\n\\t\\x41\\a"}),
        (b'A="one\\\ntwo"', {"A": "onetwo"}),
        (b'A="multi\nline"', {"A": "multi\nline"}),
        (b'A="  keep  "', {"A": "  keep  "}),
        (b'A="x', {"A": "x"}),  # unterminated at end of file
        (b'A="x\\', {"A": "x"}),
        # parts concatenate; blanks between a closing quote and the next part vanish
        (b'A="x"y', {"A": "xy"}),
        (b"A='x'\"y\"z", {"A": "xyz"}),
        (b'A="x" "y"', {"A": "xy"}),
        (b'A="a b" c  ', {"A": "a bc"}),
        (b'A="x"  \nB=1', {"A": "x", "B": "1"}),
        # empty values
        (b"A=", {"A": ""}),
        (b"A=\nB=", {"A": "", "B": ""}),
        (b'A=""', {"A": ""}),
        (b"A=''", {"A": ""}),
        (b"A=   ", {"A": ""}),
        # later assignments override earlier ones, including by an empty value
        (b"ID=a\nID=b\n", {"ID": "b"}),
        (b"ID=a\nID=\n", {"ID": ""}),
        # line endings: CR counts as a newline too
        (b"A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
        (b"A=1\rB=2", {"A": "1", "B": "2"}),
        # lines without '=' and keys that are not variable names are ignored
        (b"garbage\nID=x\nmore garbage", {"ID": "x"}),
        (b'1A=x\nA-B=x\nA B=x\n=x\n==x\n"A"=x\nB=ok', {"B": "ok"}),
        (b"_A1=x\na=y", {"_A1": "x", "a": "y"}),
        (b"A=x=y", {"A": "x=y"}),
        # UTF-8 is fine; invalid UTF-8 or NUL only drop their own assignment here
        ('NAME="Dëbïan ✓"'.encode(), {"NAME": "Dëbïan ✓"}),
        (b"A=\xff\xfe\nB=2", {"B": "2"}),
        (b"A=\xed\xa0\x80\nB=2", {"B": "2"}),  # an encoded surrogate is not UTF-8
        (b"A=x\x00y\nB=2", {"B": "2"}),
        (b"\xffKEY=1\nB=2", {"B": "2"}),
        (b"", {}),
        (b"\n\n\n", {}),
        (b"ID", {}),
    ],
)
def test_parse_rules(data: bytes, expected: dict[str, str]) -> None:
    assert parse_os_release(data) == expected


def test_os_release_error() -> None:
    assert os_release_error(DEBIAN_12) is None
    assert os_release_error(b"") is None
    assert os_release_error(b"ID=x\0") == "Bad message"
    assert os_release_error(b"# \0 in a comment still counts\nID=x") == "Bad message"
    assert os_release_error(b"ID=x\nA=\xff") == "Invalid argument"
    assert os_release_error(b"\xff=1") == "Invalid argument"  # keys are checked too
    assert os_release_error(b"# \xff in a comment is fine\nID=x") is None
    assert os_release_error(b"no assignment \xff here") is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("foo", ["foo"]),
        ("foo bar", ["foo", "bar"]),
        ("  foo\t\tbar\nbaz\r ", ["foo", "bar", "baz"]),
        ("", []),
        ("   ", []),
        ("'a b'", ["'a", "b'"]),  # no unquoting
        ('"a"', ['"a"']),
        ("a\\ b", ["a\\", "b"]),  # backslashes are ordinary characters
        ("a\x0bb\x0cc\xa0d", ["a\x0bb\x0cc\xa0d"]),  # only space, tab, CR, LF separate
    ],
)
def test_split_prefixes(value: str, words: list[str]) -> None:
    assert split_prefixes(value) == words


# --- properties ---------------------------------------------------------------------------------


def reference_assignments(data: bytes) -> list[tuple[bytes, bytes]]:
    """systemd's parse_env_file_internal (v254+), one byte at a time, for comparison."""
    ws, nl = b" \t\n\r", b"\n\r"
    out: list[tuple[bytes, bytes]] = []
    state = "pre_key"
    key = bytearray()
    value = bytearray()
    key_ws: int | None = None
    value_ws: int | None = None

    def push(strip_value: bool) -> None:
        k = key[:key_ws] if key_ws is not None else key
        v = value[:value_ws] if strip_value and value_ws is not None else value
        out.append((bytes(k), bytes(v)))

    for c in data:
        if state == "pre_key":
            if c in b"#;":
                state = "comment"
            elif c not in ws:
                state, key, key_ws = "key", bytearray([c]), None
        elif state == "key":
            if c in nl:
                state = "pre_key"
            elif c == ord("="):
                state, value_ws = "pre_value", None
            else:
                if c not in ws:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in nl:
                push(False)
                state, value = "pre_key", bytearray()
            elif c == ord("'"):
                state = "single"
            elif c == ord('"'):
                state = "double"
            elif c == ord("\\"):
                state = "value_escape"
            elif c not in ws:
                state = "value"
                value.append(c)
        elif state == "value":
            if c in nl:
                push(True)
                state, value = "pre_key", bytearray()
            elif c == ord("\\"):
                state, value_ws = "value_escape", None
            else:
                if c not in ws:
                    value_ws = None
                elif value_ws is None:
                    value_ws = len(value)
                value.append(c)
        elif state == "value_escape":
            state = "value"
            if c not in nl:
                value.append(c)
        elif state == "single":
            if c == ord("'"):
                state = "pre_value"
            else:
                value.append(c)
        elif state == "double":
            if c == ord('"'):
                state = "pre_value"
            elif c == ord("\\"):
                state = "double_escape"
            else:
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in b'"\\`$':
                value.append(c)
            elif c != ord("\n"):
                value += bytes((ord("\\"), c))
        elif state == "comment":
            if c == ord("\\"):
                state = "comment_escape"
            elif c in nl:
                state = "pre_key"
        else:  # comment_escape
            state = "pre_key" if c in nl else "comment"
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        push(state == "value")
    return out


env_bytes = st.one_of(
    st.binary(max_size=200),
    st.text(alphabet="AB_1=#; \t\n\r'\"\\$`xé\0", max_size=120).map(lambda s: s.encode()),
)


@given(env_bytes)
def test_matches_reference_state_machine(data: bytes) -> None:
    assert list(_assignments(data)) == reference_assignments(data)


@given(st.binary(max_size=500))
def test_parse_never_raises(data: bytes) -> None:
    fields = parse_os_release(data)
    for key, value in fields.items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)
        assert "\0" not in value
    os_release_error(data)


keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
values = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=40)


def double_quote(value: str) -> str:
    return '"' + re.sub(r'(["\\`$])', r"\\\1", value) + '"'


def single_quote_or_double(value: str) -> str:
    return f"'{value}'" if "'" not in value else double_quote(value)


@given(st.dictionaries(keys, values, max_size=8), st.sampled_from(["\n", "\r\n", "\n\n# c\n"]))
def test_round_trip_double_quoted(fields: dict[str, str], sep: str) -> None:
    text = sep.join(f"{k}={double_quote(v)}" for k, v in fields.items())
    assert parse_os_release(text.encode()) == fields


@given(st.dictionaries(keys, values, max_size=8))
def test_round_trip_single_quoted(fields: dict[str, str]) -> None:
    text = "\n".join(f"  {k} = {single_quote_or_double(v)}  " for k, v in fields.items())
    assert parse_os_release(text.encode()) == fields


@given(st.lists(st.tuples(keys, values), max_size=10))
def test_last_assignment_wins(pairs: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{k}={double_quote(v)}" for k, v in pairs)
    assert parse_os_release(text.encode()) == dict(pairs)


@given(st.lists(st.from_regex(r"[^ \t\n\r]+", fullmatch=True), max_size=6))
def test_split_prefixes_round_trip(words: list[str]) -> None:
    assert split_prefixes(" \t".join(words)) == words


@settings(deadline=None, max_examples=3)
@given(st.sampled_from([b"A=" + b"x" * MAX_OS_RELEASE_SIZE, b"\\" * MAX_OS_RELEASE_SIZE]))
def test_large_input_is_fine(data: bytes) -> None:
    # no recursion, and a run of ordinary bytes is consumed in one step
    parse_os_release(data)
