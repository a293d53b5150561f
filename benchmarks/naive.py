"""Baseline (a): the same job written the obvious way, to show what the design buys.

What "obvious" means here, as issue 8 names it: pandas reads every file; every
row goes through a Python loop where ``phonenumbers`` parses its phone, HMAC
tokens are computed per identifier and AES-GCM encrypts every personal-data field
of every row (no distinct-value reuse, one core); identities are a Python
union-find over the identifiers; the profile is a pandas ``groupby``; exports are
``to_parquet``. Non-personal columns get ordinary vectorised pandas
(``to_datetime``, ``to_numeric``), as anyone would write them, so the baseline is
naive where issue 8 says, not a strawman everywhere.

It has no guards (placeholders, store phones, cardinality limits) and no
quarantine accounting: its F1 shows what the guards are worth.

``fraction`` < 1 processes a random share of each file's rows after reading the
whole file; per-row stages are then extrapolated linearly to the full set and
labelled as such by the caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import phonenumbers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from assets.landing.formats import FORMATS, FileFormat
from identity.evaluate import Accuracy, evaluate
from privacy.keys import Keyring

PII = {"phone", "email", "name", "address", "birthday"}
ORDER_TYPES = {"tmall_orders", "webshop_orders", "transactions"}


@dataclass
class NaiveResult:
    fraction: float
    rows: int = 0  # landing rows read
    rows_processed: int = 0  # rows that went through the per-row stages
    records: int = 0
    customers: int = 0
    stages: dict[str, float] = field(default_factory=dict)  # measured seconds
    scaled: dict[str, float] = field(default_factory=dict)  # extrapolated to fraction 1
    accuracy: Accuracy | None = None

    @property
    def total_measured(self) -> float:
        return sum(self.stages.values())

    @property
    def total_scaled(self) -> float:
        return sum(self.scaled.values())


def read_landing_file(path: Path, fmt: FileFormat) -> pd.DataFrame:
    """pandas, every column as text; lines that do not parse are skipped."""
    if fmt.reader == "jsonl":
        try:
            frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
        except ValueError:  # a broken line: fall back to line by line
            rows = []
            for line in path.read_text(encoding=fmt.encoding).splitlines():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    rows.append(obj)
            frame = pd.DataFrame(rows)
        frame = frame.astype("string")
        return frame.astype(object).where(frame.notna(), None)
    frame = pd.read_csv(path, dtype=str, encoding=fmt.encoding, keep_default_na=False, on_bad_lines="skip")
    return frame.where(frame != "", None)


def naive_phone(raw: str | None) -> str | None:
    """``phonenumbers`` on one value: parse, validate, format E.164."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class RowCrypto:
    """Per-value HMAC tokens and AES-GCM ciphertext, with no reuse across rows."""

    def __init__(self, keyring: Keyring) -> None:
        self.token_key = keyring.token_key
        self.key_id = keyring.active_data_key
        self.aes = AESGCM(keyring.data_key(self.key_id))

    def token(self, value: str | None, kind: str) -> str | None:
        if value is None:
            return None
        return hmac.new(self.token_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def encrypt(self, value: str | None, column: str) -> str | None:
        if value is None:
            return None
        nonce = os.urandom(12)
        return f"{self.key_id}:" + base64.b64encode(nonce + self.aes.encrypt(nonce, value.encode(),
                                                                           column.encode())).decode()


def standardise_rows(frame: pd.DataFrame, fmt: FileFormat, crypto: RowCrypto) -> pd.DataFrame:
    """The per-row loop: phones, emails, names, tokens and encryption, one row at a time."""
    out_rows = []
    for row in frame.to_dict("records"):
        rid = row.get(fmt.id_field.source)
        out = {"record_id": rid.strip() if isinstance(rid, str) else rid}
        for fld in fmt.fields:
            value = row.get(fld.source)
            value = value.strip() if isinstance(value, str) and value.strip() else None
            if fld.role == "phone":
                e164 = naive_phone(value)
                out["phone_token"] = crypto.token(e164, "phone")
                out["phone_enc"] = crypto.encrypt(e164 or value, "phone")
            elif fld.role == "email":
                email = value.lower() if value and "@" in value else None
                out["email_token"] = crypto.token(email, "email")
                out["email_enc"] = crypto.encrypt(email, "email")
            elif fld.role == "name":
                out["name_token"] = crypto.token(value, "name")
                out["name_enc"] = crypto.encrypt(value, "name")
            elif fld.role in PII:
                out[f"{fld.role}_enc"] = crypto.encrypt(value, fld.role)
            elif fld.role == "token":
                kind = dict(fld.options)["kind"]
                out[fld.out] = crypto.token(value, kind)
            elif fld.role in {"text", "int", "gender", "bool", "place"}:
                out[fld.out or fld.source] = value
        out_rows.append(out)
    staged = pd.DataFrame(out_rows)
    for fld in fmt.fields:  # non-personal typed columns: plain pandas, vectorised
        if fld.source not in frame.columns:
            continue
        if fld.role == "timestamp":
            staged[fld.out] = pd.to_datetime(frame[fld.source].values, errors="coerce", utc=True)
        elif fld.role == "amount":
            cleaned = frame[fld.source].astype("string").str.replace(r"[,¥￥\s]|CNY|RMB|元", "", regex=True)
            staged[fld.out] = pd.to_numeric(cleaned, errors="coerce").values
    return staged.drop_duplicates("record_id", keep="last")


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster(staged: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Python union-find: records sharing any identifier value are one customer."""
    uf = UnionFind()
    first_holder: dict[tuple[str, str], int] = {}
    keys = []
    n = 0
    for fmt in FORMATS:
        frame = staged.get(fmt.record_type)
        if frame is None:
            continue
        columns = [(kind, col) for kind, col in fmt.identifiers if col in frame.columns]
        wanted = list(dict.fromkeys(["record_id", *(c for _, c in columns)]))
        for row in frame[wanted].to_dict("records"):
            for kind, col in columns:
                value = row[col]
                if value is None or value != value:  # None or NaN
                    continue
                holder = first_holder.setdefault((kind, str(value)), n)
                if holder != n:
                    uf.union(holder, n)
            keys.append((fmt.channel, fmt.record_type, row["record_id"]))
            n += 1
    roots = [uf.find(i) for i in range(n)]
    lineage = pd.DataFrame(keys, columns=["channel", "record_type", "record_id"])
    lineage["customer_id"] = ["N" + str(r) for r in roots]
    return lineage


def profile(staged: dict[str, pd.DataFrame], lineage: pd.DataFrame) -> pd.DataFrame:
    """Per customer: records, first and last seen, orders and spend, one phone ciphertext."""
    parts = []
    for record_type, frame in staged.items():
        part = pd.DataFrame({"record_type": record_type, "record_id": frame["record_id"].values})
        part["event_at"] = frame["event_at"].values if "event_at" in frame else pd.NaT
        part["amount_cny"] = frame["amount_cny"].values if record_type in ORDER_TYPES else float("nan")
        part["phone_enc"] = frame["phone_enc"].values if "phone_enc" in frame else None
        parts.append(part)
    records = pd.concat(parts, ignore_index=True).merge(lineage, on=["record_type", "record_id"], how="left")
    return records.groupby("customer_id").agg(
        source_records=("record_id", "size"), first_seen_at=("event_at", "min"), last_seen_at=("event_at", "max"),
        orders_count=("amount_cny", "count"), total_spent_cny=("amount_cny", "sum"),
        phone_enc=("phone_enc", "first"),
    ).reset_index()


def run_naive(landing: Path, keyring: Keyring, out: Path, truth: Path | None = None, fraction: float = 1.0,
              exclude: str | None = None) -> NaiveResult:
    """Run the naive pipeline on ``landing`` (files whose name contains ``exclude`` are left out)."""
    result = NaiveResult(fraction)
    crypto = RowCrypto(keyring)
    out.mkdir(parents=True, exist_ok=True)
    frames: dict[str, list[pd.DataFrame]] = {}
    start = time.perf_counter()
    for fmt in FORMATS:
        for path in sorted(landing.glob(fmt.glob)):
            if exclude and exclude in path.name:
                continue
            frame = read_landing_file(path, fmt)
            result.rows += len(frame)
            if fraction < 1:
                frame = frame.sample(frac=fraction, random_state=7)
            frames.setdefault(fmt.record_type, []).append(frame)
    result.stages["read (pandas)"] = time.perf_counter() - start

    start = time.perf_counter()
    staged = {}
    for fmt in FORMATS:
        if fmt.record_type in frames:
            raw = pd.concat(frames[fmt.record_type], ignore_index=True)
            result.rows_processed += len(raw)
            staged[fmt.record_type] = standardise_rows(raw, fmt, crypto)
    result.stages["per-row standardise+tokenise+encrypt"] = time.perf_counter() - start

    start = time.perf_counter()
    con = duckdb.connect(str(out / "naive.duckdb"))
    for record_type, frame in staged.items():
        con.register("frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE staging_{record_type} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()
    result.stages["write staging (DuckDB)"] = time.perf_counter() - start

    start = time.perf_counter()
    lineage = cluster(staged)
    result.stages["identity (Python union-find)"] = time.perf_counter() - start
    result.records = len(lineage)

    start = time.perf_counter()
    prof = profile(staged, lineage)
    result.stages["profile (pandas groupby)"] = time.perf_counter() - start
    result.customers = len(prof)

    start = time.perf_counter()
    prof.to_parquet(out / "customer_profile.parquet", compression="zstd")
    lineage.to_parquet(out / "record_customer.parquet", compression="zstd")
    result.stages["export (to_parquet)"] = time.perf_counter() - start

    result.scaled = {k: (v if k.startswith("read") else v / fraction) for k, v in result.stages.items()}
    if truth is not None and fraction >= 1:
        eval_con = duckdb.connect()
        eval_con.register("naive_lineage", lineage)
        result.accuracy = evaluate(eval_con, truth, "naive_lineage")
        eval_con.close()
    return result
