"""A deterministic corpus of malformed landing files, and what the pipeline owes each of them.

:func:`write_corpus` writes a few hundred small files of all eleven landing types
into a landing folder. Each starts as valid rows in the channel's format (the
encodings, headers and value shapes of the committed sample) carrying personal
data invented here, then gets one kind of damage a real delivery shows:
truncation mid-row and mid-character, the wrong encoding, mixed encodings, NUL
bytes, 1 MB fields, header-only files, repeated or missing headers, CRLF/LF/CR
mixes, quotes left open, ragged rows, bad JSON lines, JSON arrays, empty files
and binary junk.

Every file comes with its expected outcome (:class:`CorpusFile`): ``loaded`` with
the exact rows delivered and quarantined, or ``unreadable``. The expectations
follow the behaviour documented in :mod:`assets.landing.readers`; a damage whose
effect depends on that policy (how much wrong encoding makes a file unreadable)
computes it from the rows it damaged. :attr:`Corpus.plaintexts` holds every phone,
email and name planted, so a test can prove none of them surfaces anywhere.

Run ``python -m tests.malformed OUT`` to write a corpus for a look by hand.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assets.landing.formats import FORMATS, FileFormat

ROWS = 8  # rows per file: enough to damage a minority, small enough for a few hundred files in seconds
BOM_TYPES = {"members", "transactions"}  # the spec's UTF-8-with-BOM exports
PII_ROLES = {"phone", "email", "name"}

SURNAMES = ["欧阳", "司马", "诸葛", "上官", "东方", "慕容", "令狐", "皇甫"]
GIVEN = "瑾瑜璇琰璟珩昶翊骞邈澈湛婳霁"
LATIN_FIRST = ["Zephyrine", "Octavian", "Rosalind", "Leopold", "Isadora", "Thaddeus", "Ottilie", "Barnaby"]
LATIN_LAST = ["Quaglia", "Vantongeren", "Okonkwo", "Brzezinski", "Castellanos", "Featherstone"]
MOBILE_PREFIXES = ["139", "158", "186", "137", "188", "152"]


@dataclass
class CorpusFile:
    """One corpus file and what the pipeline must make of it."""

    path: Path  # relative to the landing folder
    record_type: str
    kind: str
    expect: str  # "loaded" | "unreadable"
    delivered: int | None = None  # exact rows delivered, for loaded files
    quarantined: int | None = None  # exact rows quarantined, for loaded files


@dataclass
class Corpus:
    files: list[CorpusFile] = field(default_factory=list)
    plaintexts: set[str] = field(default_factory=set)  # every phone, email and name planted, as written


@dataclass
class Person:
    phone: str  # as typed into the export
    phone_digits: str
    name: str
    latin_name: str
    email: str


class Planter:
    """Invents people and remembers every personal value it hands out."""

    def __init__(self, rng: random.Random, plaintexts: set[str]):
        self.rng = rng
        self.plaintexts = plaintexts

    def person(self) -> Person:
        r = self.rng
        digits = r.choice(MOBILE_PREFIXES) + f"{r.randrange(10**8):08d}"
        shown = r.choice([digits, f"{digits[:3]} {digits[3:7]} {digits[7:]}", f"+86 {digits[:3]}-{digits[3:7]}-"
                          f"{digits[7:]}", f"0086{digits}"])
        name = r.choice(SURNAMES) + "".join(r.sample(GIVEN, 2))
        first, last = r.choice(LATIN_FIRST), r.choice(LATIN_LAST)
        email = f"{first.lower()}.{last.lower()}{r.randrange(1000)}@corpus-mail.cn"
        self.plaintexts.update({digits, shown, name, f"{first} {last}", email})
        return Person(shown, digits, name, f"{first} {last}", email)


# ----------------------------------------------------------------------------------------------- valid rows

def _value(fmt: FileFormat, source: str, role: str, i: int, uid: str, p: Person, r: random.Random):
    """A valid value for one field, shaped like the sample's (JSONL fields keep their JSON types)."""
    t = fmt.record_type
    if role == "id":
        return f"{uid}R{i:02d}"
    if role == "phone":
        return p.phone
    if role == "email":
        return p.email
    if role == "name":
        return p.latin_name if t == "webshop_orders" and i % 2 else p.name
    if role == "address":
        return f"浙江省 杭州市 西湖区 文三路 {i + 1} 号"
    if role == "birthday":
        return r.choice(["1990-05-01", "1988/3/7", "19920611", ""])
    if role == "amount":
        return r.choice(["1,299.00", "58.00", "399.00", "2,018.50"])
    if role == "token":
        return f"oU9Ke{uid}{i:02d}" if source == "unionid" else f"nick_{uid.lower()}_{i}"
    if role == "place":
        return r.choice(["广东 深圳", "上海 静安", "海外 美国", "其他"])
    if role == "timestamp":
        return {
            "followers": 1763700000 + i, "miniprogram": "2026-11-20T21:03:11+08:00",
            "users": "Tue May 31 17:46:55 +0800 2011", "interactions": "Sat Nov 21 19:58:10 +0800 2026",
            "leads": "2026/11/21 20:15", "webshop_orders": "2026-11-21T01:12:45Z",
        }.get(t, "2026-11-21 10:02:33" if t in {"tmall_orders", "members", "transactions"}
              else "2026-11-21T11:05:00+08:00")
    if role == "bool":
        return {"leads": "是", "members": "Y", "webshop_orders": "true", "followers": 1}.get(t, r.random() < 0.5)
    if role == "gender":
        return {"followers": r.choice([0, 1, 2]), "users": r.choice(["m", "f", "n"])}.get(t, r.choice(["男", "女"]))
    if role == "int":
        return r.randrange(1, 6) if fmt.reader == "csv" else r.randrange(10_000)
    if source == "purePhoneNumber":
        return p.phone_digits
    if source == "tagid_list":
        return [2, 101]
    if role == "drop":
        return r.choice(["小橙子🍊", "跑步的鱼", "老客户", "已下单，坐等快递", "language_zh"])
    texts = {
        "city": "深圳", "province": "广东", "country": "中国", "countryCode": "86", "user_idstr": f"55{i:08d}",
        "type": "comment", "微博UID": f"55{i:08d}", "活动名称": "双11抽奖", "订单状态": "交易成功", "currency": "CNY",
        "status": "paid" if t == "webshop_orders" else "open", "注册门店": "上海南京西路店", "门店编码": "SH001",
        "会员卡号": f"VIP{uid}{i}", "支付方式": "微信支付", "contact_channel": "hotline", "category": "complaint",
        "topic": "delay", "ticket_id": f"TK{uid}{i}",
    }
    return texts.get(source, "x")


@dataclass
class Doc:
    """Valid content of one file, kept as values so damage can be done field by field."""

    fmt: FileFormat
    header: list[str]
    rows: list[dict]
    people: list[Person]

    @property
    def encoding(self) -> str:
        return "gb18030" if self.fmt.encoding == "gb18030" else "utf-8"

    @property
    def other_encoding(self) -> str:
        return "utf-8" if self.encoding == "gb18030" else "gb18030"

    def text(self, row: dict | list) -> str:
        """One row as the channel writes it (no line break)."""
        if self.fmt.reader == "jsonl":
            return json.dumps(row, ensure_ascii=False)
        values = [row.get(h, "") for h in self.header] if isinstance(row, dict) else row
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(values)  # a value holding CR or LF gets quoted
        return buf.getvalue().removesuffix("\r\n")

    def header_text(self) -> str | None:
        return self.text(self.header) if self.fmt.reader == "csv" else None

    def lines(self, encoding: str | None = None) -> list[bytes]:
        return [self.text(r).encode(encoding or self.encoding) for r in self.rows]

    def assemble(self, body: list[bytes], sep: bytes = b"\n", encoding: str | None = None,
                 header: bool = True) -> bytes:
        """Header (with the BOM its channel writes) and body lines, each line ended by ``sep``."""
        enc = encoding or self.encoding
        head = []
        if header and self.fmt.reader == "csv":
            bom = b"\xef\xbb\xbf" if self.fmt.record_type in BOM_TYPES and enc == "utf-8" else b""
            head = [bom + self.header_text().encode(enc)]
        return b"".join(line + sep for line in head + body)

    def non_ascii_rows(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if not self.text(r).isascii()]

    def field_of(self, *roles: str, exclude_required: bool = False) -> str | None:
        for role in roles:
            for x in self.fmt.fields:
                if x.role == role and not (exclude_required and x.required):
                    return x.source
        return None


def _doc(fmt: FileFormat, uid: str, planter: Planter) -> Doc:
    r = planter.rng
    people = [planter.person() for _ in range(ROWS)]
    rows = [{x.source: _value(fmt, x.source, x.role, i, uid, people[i], r) for x in fmt.fields} for i in range(ROWS)]
    return Doc(fmt, [x.source for x in fmt.fields], rows, people)


# ------------------------------------------------------------------------------------------------ damage kinds
# Each takes a Doc and the rng and returns (bytes, expect, delivered, quarantined), or None when it does
# not apply to the type (no non-ASCII text to cut, no required field to break).

Result = tuple[bytes, str, int | None, int | None]
N = ROWS


def loaded(data: bytes, delivered: int, quarantined: int) -> Result:
    return data, "loaded", delivered, quarantined


def unreadable(data: bytes) -> Result:
    return data, "unreadable", None, None


def _swap(line: bytes, marker: bytes, damage: bytes) -> bytes:
    """Put raw ``damage`` where a writer-safe marker stood (the writer would have quoted or escaped it)."""
    assert line.count(marker) == 1, "the marker must survive the writer unchanged"
    return line.replace(marker, damage)


def crlf_mix(d: Doc, r: random.Random) -> Result:
    body = d.lines()
    head = [d.header_text().encode(d.encoding)] if d.header_text() else []
    return loaded(b"".join(line + r.choice([b"\n", b"\r\n", b"\r"]) for line in head + body), N, 0)


def blank_lines(d: Doc, r: random.Random) -> Result:
    body = []
    for line in d.lines():
        body += [line] + [b"", b"   ", b"\t"][: r.randrange(3)]
    return loaded(d.assemble(body, sep=b"\r\n"), N, 0)


def leading_blank_lines(d: Doc, r: random.Random) -> Result:
    return loaded(b"\n\n" + d.assemble(d.lines()), N, 0)


def empty(d: Doc, r: random.Random) -> Result:
    return unreadable(b"")


def whitespace_only(d: Doc, r: random.Random) -> Result:
    return unreadable(b" \n\r\n\t\n")


def binary_junk(d: Doc, r: random.Random) -> Result:
    return unreadable(r.randbytes(r.randrange(2048, 4096)))


def gzipped(d: Doc, r: random.Random) -> Result:
    return unreadable(gzip.compress(d.assemble(d.lines()), mtime=0))


def utf16(d: Doc, r: random.Random) -> Result:
    text = (d.header_text() + "\n" if d.header_text() else "") + "\n".join(d.text(row) for row in d.rows) + "\n"
    return unreadable(text.encode("utf-16"))


def html_error_page(d: Doc, r: random.Random) -> Result:
    return unreadable(b"<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1>"
                      b"<hr>nginx</body></html>\n")


def truncated_row(at: float) -> Callable[[Doc, random.Random], Result]:
    """Cut the file inside row ``at`` (a share of the rows): that row loses its end, the rows after it are gone."""
    def damage(d: Doc, r: random.Random) -> Result:
        k = min(int(at * N), N - 1)
        text = d.text(d.rows[k])
        # CSV: cut before the last separator, so the row really is short; JSON: any proper prefix is invalid.
        end = text.rfind(",") if d.fmt.reader == "csv" else len(text) - 1
        cut = text[: r.randrange(1, end)].encode(d.encoding)
        if k == 0 and d.fmt.reader == "jsonl":  # the only line is no JSON object: nothing says it is JSON Lines
            return unreadable(cut)
        return loaded(d.assemble(d.lines()[:k]) + cut, k + 1, 1)
    return damage


def truncated_mid_character(d: Doc, r: random.Random) -> Result | None:
    """Cut the file after the first byte of a multi-byte character."""
    candidates = d.non_ascii_rows()
    if not candidates:
        return None
    k = candidates[-1]
    text = d.text(d.rows[k])
    j = r.choice([i for i, ch in enumerate(text) if not ch.isascii()])
    cut = text[:j].encode(d.encoding) + text[j].encode(d.encoding)[:1]
    return loaded(d.assemble(d.lines()[:k]) + cut, k + 1, 1)


def wrong_encoding(d: Doc, r: random.Random) -> Result:
    """The whole file in the other encoding: unreadable when that garbles the header or most lines."""
    data = d.assemble(d.lines(d.other_encoding), encoding=d.other_encoding)
    garbled = len(d.non_ascii_rows())
    header_garbled = d.fmt.reader == "csv" and not d.header_text().isascii()
    lines = N + (d.fmt.reader == "csv")
    if header_garbled or 2 * garbled > lines:
        return unreadable(data)
    return loaded(data, N, garbled)


def mixed_encoding(count: int) -> Callable[[Doc, random.Random], Result | None]:
    """``count`` rows re-encoded in the other encoding (a file stitched together from two exports)."""
    def damage(d: Doc, r: random.Random) -> Result | None:
        candidates = d.non_ascii_rows()
        if len(candidates) < count:
            return None
        picked = set(r.sample(candidates, count))
        body = [d.text(row).encode(d.other_encoding if i in picked else d.encoding) for i, row in enumerate(d.rows)]
        return loaded(d.assemble(body), N, count)
    return damage


def nul_in_one_row(d: Doc, r: random.Random) -> Result:
    body = d.lines()
    k = r.randrange(N)
    text = d.text(d.rows[k])
    j = r.randrange(1, len(text))
    body[k] = (text[:j] + "\x00" + text[j:]).encode(d.encoding)
    return loaded(d.assemble(body), N, 1)


def nul_in_most_rows(d: Doc, r: random.Random) -> Result:
    body = [line[:5] + b"\x00" + line[5:] for line in d.lines()]
    return unreadable(d.assemble(body))


def long_field(d: Doc, r: random.Random) -> Result:
    """A 1 MB value (a planted name running on) in one row."""
    k = r.randrange(N)
    col = d.field_of("name", "phone", "drop", "text", exclude_required=True)
    d.rows[k][col] = d.people[k].name + "长" * (1 << 20)
    return loaded(d.assemble(d.lines()), N, 1)


def long_quoted_field(d: Doc, r: random.Random) -> Result:
    """A 200 kB value holding a comma, so quoted: the ``csv`` module's field limit is hit mid-file."""
    k = r.randrange(N - 1)
    col = d.field_of("name", "text", "drop", exclude_required=True)
    d.rows[k][col] = d.people[k].name + ", " + "y" * 200_000
    return loaded(d.assemble(d.lines()), N, 1)


def too_many_fields(d: Doc, r: random.Random) -> Result:
    picked = r.sample(range(N), 2)
    body = [d.text([*row.values(), "surplus"] if i in picked else row).encode(d.encoding)
            for i, row in enumerate(d.rows)]
    return loaded(d.assemble(body), N, 2)


def too_few_fields(d: Doc, r: random.Random) -> Result:
    picked = r.sample(range(N), 3)
    body = [d.text(list(row.values())[:-2] if i in picked else row).encode(d.encoding)
            for i, row in enumerate(d.rows)]
    return loaded(d.assemble(body), N, 3)


def open_quote(at: float) -> Callable[[Doc, random.Random], Result]:
    """A quote opened at the start of a field in row ``at`` and never closed."""
    def damage(d: Doc, r: random.Random) -> Result:
        k = min(int(at * N), N - 1)
        col = d.header[len(d.header) // 2]
        d.rows[k][col] = "@@OPEN@@"
        body = d.lines()
        body[k] = _swap(body[k], b"@@OPEN@@", b'"open')
        return loaded(d.assemble(body), N, 1)
    return damage


def stray_quote(d: Doc, r: random.Random) -> Result:
    """A quote inside an unquoted field is just a character: the file loads whole."""
    k = r.randrange(N)
    col = d.field_of("drop", "text", "name", exclude_required=True)
    d.rows[k][col] = "@@STRAY@@"
    body = d.lines()
    body[k] = _swap(body[k], b"@@STRAY@@", b'ab"cd')
    return loaded(d.assemble(body), N, 0)


def header_only(d: Doc, r: random.Random) -> Result:
    return loaded(d.assemble([]), 0, 0)


def header_only_no_newline(d: Doc, r: random.Random) -> Result:
    return loaded(d.assemble([])[:-1], 0, 0)


def no_header(d: Doc, r: random.Random) -> Result:
    return unreadable(d.assemble(d.lines(), header=False))


def repeated_used_column(d: Doc, r: random.Random) -> Result:
    col = d.header[1]
    d.header = [*d.header, col]
    body = [d.text([*row.values(), row[col]]).encode(d.encoding) for row in d.rows]
    return unreadable(d.assemble(body))


def repeated_extra_column(d: Doc, r: random.Random) -> Result:
    d.header = [*d.header, "备注", "备注"]
    body = [d.text([*row.values(), "", "note"]).encode(d.encoding) for row in d.rows]
    return loaded(d.assemble(body), N, 0)


def semicolons(d: Doc, r: random.Random) -> Result:
    d.header_text = lambda: ";".join(d.header)  # type: ignore[method-assign]
    body = [";".join(str(v) for v in row.values()).encode(d.encoding) for row in d.rows]
    return unreadable(d.assemble(body))


def quoted_newline(d: Doc, r: random.Random) -> Result:
    """A legitimate quoted field spanning two lines: kept."""
    col = d.field_of("address", "text", "drop", exclude_required=True)
    k = r.randrange(N)
    d.rows[k][col] = f"{d.rows[k][col]}\n第二行"
    return loaded(d.assemble(d.lines()), N, 0)


def bad_required(d: Doc, r: random.Random) -> Result | None:
    """A required field that does not parse: the staging rules quarantine the row."""
    required = [x.source for x in d.fmt.fields if x.required and x.role == "timestamp"]
    if not required:
        return None
    picked = r.sample(range(N), 2)
    for k in picked:
        d.rows[k][required[0]] = "2026-13-45 99:99"
    return loaded(d.assemble(d.lines()), N, 2)


def shifted_columns(d: Doc, r: random.Random) -> Result | None:
    """Phone and a required timestamp swapped: the phone sits in a field staging does not redact."""
    phone = d.field_of("phone")
    required = [x.source for x in d.fmt.fields if x.required and x.role == "timestamp"]
    if not phone or not required:
        return None
    picked = r.sample(range(N), 2)
    for k in picked:
        p = d.people[k]
        spaced = f"{p.phone_digits[:3]} {p.phone_digits[3:7]} {p.phone_digits[7:]}"  # never a Unix time
        d.rows[k][phone], d.rows[k][required[0]] = d.rows[k][required[0]], spaced
    return loaded(d.assemble(d.lines()), N, 2)


def missing_id(d: Doc, r: random.Random) -> Result:
    picked = r.sample(range(N), 2)
    for k in picked:
        del d.rows[k][d.fmt.id_field.source]
    return loaded(d.assemble(d.lines()), N, 2)


def bad_json_lines(d: Doc, r: random.Random) -> Result:
    breakers = [lambda s: s[:-1], lambda s: s.replace('"', "'"), lambda s: s[:-1] + ",}",
                lambda s: s.replace('"', "", 2)]
    picked = r.sample(range(N), len(breakers))
    body = d.lines()
    for k, breaker in zip(picked, breakers, strict=True):
        body[k] = breaker(d.text(d.rows[k])).encode()
    return loaded(d.assemble(body), N, len(breakers))


def scalar_lines(d: Doc, r: random.Random) -> Result:
    scalars = [b"null", b"42", b'"just a string"', b"true"]
    body = d.lines()
    for s in scalars:
        body.insert(r.randrange(len(body) + 1), s)
    return loaded(d.assemble(body), N + len(scalars), len(scalars))


def array_line(d: Doc, r: random.Random) -> Result:
    k = r.randrange(N)
    body = d.lines()
    body[k] = json.dumps([d.rows[k]], ensure_ascii=False).encode()
    return loaded(d.assemble(body), N, 1)


def array_file(d: Doc, r: random.Random) -> Result:
    return unreadable(json.dumps(d.rows, ensure_ascii=False, indent=2).encode())


def array_file_one_line(d: Doc, r: random.Random) -> Result:
    return unreadable(json.dumps(d.rows, ensure_ascii=False).encode() + b"\n")


def pretty_objects(d: Doc, r: random.Random) -> Result:
    return unreadable("\n".join(json.dumps(row, ensure_ascii=False, indent=2) for row in d.rows).encode())


def json_escape(escape: str) -> Callable[[Doc, random.Random], Result]:
    """A string value carrying ``escape`` (``\\u0000``, a lone surrogate) as a JSON escape."""
    def damage(d: Doc, r: random.Random) -> Result:
        k = r.randrange(N)
        col = d.field_of("drop", "text", "token", exclude_required=True)
        d.rows[k][col] = "@@ESC@@"
        body = d.lines()
        body[k] = _swap(body[k], b"@@ESC@@", b"ab" + escape.encode() + b"cd")
        return loaded(d.assemble(body), N, 1)
    return damage


def duplicate_key(d: Doc, r: random.Random) -> Result:
    k = r.randrange(N)
    body = d.lines()
    body[k] = body[k][:-1] + b', "' + d.fmt.id_field.source.encode() + b'": "DUPLICATE-KEY"}'
    return loaded(d.assemble(body), N, 0)


COMMON: dict[str, Callable] = {
    "crlf_mix": crlf_mix, "blank_lines": blank_lines, "leading_blank_lines": leading_blank_lines, "empty": empty,
    "whitespace_only": whitespace_only, "binary_junk": binary_junk, "gzipped": gzipped, "utf16": utf16,
    "html_error_page": html_error_page, "truncated_first_row": truncated_row(0), "truncated_mid": truncated_row(0.5),
    "truncated_last_row": truncated_row(1), "truncated_mid_character": truncated_mid_character,
    "wrong_encoding": wrong_encoding, "mixed_encoding_1": mixed_encoding(1), "mixed_encoding_2": mixed_encoding(2),
    "nul_in_one_row": nul_in_one_row, "nul_in_most_rows": nul_in_most_rows, "long_field": long_field,
    "bad_required": bad_required, "shifted_columns": shifted_columns, "missing_id": missing_id,
}
CSV_ONLY: dict[str, Callable] = {
    "long_quoted_field": long_quoted_field, "too_many_fields": too_many_fields, "too_few_fields": too_few_fields,
    "open_quote_first": open_quote(0), "open_quote_mid": open_quote(0.5), "stray_quote": stray_quote,
    "header_only": header_only, "header_only_no_newline": header_only_no_newline, "no_header": no_header,
    "repeated_used_column": repeated_used_column, "repeated_extra_column": repeated_extra_column,
    "semicolons": semicolons, "quoted_newline": quoted_newline,
}
JSONL_ONLY: dict[str, Callable] = {
    "bad_json_lines": bad_json_lines, "scalar_lines": scalar_lines, "array_line": array_line,
    "array_file": array_file, "array_file_one_line": array_file_one_line, "pretty_objects": pretty_objects,
    "nul_escape": json_escape("\\u0000"), "surrogate_escape": json_escape("\\ud800"), "duplicate_key": duplicate_key,
}


def write_corpus(landing: Path, seed: int = 20261121) -> Corpus:
    """Write the corpus under ``landing/<channel>/`` and return every file's expectation and the planted PII.

    Same seed, same bytes. Every file's content differs from every other of its type, so none is
    skipped as a re-delivery.
    """
    rng = random.Random(seed)
    corpus = Corpus()
    planter = Planter(rng, corpus.plaintexts)
    number = 0
    for fmt in FORMATS:
        kinds = COMMON | (CSV_ONLY if fmt.reader == "csv" else JSONL_ONLY)
        prefix, ext = fmt.pattern.split("*")
        for kind, damage in kinds.items():
            number += 1
            uid = f"Q{number:03d}"
            result = damage(_doc(fmt, uid, planter), rng)
            if result is None:
                continue
            data, expect, delivered, quarantined = result
            path = Path(fmt.channel) / f"{prefix}corpus-{number:03d}-{kind.replace('_', '-')}{ext}"
            (landing / path).parent.mkdir(parents=True, exist_ok=True)
            (landing / path).write_bytes(data)
            corpus.files.append(CorpusFile(path, fmt.record_type, kind, expect, delivered, quarantined))
    return corpus


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "malformed-landing")
    made = write_corpus(out)
    print(f"{len(made.files)} files in {out}, {len(made.plaintexts)} planted personal values")
