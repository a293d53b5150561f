"""From raw landing rows to staging rows: typed, standardised, tokenised, encrypted.

This is the privacy boundary. Plaintext personal data exists only inside
:func:`stage_frame`; what it returns carries keyed tokens (for matching),
AES-GCM ciphertext (for authorised reveal) and masked forms (for display), never
the plaintext. Everything is column-at-a-time: Polars for parsing, per-value work
(``phonenumbers``, OpenCC, HMAC, AES-GCM) on distinct values only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl

from assets.landing.formats import Field, FileFormat
from identity import text
from identity.phones import normalize_phones
from privacy.crypto import encrypt_series, token_series
from privacy.keys import Keyring
from privacy.masking import mask_email_expr, mask_phone_expr

PII_ROLES = {"phone", "email", "name", "address", "birthday"}
TZ_LOCAL = "Asia/Shanghai"
UNIX_MIN, UNIX_MAX = 978_307_200, 4_102_444_800  # 2001-01-01 .. 2100-01-01
MAX_AMOUNT_CNY = 100_000_000  # one order of a hundred million yuan is a data error
TRUE_WORDS = ["1", "true", "y", "yes", "是", "t"]
FALSE_WORDS = ["0", "false", "n", "no", "否", "f"]

_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                  "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def _timestamp_strategies(s: pl.Expr) -> list[pl.Expr]:
    """Each way a channel writes a time, as an expression giving UTC or null."""
    iso = s.str.replace(r"Z$", "+00:00").str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T").str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC"
    )
    weibo = s.str.to_datetime("%a %b %d %H:%M:%S %z %Y", strict=False, time_zone="UTC")
    # Unix seconds (10 digits) or milliseconds (13), within 2001-2100 only: an 11-digit
    # phone shifted into a time column must not load as a date it could be read back from.
    digits = pl.when(s.str.contains(r"^(\d{10}|\d{13})$")).then(s.cast(pl.Int64, strict=False))
    unix = pl.when(s.str.len_chars() == 13).then(digits // 1000).otherwise(digits)
    epoch = pl.from_epoch(pl.when(unix.is_between(UNIX_MIN, UNIX_MAX)).then(unix), "s").dt.replace_time_zone("UTC")
    local = [
        s.str.to_datetime(fmt, strict=False, time_unit="us")
        .dt.replace_time_zone(TZ_LOCAL, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
        for fmt in _LOCAL_FORMATS
    ]
    return [e.dt.cast_time_unit("us") for e in (iso, *local, weibo, epoch)]


def _strategy_gates(s: pl.Expr) -> list[pl.Expr | None]:
    """Per strategy (same order), a cheap test every value it can parse passes, or None.

    The ISO and Weibo parses are the dearest and almost never the format a column uses:
    an offset needs a sign (or ``Z``) after the date, a weekday name starts with a letter.
    Every format but Weibo's starts with the year (a sign at most before it), so a Weibo
    column skips the seven numeric parses (the 1.56M Weibo interactions at 10M: 3.1 s -> 2.3 s).
    """
    year_first = s.str.contains("^[0-9+\\-]")
    offset = year_first & s.str.slice(10).str.contains("[+\\-\u2212zZ]")
    return [offset, *[year_first] * len(_LOCAL_FORMATS), s.str.contains("^[A-Za-z]"), None]


def parse_timestamp(expr: pl.Expr) -> pl.Expr:
    """Any timestamp a channel sends, to UTC.

    ISO-8601 with offset or ``Z``; Weibo's ``Tue May 31 17:46:55 +0800 2011``;
    Unix seconds (or milliseconds); local wall-clock times without offset, which
    every Chinese channel means as Asia/Shanghai.
    """
    return pl.coalesce(_timestamp_strategies(text.clean_text(expr)))


def parse_timestamps(raw: pl.Series) -> pl.Series:
    """:func:`parse_timestamp` for a whole column, trying each format only on what is still unparsed.

    A column nearly always uses one format, so this costs about one parse instead of
    nine: the coalesce form evaluates every strategy on every row.
    """
    work = pl.DataFrame({"s": raw.cast(pl.String)}).select(text.clean_text(pl.col("s")).alias("s")).with_row_index()
    remaining = work.filter(pl.col("s").is_not_null())
    found = []
    for strategy, gate in zip(_timestamp_strategies(pl.col("s")), _strategy_gates(pl.col("s")), strict=True):
        if remaining.height == 0:
            break
        skipped = remaining.clear()
        if gate is not None:
            gated = remaining.with_columns(gate.fill_null(False).alias("g"))
            skipped = gated.filter(~pl.col("g")).select("index", "s")
            remaining = gated.filter(pl.col("g")).select("index", "s")
        parsed = remaining.with_columns(strategy.alias("t"))
        found.append(parsed.filter(pl.col("t").is_not_null()).select("index", "t"))
        remaining = pl.concat([parsed.filter(pl.col("t").is_null()).select("index", "s"), skipped])
    hits = pl.concat(found) if found else pl.DataFrame(schema={"index": pl.UInt32, "t": pl.Datetime("us", "UTC")})
    return work.select("index").join(hits, on="index", how="left", maintain_order="left")["t"].alias(raw.name)


def parse_amount(expr: pl.Expr) -> pl.Expr:
    """``1,299.00``, ``¥1299``, `` 1299 `` -> 1299.0; implausible amounts (a phone in the
    amount column) are unparseable rather than a record-breaking order."""
    s = text.clean_text(expr).str.replace_all(r"[,¥￥\s]|CNY|RMB|元", "")
    amount = s.cast(pl.Float64, strict=False).round(2)
    return pl.when(amount.abs() < MAX_AMOUNT_CNY).then(amount)


def parse_bool(expr: pl.Expr) -> pl.Expr:
    s = text.clean_text(expr).str.to_lowercase()
    return pl.when(s.is_in(TRUE_WORDS)).then(True).when(s.is_in(FALSE_WORDS)).then(False).otherwise(None)


def _typed(fld: Field, col: pl.Expr) -> pl.Expr | None:
    role = fld.role
    if role == "text":
        return text.clean_text(col)
    if role == "int":
        return text.clean_text(col).cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    if role == "amount":
        return parse_amount(col)
    if role == "bool":
        return parse_bool(col)
    if role == "gender":
        return text.gender(col)
    return None


def redacted_json(frame: pl.DataFrame, fmt: FileFormat) -> pl.Series:
    """The raw row as JSON with every personal-data field replaced by ``<redacted>``."""
    cols = [
        (pl.when(pl.col(x.source).is_not_null()).then(pl.lit("<redacted>")) if x.role in PII_ROLES
         or x.role in {"drop", "token"} else pl.col(x.source)).alias(x.source)
        for x in fmt.fields
    ]
    return frame.select(pl.struct(cols).struct.json_encode().alias("raw"))["raw"]


_ROLE_COLUMNS: dict[str, list[tuple[str, pl.DataType]]] = {
    "place": [("province", pl.String), ("city", pl.String)],
    "phone": [("phone_status", pl.String), ("phone_is_mobile", pl.Boolean), ("phone_masked", pl.String),
              ("phone_token", pl.String), ("phone_enc", pl.String)],
    "email": [("email_masked", pl.String), ("email_token", pl.String), ("email_enc", pl.String)],
    "name": [("name_token", pl.String), ("name_enc", pl.String)],
    "address": [("province", pl.String), ("city", pl.String), ("address_enc", pl.String)],
    "birthday": [("birth_month", pl.Int8), ("birthday_enc", pl.String)],
}
_ROLE_TYPES = {"text": pl.String, "int": pl.Int64, "amount": pl.Float64, "bool": pl.Boolean,
               "timestamp": pl.Datetime("us", "UTC"), "gender": pl.String, "token": pl.String}


def staging_schema(fmt: FileFormat) -> dict[str, pl.DataType]:
    """The exact columns and types of ``staging.<record_type>``: no plaintext PII column exists."""
    schema: dict[str, pl.DataType] = {"record_id": pl.String, "source_line": pl.Int64}
    for fld in fmt.fields:
        if fld.role in _ROLE_TYPES:
            schema[fld.out] = _ROLE_TYPES[fld.role]
        for name, dtype in _ROLE_COLUMNS.get(fld.role, []):
            schema.setdefault(name, dtype)
    return schema


# Columns whose distinct values are at least this share of the rows are computed row by
# row: deduplicating a near-unique column (ids, timestamps) costs more than it saves.
DISTINCT_SHARE = 0.7


def _field_columns(fld: Field, raw: pl.Series) -> dict[str, pl.Series]:
    """Every staging column one field yields, computed from its raw values.

    Each output depends on that field's raw value alone, so the caller may pass distinct
    values and join the result back. Plaintext columns start with ``_``; ``_present_<out>``
    says the cleaned raw value is not empty (what the rejection rules check).
    """
    values = raw.to_frame(fld.source)
    col = pl.col(fld.source)
    out: dict[str, pl.Series] = {}
    cleaned: pl.Series | None = None  # the cleaned raw value, where a role computes it anyway
    typed = _typed(fld, col)
    if fld.role == "id":
        out["record_id"] = cleaned = values.select(text.clean_text(col)).to_series()
    elif fld.role == "timestamp":  # column-wise: each format tried only on what is still unparsed
        out[fld.out] = parse_timestamps(values[fld.source])
    elif typed is not None:
        out[fld.out] = values.select(typed).to_series()
        if fld.role == "text":  # typed is clean_text itself
            cleaned = out[fld.out]
    elif fld.role in ("place", "address"):
        # cleaned once: the place's parts would each clean it again (NFKC on Chinese text)
        cleaned = values.select(text.clean_text(col).alias(fld.source)).to_series()
        province, city = text.split_place(col, cleaned=True)
        if fld.role == "address":
            out["_address"] = cleaned
        out["province"] = cleaned.to_frame().select(province).to_series()
        out["city"] = cleaned.to_frame().select(city).to_series()
    elif fld.role == "token":
        out[f"_{fld.out}"] = cleaned = values.select(text.clean_text(col)).to_series()
    elif fld.role == "phone":
        phones = normalize_phones(values[fld.source])
        out["_phone"] = phones["phone_e164"]
        out["phone_status"] = phones["phone_status"]
        out["phone_is_mobile"] = phones["phone_is_mobile"]
        out["phone_masked"] = phones.select(mask_phone_expr(pl.col("phone_e164"))).to_series()
    elif fld.role == "email":
        emails = values.select(text.normalize_email(col).alias("e"))
        out["_email"] = emails["e"]
        out["email_masked"] = emails.select(mask_email_expr(pl.col("e"))).to_series()
    elif fld.role == "name":
        out["_name"] = text.normalize_names(values[fld.source])
        # The name token feeds the identity guard "one phone, one person's name". Only
        # Chinese-script names are comparable that way: "Zhang Wei" and 张伟 are one person.
        out["_name_cjk"] = pl.DataFrame({"n": out["_name"]}).select(
            pl.when(pl.col("n").str.contains(text.CJK)).then(pl.col("n"))).to_series()
    elif fld.role == "birthday":
        born = values.select(text.parse_date(col)).to_series()
        out["birth_month"] = born.dt.month().cast(pl.Int8)
        out["_birthday"] = born.dt.to_string("%Y-%m-%d")
    if fld.required:
        if cleaned is None:
            cleaned = values.select(text.clean_text(col)).to_series()
        out[f"_present_{fld.out}"] = cleaned.is_not_null()
    return out


def _by_distinct(frame: pl.DataFrame, fld: Field, keyring: Keyring,
                 seconds: dict[str, float] | None) -> pl.DataFrame:
    """:func:`_field_columns` and :func:`_protected_columns` for every row, computed once per distinct raw value.

    Deliveries repeat values heavily (one buyer's phone and address on each of their
    orders, a few hundred amounts, four order states), so normalising, parsing and
    splitting distinct values and joining back is most of the saving. The tokens and
    ciphertext ride along in the same join: tokenising and encrypting the staged rows
    afterwards took a distinct pass and a join back per column of its own (a third of
    that work at 10M landing rows).
    """
    part = "phones" if fld.role == "phone" else "other fields"

    def columns(values: pl.Series) -> dict[str, pl.Series]:
        with _timed(seconds, part):
            cols = _field_columns(fld, values)
        return cols | _protected_columns(fld, cols, keyring, seconds)

    raw = frame[fld.source]
    with _timed(seconds, part):
        # an id is one per record: finding that out (a hash of every value) would cost a second;
        # HyperLogLog: 30 ms, where listing the distinct values of a near-unique 3M-row column takes 1 s
        distinct = fld.role != "id" and raw.approx_n_unique() < DISTINCT_SHARE * len(raw)
        values = raw.unique() if distinct else raw
    if not distinct:
        return pl.DataFrame(columns(raw))
    lookup = pl.DataFrame({"_raw": values, **columns(values)})
    with _timed(seconds, part):
        joined = raw.to_frame("_raw").join(lookup, on="_raw", how="left", maintain_order="left", nulls_equal=True)
    return joined.drop("_raw")


_TOKENS = {"token": None, "phone": ("_phone", "phone_token", "phone"), "email": ("_email", "email_token", "email"),
           "name": ("_name_cjk", "name_token", "name")}
_ENCRYPT = {"phone": ("_phone", "phone_enc", "phone"), "email": ("_email", "email_enc", "email"),
            "name": ("_name", "name_enc", "name"), "address": ("_address", "address_enc", "address"),
            "birthday": ("_birthday", "birthday_enc", "birthday")}


def _rejections(typed: pl.DataFrame, fmt: FileFormat) -> pl.Series:
    """Per row: why it cannot be loaded, or null."""
    reasons = [
        pl.when(pl.col("record_id").is_null()).then(pl.lit(f"missing record id {fmt.id_field.source!r}"))
    ]
    for fld in fmt.fields:
        if not fld.required:
            continue
        present = pl.col(f"_present_{fld.out}")
        reasons.append(pl.when(~present).then(pl.lit(f"missing required field {fld.source!r}")))
        reasons.append(
            pl.when(present & pl.col(fld.out).is_null()).then(pl.lit(f"cannot parse {fld.source!r} as {fld.role}"))
        )
    return typed.select(pl.coalesce(reasons).alias("reason"))["reason"]


def _protected_columns(fld: Field, cols: dict[str, pl.Series], keyring: Keyring,
                       seconds: dict[str, float] | None) -> dict[str, pl.Series]:
    """The field's HMAC tokens and AES-GCM ciphertext, from its plaintext columns in ``cols``.

    Each distinct plaintext value is encrypted once (:func:`encrypt_series`). Tokens under
    retired token keys ride along (suffix ``__<key id>``) only to recognise people erased
    before a token rotation; load drops them before anything is written.
    """
    out: dict[str, pl.Series] = {}
    if fld.role in _TOKENS:
        src, name, kind = _TOKENS[fld.role] or (f"_{fld.out}", fld.out, dict(fld.options)["kind"])
        keys = {name: keyring.token_key}
        if kind != "name":
            keys |= {f"{name}__{kid}": key for kid, key in keyring.old_token_keys.items()}
        with _timed(seconds, "tokenise"):
            out |= {column: token_series(cols[src], key, kind).alias(column) for column, key in keys.items()}
    if fld.role in _ENCRYPT:
        src, name, aad = _ENCRYPT[fld.role]
        with _timed(seconds, "encrypt"):
            out[name] = encrypt_series(cols[src], keyring, aad).alias(name)
    return out


STAGE_PARTS = ("phones", "other fields", "tokenise", "encrypt")  # what ``stage_frame`` times, in ``seconds``


@contextmanager
def _timed(seconds: dict[str, float] | None, part: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        if seconds is not None:
            seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - start


def stage_frame(frame: pl.DataFrame, fmt: FileFormat, keyring: Keyring,
                seconds: dict[str, float] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return ``(staged rows, rejected rows)``; together they account for every input row.

    ``frame`` is what a reader returned: every source column as text plus ``_line``.
    Rejected rows carry ``_line``, ``reason`` and a redacted ``raw``. ``seconds``, if
    given, gets the wall time of each of :data:`STAGE_PARTS` added to it: measured here,
    so a file staged in a worker process reports them as well as one staged in-process.
    """
    parts = [pl.DataFrame({"source_line": frame["_line"]})]
    parts += [_by_distinct(frame, fld, keyring, seconds) for fld in fmt.fields if fld.role != "drop"]
    typed_frame = pl.concat(parts, how="horizontal")
    reason = _rejections(typed_frame, fmt)
    bad = reason.is_not_null()
    rejected = pl.DataFrame(
        {"_line": frame["_line"].filter(bad), "reason": reason.filter(bad),
         "raw": redacted_json(frame.filter(bad), fmt)}
    )
    good = typed_frame.filter(~bad)
    schema = staging_schema(fmt)
    good = good.select(
        [pl.col(c).cast(t) if c in good.columns else pl.lit(None, t).alias(c) for c, t in schema.items()]
        + [c for c in good.columns if "__" in c]
    )
    return good, rejected
