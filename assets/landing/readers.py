"""Reading landing files as delivered, accounting for every line.

A reader returns every data row as text (``_line`` = its line in the file) and
every row it could not read as a :class:`Rejected` line with a reason, so that
rows delivered = rows read + rows rejected, always. A file that cannot be read
at all raises :class:`UnreadableFile` naming the file and the problem; the
caller records that file and goes on with the others.

CSV: rows without quotes are split by Polars expressions. Files with quoted
fields (which may span lines) are read as the standard library's ``csv`` module
reads them: a vectorised, quote-aware screen passes the lines that are one whole
row each to Polars' CSV parser, and ``csv`` reads only the other lines. JSONL:
DuckDB lists the keys, Polars parses the whole file with the format's fields as
text (numbers as written, objects and arrays as JSON text); on any parse failure
each line is parsed alone with :mod:`json`, which gives the same values.

What malformed input becomes (``tests/test_malformed.py`` runs a corpus of all of it):

The whole file is unreadable (recorded once, the rest of the run goes on):

- it is empty or holds only whitespace;
- more than half of its non-blank lines cannot be decoded in the declared
  encoding or hold NUL bytes: binary junk, UTF-16, a zip or gzip, a GB18030
  export where UTF-8 is declared (or the reverse). A file that is *mostly*
  undecodable is a changed export, not a few damaged rows;
- CSV: the header line is undecodable or not valid CSV, it lacks the record id
  column (a file without header, another delimiter, an HTML error page), or it
  repeats a column the format uses (two ``phone`` columns: which one is the
  phone?). A repeated column the format does not use is ignored;
- JSONL: no line is a JSON object (the file is one JSON array, pretty-printed
  objects spanning lines, an HTML page).

One row is quarantined and the rest of the file loads:

- a line that does not decode in the declared encoding: the last line of a file
  cut inside a multi-byte character, a GB18030 row in a UTF-8 file. When the
  line reads as Chinese text in the other usual encoding (GB18030 for UTF-8
  files, UTF-8 for GB18030 ones) the reason says so, to point the channel at
  its export settings;
- in a file declared in a non-UTF-8 encoding (Tmall's GB18030), a line that is
  valid UTF-8 holding Chinese characters. It would decode without error as
  GB18030 mojibake; it is quarantined instead of loaded garbled;
- a line holding a NUL byte, or a value holding NUL (a JSON ``\\u0000`` escape);
  a JSON string with a lone surrogate escape (not encodable text; Polars reads
  it as NUL, so the reason then names a NUL character);
- a value longer than :data:`MAX_FIELD_CHARS` (the ``csv`` module's own limit,
  applied to every reader so that a 1 MB field is treated alike everywhere);
- a CSV row with too many or too few fields; a file cut in the middle of a row
  leaves such a last row;
- a quote left open: ``csv`` would swallow the rest of the file into one field.
  A row spanning several lines is kept only when it has the right number of
  fields; otherwise its first line is quarantined and reading resumes on the
  next line, so the rows after a stray quote still load;
- a field with text after its closing quote (``"a" b``), which the ``csv``
  module reads in strict mode;
- a JSON line that is not valid JSON or not an object.

Blank lines are not rows. A file holding only a header loads zero rows; blank
lines before the header and a byte-order mark on it are ignored. Lines end in
LF, CRLF or a lone CR, mixed freely. "More than half" counts the header, so a
header with one damaged row loads (the row quarantined), while a JSONL file
whose only line is damaged is unreadable.

What cannot be detected: bytes of another encoding that happen to be valid in
the declared one. A GB18030 row in a UTF-8 file is almost never valid UTF-8,
but a short fragment can be, and then loads as mojibake (a garbled name gets
its own name token and matches nobody; phones, emails and ids are ASCII and
unaffected). The reader never loads a row in a guessed encoding, even when it
names the likely one: a wrong guess would load wrong names silently, while a
quarantined row is visible and can be delivered again. A file cut inside its last field loads that field shortened,
like any plausible value; a required field that no longer parses is then
quarantined by the staging rules.

Nothing here puts personal data into a message or a quarantined row: rejected
lines pass through :func:`redact`, and an unexpected header is described by its
known column names and the redacted shape of the others.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from assets.landing.formats import FORMATS, FileFormat

MAX_FIELD_CHARS = 131_072  # the csv module's default field_size_limit()


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


_DIGITS = re.compile(r"\d")  # any Unicode digit, full-width ones included
_LETTERS = re.compile(r"[^\W\d_]")  # any Unicode letter
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
_BREAKS = re.compile(rb"\r\n|\r|\n")
# What str.strip() removes: a line of only these is blank, as Python sees it
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_SURROGATE_ESCAPE = re.compile("[\udc80-\udcff]")  # an undecodable byte under errors="surrogateescape"
_KNOWN_COLUMNS = {x.source for fmt in FORMATS for x in fmt.fields}


def redact(raw: str, limit: int = 300) -> str:
    """Keep a rejected line's shape, not its content: digits 9, letters x, Chinese 字.

    Only the first ``limit`` characters are kept (and redacted), so a 1 MB line costs nothing.
    """
    head = _DIGITS.sub("9", raw[:limit])
    out = _LETTERS.sub(lambda m: "字" if _CJK.match(m.group()) else "x", head)
    return out if len(raw) <= limit else out + f"...(+{len(raw) - limit} chars)"


def _describe_header(header: list[str]) -> str:
    """A header for an error message: known column names as they are, anything else only as its shape.

    When the first line is really a data row, its values are personal data.
    """
    return ", ".join(h if h in _KNOWN_COLUMNS else redact(h, 40) for h in header)[:300]


def _is_chinese_str(text: str) -> bool:
    """Whether decoded ``text`` is Chinese text: holds a Chinese character and no control or private-use one.

    GB18030 decodes many byte strings; requiring Chinese and no junk keeps binary junk
    from being called GB18030 text.
    """
    return bool(_CJK.search(text)) and not any(
        unicodedata.category(ch) in {"Cc", "Co", "Cn"} and ch != "\t" for ch in text)


def _is_chinese_text(raw: bytes, encoding: str) -> bool:
    """Whether ``raw`` decodes in ``encoding`` and reads as Chinese text (:func:`_is_chinese_str`)."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return _is_chinese_str(text)


def _split_lines(text: str) -> list[str]:
    """Split on LF, CRLF or a lone CR, as :data:`_BREAKS` splits the bytes."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _decode_whole(data: bytes, encoding: str, is_utf8: bool) -> tuple[list[str], dict[int, str]] | None:
    """The common case at C speed: the whole file decodes and holds no NUL. None otherwise.

    Line breaks are ASCII and never part of a multi-byte character in UTF-8 or GB18030,
    so splitting after decoding gives the lines :func:`_decode_by_line` would. In a
    non-UTF-8 file, a line that is valid UTF-8 Chinese text still decodes (as mojibake):
    those are found on a second, error-tolerant UTF-8 decoding of the whole file, in
    which a line holding an undecodable byte (a surrogate escape) is not UTF-8.
    """
    if b"\x00" in data:
        return None
    try:
        lines = _split_lines(data.decode(encoding))
    except UnicodeDecodeError:
        return None
    lines[0] = lines[0].removeprefix("\ufeff")
    if is_utf8 or data.isascii():
        return lines, {}
    as_utf8 = _split_lines(data.decode("utf-8", errors="surrogateescape"))
    if len(as_utf8) != len(lines):
        return None
    problem = f"line is utf-8 text in a {encoding} file"
    return lines, {n: problem for n, ln in enumerate(as_utf8, start=1)
                   if not ln.isascii() and not _SURROGATE_ESCAPE.search(ln) and _is_chinese_str(ln)}


def _decode_by_line(data: bytes, encoding: str, is_utf8: bool) -> tuple[list[str], dict[int, str]]:
    """Line by line, with the reason each unusable line cannot be read."""
    other = "gb18030" if is_utf8 else "utf-8"  # the usual mix-up in China, named in the reason
    lines: list[str] = []
    bad: dict[int, str] = {}
    for number, raw in enumerate(_BREAKS.split(data), start=1):
        problem = None
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            line = raw.decode(encoding, errors="replace")
            problem = (f"line is {other} text in a {encoding} file" if _is_chinese_text(raw, other)
                       else f"not valid {encoding} at byte {exc.start} of the line ({exc.reason})")
        if "\x00" in line:
            line = line.replace("\x00", "\ufffd")
            problem = "NUL byte in the line (binary content)"
        elif problem is None and not is_utf8 and not raw.isascii() and _is_chinese_text(raw, "utf-8"):
            problem = f"line is utf-8 text in a {encoding} file"
        lines.append(line)
        if problem:
            bad[number] = problem
    lines[0] = lines[0].removeprefix("\ufeff")
    return lines, bad


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in {"utf-8", "utf-8-sig"}


def _decode(path: Path, data: bytes, encoding: str) -> tuple[list[str], dict[int, str]]:
    """The file's lines (split on LF, CRLF or CR) and, by 1-based line number, the lines that are unusable.

    Unusable lines keep a placeholder text (undecodable bytes and NUL as U+FFFD) so that line
    numbers stay true. Raises :class:`UnreadableFile` for an empty or mostly undecodable file.
    """
    if not data.strip():
        raise UnreadableFile(f"{path.name}: file is empty")
    is_utf8 = _is_utf8(encoding)
    lines, bad = _decode_whole(data, encoding, is_utf8) or _decode_by_line(data, encoding, is_utf8)
    if not bad:
        return lines, bad
    nonblank = sum(1 for ln in lines if ln.strip())
    if 2 * len(bad) > nonblank:
        first = min(bad)
        raise UnreadableFile(
            f"{path.name}: {len(bad)} of {nonblank} lines unreadable, e.g. line {first}: {bad[first]}; "
            f"not a {encoding} text export (the channel's export encoding may have changed)"
        )
    return lines, bad


def _columns(fmt: FileFormat, header: list[str], path: Path) -> tuple[dict[str, int], list[str], list[str]]:
    """Position of every format column in the header, and the missing and extra columns."""
    wanted = [x.source for x in fmt.fields]
    counts = Counter(header)
    if fmt.id_field.source not in counts:
        hint = "; is the delimiter not a comma?" if len(header) == 1 and any(d in header[0] for d in ";\t|") else ""
        raise UnreadableFile(
            f"{path.name}: header has no record id column {fmt.id_field.source!r} "
            f"(found {len(header)} columns: {_describe_header(header)}{hint})"
        )
    repeated = [c for c in wanted if counts[c] > 1]
    if repeated:
        raise UnreadableFile(f"{path.name}: header repeats column(s) {repeated}: cannot tell which one holds the data")
    positions = {c: header.index(c) for c in wanted if c in counts}
    missing = [c for c in wanted if c not in counts]
    extra = list(dict.fromkeys(c for c in header if c not in positions))
    return positions, missing, extra


def _screen(frame: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Set aside rows with a NUL character or an overlong value: ``(kept rows, [(line, reason)])``."""
    if not frame.height or not columns:
        return frame, []
    checks = []
    for c in columns:
        value = pl.col(c)
        checks.append(pl.when(value.str.contains("\x00", literal=True)).then(pl.lit(f"NUL character in {c!r}")))
        checks.append(pl.when(value.str.len_chars() > MAX_FIELD_CHARS)
                      .then(pl.lit(f"{c!r} is longer than {MAX_FIELD_CHARS} characters")))
    reason = frame.select(pl.coalesce(checks).alias("reason"))["reason"]
    bad = reason.is_not_null()
    if not bad.any():
        return frame, []
    dropped = list(zip(frame["_line"].filter(bad).to_list(), reason.filter(bad).to_list(), strict=True))
    return frame.filter(~bad), dropped


def _finish(frame: pl.DataFrame, fmt: FileFormat, missing: list[str]) -> pl.DataFrame:
    for col in missing:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    keep = [x.source for x in fmt.fields] + ["_line"]
    return frame.select(keep)


def _frame(columns: dict[str, list], lines: list[int]) -> pl.DataFrame:
    return pl.DataFrame(columns, schema={c: pl.String for c in columns}).with_columns(
        pl.Series("_line", lines, dtype=pl.Int64))


def read_csv(path: Path, fmt: FileFormat) -> ReadResult:
    data = path.read_bytes()
    lines, bad = _decode(path, data, fmt.encoding)
    head = next(i for i, ln in enumerate(lines) if ln.strip())  # _decode guarantees one
    if head + 1 in bad:
        raise UnreadableFile(f"{path.name}: header line {head + 1}: {bad[head + 1]} "
                             f"(the channel's export encoding may have changed)")
    try:
        header = [h.strip() for h in next(csv.reader([lines[head].removeprefix("\ufeff")], strict=True))]
    except csv.Error as exc:
        raise UnreadableFile(f"{path.name}: header line {head + 1} is not valid CSV ({exc})") from exc
    positions, missing, extra = _columns(fmt, header, path)
    body = range(head + 1, len(lines))
    # a quote byte is never part of a multi-byte character, so a file without one has no quoted field
    if b'"' in data and any('"' in lines[i] for i in body if i + 1 not in bad):
        frame, rejected, delivered = _read_csv_quoted(lines, head + 1, bad, len(header), positions)
    else:
        frame, rejected, delivered = _read_csv_plain(lines, head + 1, bad, len(header), positions)
    frame, dropped = _screen(frame, list(positions))
    rejected += [Rejected(n, reason, redact(lines[n - 1])) for n, reason in dropped]
    rejected.sort(key=lambda r: r.line)
    return ReadResult(_finish(frame, fmt, missing), rejected, delivered, missing, extra)


def _read_csv_plain(lines: list[str], first: int, bad: dict[int, str], width: int,
                    positions: dict[str, int]) -> tuple[pl.DataFrame, list[Rejected], int]:
    """No quotes anywhere: a row is a line, fields split on commas (Polars, column-at-a-time)."""
    body = pl.DataFrame({"raw": lines[first:]}, schema={"raw": pl.String}).with_row_index("_line", offset=first + 1)
    body = body.filter(pl.col("raw").str.strip_chars() != "")
    flagged = pl.col("_line").is_in(list(bad))
    undecodable = body.filter(flagged)
    body = body.filter(~flagged).with_columns((pl.col("raw").str.count_matches(",", literal=True) + 1).alias("_n"))
    ragged = body.filter(pl.col("_n") != width)
    good = body.filter(pl.col("_n") == width)
    rejected = [Rejected(n, bad[n], redact(raw)) for n, raw in undecodable.select("_line", "raw").iter_rows()]
    rejected += [Rejected(n, f"expected {width} fields, found {k}", redact(raw))
                 for n, raw, k in ragged.select("_line", "raw", "_n").iter_rows()]
    # split_exact gives a struct of fixed fields: 0.8 s for 3.1M store receipts, where
    # split + list.get took 3.6 s (a list allocated per row, indexed once per column)
    fields = good.select(pl.col("raw").str.split_exact(",", width - 1).alias("f"), "_line").unnest("f")
    frame = fields.select(
        *[pl.when(pl.col(f"field_{pos}") != "").then(pl.col(f"field_{pos}")).alias(col)
          for col, pos in positions.items()],
        pl.col("_line").cast(pl.Int64),
    )
    return frame, rejected, body.height + undecodable.height


def _csv_rows(lines: list[str], first: int, bad: dict[int, str],
              width: int) -> Iterator[tuple[int, list[str] | None, str, int]]:
    """``(line number, fields, "", next)`` for every row, ``(line number, None, reason, next)`` for every rejected row.

    ``next`` is the index of the line where reading goes on after that row. Unusable lines
    are rejected alone and cut the file into stretches that ``csv`` parses separately. A row
    spanning several lines must have ``width`` fields; otherwise (a quote left open) only
    its first line is rejected and parsing resumes on the next line.
    """
    barriers = sorted(n - 1 for n in bad if n - 1 >= first)
    i = first
    while i < len(lines):
        if i + 1 in bad:
            yield i + 1, None, bad[i + 1], i + 1
            i += 1
            continue
        k = bisect.bisect_left(barriers, i)
        end = barriers[k] if k < len(barriers) else len(lines)
        reader = csv.reader((lines[j] + "\n" for j in range(i, end)), strict=True)
        resume = end
        while True:
            start = i + reader.line_num
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield start + 1, None, f"unreadable CSV row: {exc}", start + 1
                resume = start + 1
                break
            span = i + reader.line_num - start
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) == width:
                yield start + 1, row, "", start + span
            elif span > 1:
                yield start + 1, None, f"quote left open: a row of {len(row)} fields (expected {width}) " \
                                       f"spans lines {start + 1}-{start + span}", start + 1
                resume = start + 1
                break
            else:
                yield start + 1, None, f"expected {width} fields, found {len(row)}", start + span
        i = resume


# One CSV field as the csv module reads it without surprises: quoted (quotes doubled inside)
# or plain without any quote. A line of such fields is one row, exactly as csv would read it.
_QUOTED_FIELD = r'"(?:[^"]|"")*"'
_SIMPLE_LINE = rf'^(?:{_QUOTED_FIELD}|[^",]*)(?:,(?:{_QUOTED_FIELD}|[^",]*))*$'
# Python's str.strip() also strips \x1c-\x1f, which are not Unicode white space.
_BLANKISH_LINE = r'^[\s\x1c-\x1f,"]*$'


def _screen_lines(lines: list[str], first: int, bad: dict[int, str], width: int) -> pl.DataFrame:
    """Every body line (``i``: its index) and whether it is *simple*: one whole row of ``width`` fields.

    Vectorised and quote-aware: a simple line is made of quoted and quote-free fields
    only, has ``width`` fields outside quotes, is not blank-looking (``csv`` skips rows of
    blank fields), does not start with U+FEFF, decodes, and is too short to hold a field over the ``csv`` size limit.
    Anything else (a row spanning lines, a stray quote, a ragged row) is left to ``csv``.
    """
    raw = pl.col("raw")
    fields = raw.str.replace_all(_QUOTED_FIELD, "").str.count_matches(",", literal=True) + 1
    simple = (raw.str.contains(_SIMPLE_LINE) & ~raw.str.contains(_BLANKISH_LINE)
              & ~raw.str.starts_with("\ufeff")  # Polars would drop it as a byte-order mark, csv keeps it
              & (raw.str.len_chars() <= MAX_FIELD_CHARS) & (fields == width)
              & ~pl.col("i").is_in([n - 1 for n in bad]))
    return (pl.DataFrame({"raw": lines[first:]}, schema={"raw": pl.String})
            .with_row_index("i", offset=first).with_columns(simple.alias("simple")))


def _csv_fallback(lines: list[str], suspects: list[int], bad: dict[int, str],
                  width: int) -> tuple[list[tuple[int, list[str] | None, str]], list[int]]:
    """Rows read by ``csv`` from each line the screen did not pass, and every line index ``csv`` read.

    ``csv`` starts at a suspect line and goes on until a row ends right before a simple
    line, where a fresh row starts, so Polars can take over from there.
    """
    suspect = set(suspects)
    rows: list[tuple[int, list[str] | None, str]] = []
    covered: list[int] = []
    done = -1
    for s in suspects:
        if s < done:
            continue
        pos = len(lines)
        for n, row, reason, nxt in _csv_rows(lines, s, bad, width):
            rows.append((n, row, reason))
            if nxt >= len(lines) or nxt not in suspect:
                pos = nxt
                break
        covered.extend(range(s, pos))
        done = pos
    return rows, covered


def _parse_simple(raw: pl.Series, width: int, positions: dict[str, int]) -> pl.DataFrame | None:
    """Simple lines parsed by Polars' quoted-CSV reader; empty fields stay ``""`` as ``csv`` gives them.

    None if Polars does not find one row per line (then the caller reads with ``csv``).
    """
    if raw.len() == 0:
        return pl.DataFrame(schema={col: pl.String for col in positions})
    data = raw.str.join("\n").cast(pl.Binary).item()  # joined in Polars: 0.6 s for Tmall's 1.7M lines, 2.2 s in Python
    try:
        frame = pl.read_csv(io.BytesIO(data), has_header=False, schema={f"f{k}": pl.String for k in range(width)},
                            quote_char='"', empty_string_is_null=False)
    except pl.exceptions.PolarsError:
        return None
    if frame.height != raw.len():
        return None
    return frame.select([pl.col(f"f{pos}").alias(col) for col, pos in positions.items()])


def _read_csv_quoted(lines: list[str], first: int, bad: dict[int, str], width: int,
                     positions: dict[str, int]) -> tuple[pl.DataFrame, list[Rejected], int]:
    """A file with quotes, read exactly as the ``csv`` module reads it.

    Lines that pass a vectorised screen (:func:`_screen_lines`) go through Polars' CSV
    parser at C speed; ``csv`` reads only the rest (rows spanning lines, damage), which is
    what makes it exact. Should Polars disagree on the line count, ``csv`` reads everything.
    """
    screened = _screen_lines(lines, first, bad, width)
    suspects = screened.filter(~pl.col("simple"))["i"].to_list()
    slow, covered = _csv_fallback(lines, suspects, bad, width)
    simple = screened.filter(pl.col("simple") & ~pl.col("i").is_in(covered))
    fast = _parse_simple(simple["raw"], width, positions)
    if fast is None:
        slow, simple = list(_read_all_csv(lines, first, bad, width)), simple.clear()
        fast = pl.DataFrame(schema={col: pl.String for col in positions})
    rows = [(n, row) for n, row, _ in slow if row is not None]
    rejected = [Rejected(n, reason, redact(lines[n - 1])) for n, row, reason in slow if row is None]
    frame = pl.concat([
        fast.with_columns((simple["i"].cast(pl.Int64) + 1).alias("_line")),
        _frame({col: [r[pos] for _, r in rows] for col, pos in positions.items()}, [n for n, _ in rows]),
    ]).sort("_line")
    return frame, rejected, frame.height + len(rejected)


def _read_all_csv(lines: list[str], first: int, bad: dict[int, str],
                  width: int) -> Iterator[tuple[int, list[str] | None, str]]:
    """Every row read by ``csv`` alone: the exact path, used when Polars disagrees on the simple lines."""
    for n, row, reason, _ in _csv_rows(lines, first, bad, width):
        yield n, row, reason


def _parse_json_whole(data: bytes | None, usable: pl.DataFrame, schema: dict) -> pl.DataFrame:
    """The usable lines parsed by Polars in one pass, numbered; raises if any of them is not a JSON object.

    The file's own bytes are parsed when they hold exactly the usable lines: a UTF-8 file
    (what Polars reads) with nothing set aside and no CR ending a line (Polars skips blank
    lines itself). The rows then match the usable lines one for one exactly when their
    numbers agree; otherwise, or on an error, the usable lines are joined and parsed.
    """
    if data is not None:
        try:
            frame = pl.read_ndjson(io.BytesIO(data.removeprefix(codecs.BOM_UTF8)), schema=schema)
            if frame.height == usable.height:
                return frame.with_columns(usable["n"].alias("_line"))
        except Exception:  # noqa: BLE001 - e.g. a line of Unicode spaces: the joined lines decide
            pass
    joined = usable["ln"].str.join("\n").item() if usable.height else ""
    frame = pl.read_ndjson(io.BytesIO(joined.encode()), schema=schema)
    if frame.height != usable.height:
        raise ValueError("row count mismatch")
    return frame.with_columns(usable["n"].alias("_line"))


def _json_keys(usable: pl.DataFrame) -> list[str]:
    """Every key of the file's objects, in order of first appearance (the file's "header").

    DuckDB lists them in one parallel pass, so that Polars can then parse the file with
    the format's fields declared as text instead of inferring every key's type from
    every line (inference was over half of the read). Raises on a line that is not JSON.
    """
    with duckdb.connect() as con:
        con.register("lines", usable)
        return [k for (k,) in con.execute("""
            SELECT key FROM (SELECT n, unnest(keys) AS key, unnest(range(len(keys))) AS pos
                             FROM (SELECT n, json_keys(ln) AS keys FROM lines))
            GROUP BY key ORDER BY min({'n': n, 'pos': pos})""").fetchall()]


def _json_text(value) -> str | None:
    """A JSON value as the text a CSV would have held (objects and lists as JSON)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


def _parse_json_lines(numbered: list[tuple[int, str]]) -> tuple[pl.DataFrame, list[Rejected]]:
    """Line by line with :mod:`json`: exact reasons for the lines that are not JSON objects."""
    records, lines, rejected = [], [], []
    for n, ln in numbered:
        try:
            obj = json.loads(ln)
        except json.JSONDecodeError as exc:
            rejected.append(Rejected(n, f"invalid JSON: {exc.msg} at column {exc.colno}", redact(ln)))
            continue
        if not isinstance(obj, dict):
            rejected.append(Rejected(n, f"JSON line is {_JSON_TYPES.get(type(obj), 'a value')}, not an object",
                                     redact(ln)))
            continue
        record = {str(k): _json_text(v) for k, v in obj.items()}
        try:
            "".join(v for v in record.values() if v is not None).encode("utf-8")
        except UnicodeEncodeError:
            rejected.append(Rejected(n, "JSON string with an invalid \\u escape (lone surrogate)", redact(ln)))
            continue
        records.append(record)
        lines.append(n)
    keys = list(dict.fromkeys(k for r in records for k in r))
    return _frame({k: [r.get(k) for r in records] for k in keys}, lines), rejected


def _not_json_lines(path: Path, usable: list[tuple[int, str]], rejected: list[Rejected]) -> UnreadableFile:
    """Why a file with no JSON object on any line is not JSON Lines, as precisely as can be said."""
    try:
        whole = json.loads("\n".join(ln for _, ln in usable))
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        return UnreadableFile(f"{path.name}: the file is one JSON array, not JSON Lines (one object per line)")
    if isinstance(whole, dict):
        return UnreadableFile(f"{path.name}: the file is one JSON object over several lines, not JSON Lines")
    first = rejected[0] if rejected else None
    detail = f" (line {first.line}: {first.reason})" if first else ""
    return UnreadableFile(f"{path.name}: no line is a JSON object, not a JSON Lines export{detail}")


def read_jsonl(path: Path, fmt: FileFormat) -> ReadResult:
    data = path.read_bytes()
    lines, bad = _decode(path, data, fmt.encoding)
    # the lines as a column: numbering, blank lines and undecodable ones without a Python loop per line
    numbered = (pl.DataFrame({"ln": lines}, schema={"ln": pl.String})
                .with_row_index("n", offset=1).with_columns(pl.col("n").cast(pl.Int64))
                .filter(pl.col("ln").str.strip_chars(_WHITESPACE) != ""))
    flagged = pl.col("n").is_in(list(bad))
    rejected = [Rejected(n, bad[n], redact(ln)) for n, ln in numbered.filter(flagged).iter_rows()]
    usable = numbered.filter(~flagged)
    try:
        header = _json_keys(usable)
        as_is = not bad and b"\r" not in data and _is_utf8(fmt.encoding)
        frame = _parse_json_whole(data if as_is else None, usable,
                                  {x.source: pl.String for x in fmt.fields if x.source in header})
    except Exception:  # noqa: BLE001 - any parse failure: fall back to exact per-line parsing
        pairs = list(usable.iter_rows())
        frame, line_rejects = _parse_json_lines(pairs)
        if pairs and not frame.height:
            raise _not_json_lines(path, pairs, line_rejects) from None
        rejected += line_rejects
        header = [c for c in frame.columns if c != "_line"]
    missing = [x.source for x in fmt.fields if x.source not in header]
    extra = [c for c in header if c not in {x.source for x in fmt.fields}]
    if fmt.id_field.source in missing and frame.height:
        raise UnreadableFile(f"{path.name}: no record has the id field {fmt.id_field.source!r}")
    frame = _finish(frame, fmt, missing)
    frame, dropped = _screen(frame, [x.source for x in fmt.fields if x.source not in missing])
    rejected += [Rejected(n, reason, redact(lines[n - 1])) for n, reason in dropped]
    rejected.sort(key=lambda r: r.line)
    return ReadResult(frame, rejected, numbered.height, missing, extra)


def read_file(path: Path, fmt: FileFormat) -> ReadResult:
    return read_jsonl(path, fmt) if fmt.reader == "jsonl" else read_csv(path, fmt)
