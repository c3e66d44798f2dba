"""The unit-file parser (``portable.systemd.unitfile``) on hostile input (issue 16, hole 6).

The parser is linear: each physical line is looked at once (it used to rescan a continued line
for each of its lines: 20,000 continued lines took over a minute). That is measured in
``benchmarks/unitfile_parse.py``, not here: these tests check that it still reads exactly what
a straightforward transcription of systemd's loop (``config_parse()`` in
``src/shared/conf-parser.c``) reads, on random input full of continuations, comments inside
them and runs of backslashes; and that it refuses what systemd refuses, with systemd's numbers
(``LONG_LINE_MAX``), in one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portable.errors import PortableError
from portable.systemd import unitfile
from portable.systemd.unitfile import LONG_LINE_MAX, UnitFileTooLong, parse_unit_text
from portable.testing.images import service_unit

WHITESPACE = " \t\n\r"


class Refused(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def reference(text: str, limit: int = LONG_LINE_MAX) -> list[tuple[str, str, str, int]]:
    """systemd's loop as written there: the escape state rescanned over the whole continued
    line for every line, character by character (quadratic: small inputs only)."""
    out: list[tuple[str, str, str, int]] = []
    section = ""
    continuation: str | None = None
    start = 0

    def parse_line(line: str, number: int) -> None:
        nonlocal section
        line = line.strip(WHITESPACE)
        if not line:
            return
        if line[0] == "[":
            if line[-1] == "]" and len(line) > 2:
                section = line[1:-1]
            return
        if section and "=" in line:
            key, _, value = line.partition("=")
            out.append((section, key.strip(WHITESPACE), value.strip(WHITESPACE), number))

    for number, raw in enumerate(text.split("\n"), 1):
        raw = raw.rstrip("\r")
        if len(raw.encode("utf-8", "surrogateescape")) >= limit:
            raise Refused(number)  # read_line(f, LONG_LINE_MAX, ...): -ENOBUFS
        if raw.lstrip(WHITESPACE)[:1] in ("#", ";"):
            continue
        if continuation is not None:
            size = len((continuation + raw).encode("utf-8", "surrogateescape"))
            if size > limit:
                raise Refused(number)  # "Continuation line too long"
            line = continuation + raw
        else:
            line, start = raw, number
        escaped = False
        for ch in line:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
        if escaped:
            continuation = line[:-1] + " "
            continue
        continuation = None
        parse_line(line, start)
    if continuation is not None:
        parse_line(continuation, start)
    return out


def ours(text: str) -> list[tuple[str, str, str, int]]:
    return [(a.section, a.key, a.value, a.line) for a in parse_unit_text(text, "t.service")]


# Pieces that make the interesting cases likely: continuations (one or more backslashes at the
# end of a line), comment lines inside them, headers, CRs, whitespace, non-ASCII.
piece = st.sampled_from(
    [
        "\n",
        "\n",
        "\\\n",
        "\\\\\n",
        "\\\\\\\n",
        "\\",
        "\r\n",
        "\n#c \\\n",
        "\n ; x\\\n",
        "\n[Service]\n",
        "[Unit]",
        "[]",
        "[X",
        "Key=",
        " = ",
        "=",
        "A=b",
        "#",
        ";",
        " ",
        "\t",
        "\r",
        "x",
        "é",
        "\udcff",  # a byte that is not UTF-8, as surrogateescape decodes it
    ]
)
unit_texts = st.lists(piece, max_size=60).map("".join)


@settings(max_examples=600, deadline=None)
@given(unit_texts)
def test_same_as_systemds_loop(text):
    assert ours(text) == reference(text)


@settings(max_examples=400, deadline=None)
@given(unit_texts, st.integers(min_value=2, max_value=24))
def test_same_refusals_as_systemd_with_a_small_limit(text, limit):
    try:
        expected: object = reference(text, limit)
    except Refused as exc:
        expected = exc.line
    saved = unitfile.LONG_LINE_MAX  # read at each call: a small one makes refusals likely
    unitfile.LONG_LINE_MAX = limit
    try:
        got: object = ours(text)
    except UnitFileTooLong as exc:
        assert str(exc).startswith("t.service: line ") and "\n" not in str(exc)
        got = int(str(exc).split()[2].rstrip(":"))
    finally:
        unitfile.LONG_LINE_MAX = saved
    assert got == expected


def test_the_existing_cases_still_read_the_same():
    text = (
        "# comment\n[Unit]\nDescription=x\n\n[Service]\n  Key = a b \\\n"
        "# comment inside a continuation\n  c\nNoEquals\n; other comment\n"
        "Trailing=\\\\\n[X-Mine]\nOwn=1\nLast=end \\"
    )
    assert ours(text) == reference(text)
    assert [a for a in ours(text) if a[1] == "Key"] == [("Service", "Key", "a b    c", 6)]


def continued(lines: int) -> str:
    return "[Service]\nExecStart=/bin/true \\\n" + "  --an-argument \\\n" * lines + "  end\n"


def test_a_long_continuation_is_one_assignment():
    # 20,000 lines (the case; minutes before the linear parser, not timed here)
    (exec_start,) = ours(continued(20000))
    assert exec_start[:2] == ("Service", "ExecStart") and exec_start[3] == 2
    assert exec_start[2].count("--an-argument") == 20000 and exec_start[2].endswith(" end")


def test_systemds_limits_exactly():
    # A physical line: at most LONG_LINE_MAX - 1 bytes (read_line() fails when it reaches it).
    header = "[Service]\n"
    key = "Environment=A="
    ok = header + key + "x" * (LONG_LINE_MAX - 1 - len(key)) + "\n"
    assert len("Environment=") + len(ours(ok)[0][2]) == LONG_LINE_MAX - 1
    with pytest.raises(UnitFileTooLong, match=r"^t\.service: line 2: "):
        ours(header + key + "x" * (LONG_LINE_MAX - len(key)) + "\n")
    # Bytes, not characters: 'é' is two.
    with pytest.raises(UnitFileTooLong):
        ours(header + key + "é" * (LONG_LINE_MAX // 2) + "\n")
    # A continued line: at most LONG_LINE_MAX bytes in all (the newlines do not count, each
    # backslash does, as the space it becomes), whatever its physical lines.
    first = "ExecStart=/bin/true \\\n"
    middle = "  " + "y" * 1000 + " \\\n"
    n = (LONG_LINE_MAX - len(first) + 1) // (len(middle) - 1)
    used = len(first) - 1 + n * (len(middle) - 1)
    exact = header + first + middle * n + "z" * (LONG_LINE_MAX - used) + "\n"
    (value,) = ours(exact)
    assert len("ExecStart=") + len(value[2]) == LONG_LINE_MAX
    over = header + first + middle * n + "z" * (LONG_LINE_MAX - used + 1) + "\n"
    with pytest.raises(UnitFileTooLong, match=rf"line {n + 3}: the continued line") as info:
        ours(over)
    assert isinstance(info.value, PortableError) and "\n" not in str(info.value)
    # Comment lines inside a continuation are skipped, not counted; a long one is still refused.
    with pytest.raises(UnitFileTooLong, match="line 3: "):
        ours(header + first + "#" + "c" * LONG_LINE_MAX + "\n  end\n")


def test_security_refuses_a_line_systemd_refuses(portable_root: Path, portable_cli):
    unit = portable_root / "srv/big.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(service_unit(extra="Environment=A=" + "x" * LONG_LINE_MAX + "\n"))
    code, out, err = portable_cli("security", "/srv/big.service")
    assert code == 1 and out == ""
    assert err.startswith("portable: error: ") and err.count("\n") == 1
    assert "big.service: line " in err and "LONG_LINE_MAX" in err


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str]]:
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                out[str(p)] = (st.st_mode, os.readlink(p))
            elif p.is_file():
                out[str(p)] = (st.st_mode, p.read_bytes())
            else:
                out[str(p)] = (st.st_mode, "")
    return out


def test_max_exposure_refuses_a_line_systemd_refuses(portable_root: Path, make_image, portable_cli):
    # The largest unit file an image may hold (units.MAX_UNIT_SIZE, 1 MiB) as one comment line:
    # systemd refuses to load it, and so does the score; nothing is written.
    image = make_image("big_1", units={"big.service": "#" * (1024 * 1024)})
    before = snapshot(portable_root)
    code, out, err = portable_cli("attach", "--max-exposure", "9.9", image)
    assert code == 1 and err.count("\n") == 1 and "big.service: line 1: " in err
    assert snapshot(portable_root) == before
