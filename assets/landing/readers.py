"""Reading landing files as delivered, accounting for every line.

A reader returns every data row as text (``_line`` = its line in the file) and
every row it could not read as a :class:`Rejected` line with a reason, so that
rows delivered = rows read + rows rejected, always. A file that cannot be read
at all (wrong encoding, binary junk, no header) raises :class:`UnreadableFile`
naming the file and the problem; the caller quarantines that file and goes on.

CSV: Polars parses; field counts are checked per raw line first, because Polars
pads short rows silently. Files with quoted fields (which may span lines) go
through the standard library's ``csv`` module instead, which is exact but slower.
JSONL: Polars parses the whole file; on a bad line, each line is parsed alone.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from assets.landing.formats import FileFormat


class UnreadableFile(ValueError):
    """The whole file is unusable; the message names the file and why."""


@dataclass
class Rejected:
    line: int
    reason: str
    raw: str


@dataclass
class ReadResult:
    frame: pl.DataFrame  # all columns String, plus _line (Int64)
    rejected: list[Rejected]
    delivered: int
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)


_DIGITS = re.compile(r"\d")
_LATIN = re.compile(r"[A-Za-z]")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def redact(raw: str, limit: int = 300) -> str:
    """Keep a rejected line's shape, not its content: digits 9, letters x, Chinese 字."""
    out = _CJK.sub("字", _LATIN.sub("x", _DIGITS.sub("9", raw)))
    return out if len(out) <= limit else out[:limit] + f"...(+{len(out) - limit} chars)"


def _decode(path: Path, data: bytes, encoding: str) -> str:
    if not data.strip():
        raise UnreadableFile(f"{path.name}: file is empty")
    if b"\x00" in data[:4096] and data[:4096].count(b"\x00") > 8:
        raise UnreadableFile(f"{path.name}: binary content (NUL bytes), not a {encoding} text export")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"{path.name}: not valid {encoding} (byte {exc.start}: {exc.reason}); "
            f"the channel's export encoding may have changed"
        ) from exc
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _expected_columns(fmt: FileFormat, header: list[str], path: Path) -> tuple[list[str], list[str]]:
    wanted = [x.source for x in fmt.fields]
    missing = [c for c in wanted if c not in header]
    extra = [c for c in header if c not in wanted]
    if fmt.id_field.source in missing:
        raise UnreadableFile(
            f"{path.name}: header has no record id column {fmt.id_field.source!r} (found: {', '.join(header)[:200]})"
        )
    if len(set(header)) != len(header):
        dupes = sorted({c for c in header if header.count(c) > 1})
        raise UnreadableFile(f"{path.name}: duplicated header columns {dupes}")
    return missing, extra


def _finish(frame: pl.DataFrame, fmt: FileFormat, missing: list[str]) -> pl.DataFrame:
    for col in missing:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    keep = [x.source for x in fmt.fields] + ["_line"]
    return frame.select(keep)


def read_csv(path: Path, fmt: FileFormat) -> ReadResult:
    text = _decode(path, path.read_bytes(), fmt.encoding)
    lines = text.split("\n")
    header_line = lines[0]
    if '"' in text:
        return _read_csv_exact(path, fmt, text)
    header = [h.strip() for h in header_line.split(",")]
    missing, extra = _expected_columns(fmt, header, path)
    body = pl.DataFrame({"raw": lines[1:]}).with_row_index("_line", offset=2)
    body = body.filter(pl.col("raw").str.strip_chars() != "")
    body = body.with_columns((pl.col("raw").str.count_matches(",", literal=True) + 1).alias("_n"))
    bad = body.filter(pl.col("_n") != len(header))
    good = body.filter(pl.col("_n") == len(header))
    rejected = [
        Rejected(int(r["_line"]), f"expected {len(header)} fields, found {r['_n']}", redact(r["raw"]))
        for r in bad.iter_rows(named=True)
    ]
    if good.height:
        payload = (",".join(header) + "\n" + "\n".join(good["raw"].to_list()) + "\n").encode()
        frame = pl.read_csv(payload, infer_schema=False, quote_char=None)
        frame = frame.with_columns(good["_line"].cast(pl.Int64).alias("_line"))
    else:
        frame = pl.DataFrame({h: [] for h in header}, schema={h: pl.String for h in header}).with_columns(
            pl.lit(None, dtype=pl.Int64).alias("_line")
        )
    return ReadResult(_finish(frame, fmt, missing), rejected, body.height, missing, extra)


def _read_csv_exact(path: Path, fmt: FileFormat, text: str) -> ReadResult:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise UnreadableFile(f"{path.name}: no readable header row ({exc})") from exc
    missing, extra = _expected_columns(fmt, header, path)
    rows, lines, rejected, delivered = [], [], [], 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            delivered += 1
            rejected.append(Rejected(line, f"unreadable CSV row: {exc}", ""))
            continue
        if not row or all(not c.strip() for c in row):
            continue
        delivered += 1
        if len(row) != len(header):
            rejected.append(Rejected(line, f"expected {len(header)} fields, found {len(row)}", redact(",".join(row))))
            continue
        rows.append(row)
        lines.append(line)
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in header]
    frame = pl.DataFrame({h: list(c) for h, c in zip(header, columns, strict=True)},
                         schema={h: pl.String for h in header})
    frame = frame.with_columns(pl.Series("_line", lines, dtype=pl.Int64))
    return ReadResult(_finish(frame, fmt, missing), rejected, delivered, missing, extra)


def _stringify(frame: pl.DataFrame) -> pl.DataFrame:
    out = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.List | pl.Struct | pl.Array):
            out.append(pl.lit(None, pl.String).alias(name))  # lists are only in dropped fields
        elif dtype == pl.String:
            out.append(col)
        else:
            out.append(col.cast(pl.String).alias(name))
    return frame.select(out)


def read_jsonl(path: Path, fmt: FileFormat) -> ReadResult:
    text = _decode(path, path.read_bytes(), fmt.encoding)
    raw_lines = text.split("\n")
    numbered = [(i + 1, ln) for i, ln in enumerate(raw_lines) if ln.strip()]
    rejected: list[Rejected] = []
    try:
        frame = pl.read_ndjson(io.BytesIO("\n".join(ln for _, ln in numbered).encode()), infer_schema_length=None)
        if frame.height != len(numbered):
            raise ValueError("row count mismatch")
        frame = _stringify(frame).with_columns(pl.Series("_line", [n for n, _ in numbered], dtype=pl.Int64))
    except Exception:  # noqa: BLE001 - any parse failure: fall back to exact per-line parsing
        records, lines = [], []
        for n, ln in numbered:
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError as exc:
                rejected.append(Rejected(n, f"invalid JSON: {exc.msg} at column {exc.colno}", redact(ln)))
                continue
            if not isinstance(obj, dict):
                rejected.append(Rejected(n, f"JSON line is a {type(obj).__name__}, not an object", redact(ln)))
                continue
            records.append({k: (None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                if isinstance(v, list | dict) else str(v).lower() if isinstance(v, bool) else str(v))
                            for k, v in obj.items()})
            lines.append(n)
        keys = sorted({k for r in records for k in r})
        frame = pl.DataFrame(records, schema={k: pl.String for k in keys}) if records else pl.DataFrame(
            schema={k: pl.String for k in keys})
        frame = frame.with_columns(pl.Series("_line", lines, dtype=pl.Int64))
    header = [c for c in frame.columns if c != "_line"]
    missing = [x.source for x in fmt.fields if x.source not in header]
    extra = [c for c in header if c not in {x.source for x in fmt.fields}]
    if fmt.id_field.source in missing and frame.height:
        raise UnreadableFile(f"{path.name}: no record has the id field {fmt.id_field.source!r}")
    return ReadResult(_finish(frame, fmt, missing), rejected, len(numbered), missing, extra)


def read_file(path: Path, fmt: FileFormat) -> ReadResult:
    return read_jsonl(path, fmt) if fmt.reader == "jsonl" else read_csv(path, fmt)
