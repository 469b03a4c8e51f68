"""Opening a report file: its encoding, delimiter, header and format.

Files DuckDB can read as they are (UTF-8 with one header line: most card providers' reports,
Adyen's, generic CSV)
are read directly. The others are *prepared*: streamed line by line (bounded memory),
decoded (GBK and others) to UTF-8, with PayPal's row types, Alipay's ``#`` lines and
WeChat Pay's backticks and summary rows removed, every line checked for its number of
columns, and written with its original line number as the first column.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orderguard.reconcile.formats import OWN, Formats, Layout, recognise
from orderguard.reconcile.mapping import Mapping, mapped_layout

_SNIFF_BYTES = 64 * 1024
#: Lines whose first field is one of these are PayPal STL records that are not data.
_PAYPAL_DATA, _PAYPAL_HEADER = "SB", "CH"
#: The first cell of WeChat Pay's summary header; it and what follows are not data.
_WECHAT_SUMMARY = "总交易单数"


class SourceError(ValueError):
    """A report file cannot be read at all (its lines are then not reconciled)."""


@dataclass(frozen=True)
class LineError:
    """A line that could not be reconciled, and why."""

    file: str
    line: int
    message: str


@dataclass(frozen=True)
class Source:
    """A report file, recognised."""

    path: Path
    layout: Layout
    encoding: str
    delimiter: str
    header: list[str]
    #: The 1-based line number of the header.
    header_line: int

    @property
    def direct(self) -> bool:
        """Whether DuckDB reads the file as it is."""
        return not self.layout.prepared and self.encoding in ("utf-8", "utf-8-sig")


def open_source(
    path: Path,
    *,
    wanted: str = "auto",
    mapping: Mapping | None = None,
    formats: Formats = OWN,
) -> Source:
    """Recognise ``path`` as one of ``formats``; raises :class:`SourceError` when it is no
    report we know."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from exc
    if not head.strip():
        raise SourceError(f"{path}: the file is empty")
    encoding = (mapping.encoding if mapping and mapping.encoding else None) or sniff_encoding(head)
    text = head.decode(encoding, errors="replace")
    lines = text.splitlines()
    if len(head) == _SNIFF_BYTES and lines:
        lines.pop()  # possibly cut
    number, header_text = _header_line(lines)
    delimiter = (mapping.delimiter if mapping else None) or _delimiter(header_text)
    header = _fields(header_text, delimiter)
    if header and header[0] == _PAYPAL_HEADER:
        header = header[1:]
    header = [h.strip().lstrip("\ufeff").strip("`") for h in header]
    if mapping is not None and wanted in ("auto", "csv"):
        layout: Layout | None = mapped_layout(mapping)
        missing = sorted(layout.signature - {h.lower() for h in header}) if layout else []
        if missing:
            raise SourceError(f"{path}: the mapping names columns the file lacks: {missing}")
    else:
        layout = recognise(header, wanted=wanted, formats=formats)
    if layout is None:
        what = "any known report" if wanted == "auto" else f"a {wanted} report"
        hint = " (for another CSV, pass --format csv --mapping FILE)"
        raise SourceError(f"{path}: line {number} is not the header of {what}{hint}")
    if layout.utf8_only and not (mapping and mapping.encoding):
        encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    return Source(path, layout, encoding, delimiter, header, number)


def sniff_encoding(head: bytes) -> str:
    """UTF-8 (with or without BOM) when the bytes decode as such, else GBK."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sniff's end
            return "gb18030"
    return "utf-8"


def _header_line(lines: list[str]) -> tuple[int, str]:
    """The first line that is a header: not a ``#`` comment, not a PayPal file header."""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip().lstrip("\ufeff")
        if not stripped or stripped.startswith("#"):
            continue
        first = stripped.split(",", 1)[0].strip('"')
        if first in ("RH", "FH", "SH"):
            continue
        return number, stripped
    raise SourceError("no header line in the first 64 KiB")


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d])


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def prepare(source: Source, out: Path) -> list[LineError]:
    """Write ``source``'s data lines to ``out`` as clean UTF-8 CSV with a ``__line`` column.

    Returns the lines that could not be used; every other data line is written.
    """
    errors: list[LineError] = []
    name = str(source.path)
    with out.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["__line", *source.header])
        for number, fields, problem in _data_lines(source):
            if problem:
                errors.append(LineError(name, number, problem))
            else:
                writer.writerow([number, *fields])
    return errors


def _data_lines(source: Source) -> Iterator[tuple[int, list[str], str]]:
    """``(line number, fields, problem)`` for each data line after the header."""
    paypal = source.layout.name == "paypal"
    wechat = source.layout.name == "wechatpay"
    width = len(source.header)
    with source.path.open("rb") as raw:
        lines = list_lines(raw)
        for number, data, last in lines:
            if number <= source.header_line:
                continue
            try:
                text = data.decode(source.encoding).rstrip("\r\n").lstrip("\ufeff")
            except UnicodeDecodeError as exc:
                yield number, [], f"not valid {source.encoding} text (byte {exc.start + 1})"
                continue
            if not text.strip() or text.startswith("#"):
                continue
            if wechat and text.lstrip("`").startswith(_WECHAT_SUMMARY):
                return
            fields = [f.strip().lstrip("`") for f in _fields(text, source.delimiter)]
            if paypal:
                if fields[0] != _PAYPAL_DATA:
                    continue
                fields = fields[1:]
            if len(fields) != width:
                cut = " (the file looks truncated)" if last and not data.endswith(b"\n") else ""
                yield number, [], f"expected {width} columns, found {len(fields)}{cut}"
                continue
            yield number, fields, ""


def list_lines(raw: io.BufferedReader) -> Iterator[tuple[int, bytes, bool]]:
    """``(number, bytes, is_last)`` for each line, streamed."""
    previous: bytes | None = None
    number = 0
    for data in raw:
        if previous is not None:
            yield number, previous, False
        number += 1
        previous = data
    if previous is not None:
        yield number, previous, True
