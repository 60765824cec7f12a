"""A reference line-protocol parser for the tests: InfluxDB's scanning rules, written independently.

It follows the scanner of InfluxDB's ``models/points.go``: a backslash makes the
next character part of the token; a tag set ends at the first unescaped space;
a quoted string ends at the first unescaped quote. Unescaping follows the line
protocol reference: in keys, tag values and measurement names ``\\\\``, ``\\,``,
``\\=`` and ``\\ `` stand for the character after the backslash; in strings
``\\\\`` and ``\\"`` do; any other backslash is literal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedLine:
    measurement: str
    tags: list[tuple[str, str]]
    fields: list[tuple[str, str]]
    """Field key and raw value text (strings still quoted)."""
    timestamp: int


class LineSyntaxError(AssertionError):
    pass


def _scan(line: str, i: int, stops: str) -> tuple[str, int]:
    start = i
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            i += 2
            continue
        if line[i] in stops:
            break
        i += 1
    return line[start:i], i


def _expect(line: str, i: int, char: str) -> int:
    if i >= len(line) or line[i] != char:
        raise LineSyntaxError(f"expected {char!r} at {i} in {line!r}")
    return i + 1


def unescape_key(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "\\,= ":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def unescape_string(quoted: str) -> str:
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise LineSyntaxError(f"not a quoted string: {quoted!r}")
    text, out, i = quoted[1:-1], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '\\"':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_line(line: str) -> ParsedLine:
    if "\n" in line or "\r" in line:
        raise LineSyntaxError(f"a point spans lines: {line!r}")
    if line.startswith("#"):
        raise LineSyntaxError(f"a comment, not a point: {line!r}")
    measurement, i = _scan(line, 0, ", ")
    if not measurement:
        raise LineSyntaxError(f"no measurement in {line!r}")
    tags = []
    while i < len(line) and line[i] == ",":
        key, i = _scan(line, i + 1, "=, ")
        i = _expect(line, i, "=")
        value, i = _scan(line, i, ", ")
        if not key or not value:
            raise LineSyntaxError(f"empty tag key or value in {line!r}")
        tags.append((key, value))
    i = _expect(line, i, " ")
    fields = []
    while True:
        key, i = _scan(line, i, "=, ")
        i = _expect(line, i, "=")
        if not key:
            raise LineSyntaxError(f"empty field key in {line!r}")
        if i < len(line) and line[i] == '"':
            j = i + 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            if j >= len(line):
                raise LineSyntaxError(f"unterminated string in {line!r}")
            value, i = line[i : j + 1], j + 1
        else:
            value, i = _scan(line, i, ", ")
        fields.append((key, value))
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        break
    i = _expect(line, i, " ")
    stamp = line[i:]
    if not stamp.isdigit():
        raise LineSyntaxError(f"bad timestamp {stamp!r} in {line!r}")
    return ParsedLine(unescape_key(measurement), tags, fields, int(stamp))
