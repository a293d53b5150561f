"""Incremental, idempotent loading of landing files into ``staging``.

The file ledger (``staging.file_ledger``) remembers every file by content hash:
a file already loaded is skipped, even when re-delivered under another name. A file
whose name, size and modification time match its ledger row is not even re-read.
Rows of new files are appended to ``staging.<record_type>`` with their delivery
sequence; ``staging.<record_type>_current`` keeps the latest delivery of each
record id, so a row repeated across files counts once while its history stays.
Rows that cannot be used go to ``staging.quarantine`` with file, line and reason.
For every file: rows delivered = rows loaded + rows quarantined.

Ledger statuses: ``loaded``; ``duplicate`` (same bytes as a file already seen);
``unreadable`` (the reader refused the whole file: recorded once, skipped when
delivered again, because the same bytes stay unreadable); ``failed`` (reading or
staging raised something unforeseen: nothing of the file is kept, the error is
recorded without personal data, and the file is tried again on the next run, so
a fixed bug needs no manual clean-up). Either way the other files go on.

Quarantine is the last gate before the warehouse: every value of a quarantined
row except its record id is reduced to its shape by
:func:`~assets.landing.readers.redact`, whatever upstream already redacted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from assets.landing.formats import FileFormat
from assets.landing.prepare import Prepared, Preparer, prepare_file, worker_count
from assets.landing.readers import UnreadableFile, redact
from assets.landing.stage import staging_schema
from privacy.keys import KeyProblem, Keyring, WrongKey
from privacy.suppression import split_suppressed

log = logging.getLogger(__name__)

DDL = """
CREATE SCHEMA IF NOT EXISTS staging;
CREATE TABLE IF NOT EXISTS staging.file_ledger (
    record_type VARCHAR, file_name VARCHAR, size_bytes BIGINT, sha256 VARCHAR, status VARCHAR,
    rows_delivered BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, delivery_seq BIGINT,
    batch VARCHAR, missing_columns VARCHAR[], extra_columns VARCHAR[], message VARCHAR,
    run_id VARCHAR, ingested_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS staging.quarantine (
    record_type VARCHAR, source_file VARCHAR, line BIGINT, reason VARCHAR, raw_redacted VARCHAR,
    run_id VARCHAR, quarantined_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS staging.meta (key VARCHAR PRIMARY KEY, value VARCHAR);
ALTER TABLE staging.file_ledger ADD COLUMN IF NOT EXISTS mtime_ns BIGINT;
"""


@dataclass
class FileReport:
    file_name: str
    status: str  # loaded | duplicate | unreadable | failed (| known: already in the ledger, not reported)
    delivered: int = 0
    loaded: int = 0
    quarantined: int = 0
    message: str = ""
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # read, stage (where prepared), wait, write
    prepared_in_worker: bool = False


def batch_label(path: Path, fmt: FileFormat) -> str:
    prefix = fmt.pattern.split("*")[0]
    return path.name.removeprefix(prefix).split(".")[0]


def batch_date(label: str) -> date | None:
    m = re.match(r"(\d{4})-?(\d{2})-?(\d{2})", label)
    try:
        return date(int(m[1]), int(m[2]), int(m[3])) if m else None
    except ValueError:
        return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_schema(con: duckdb.DuckDBPyConnection, fmt: FileFormat | None = None) -> None:
    con.execute(DDL)
    if fmt is None:
        return
    cols = ", ".join(f'"{c}" {_duck_type(t)}' for c, t in staging_schema(fmt).items())
    con.execute(f"""
        CREATE TABLE IF NOT EXISTS staging.{fmt.record_type} (
            {cols}, source_file VARCHAR, batch VARCHAR, batch_date DATE, delivery_seq BIGINT,
            run_id VARCHAR, loaded_at TIMESTAMPTZ);
        CREATE VIEW IF NOT EXISTS staging.{fmt.record_type}_current AS {_latest_sql(fmt.record_type)};
    """)


def _latest_sql(record_type: str) -> str:
    return (f"SELECT * FROM staging.{record_type} QUALIFY row_number() OVER "
            f"(PARTITION BY record_id ORDER BY delivery_seq DESC, source_line DESC) = 1")


def materialize_current(con: duckdb.DuckDBPyConnection, record_type: str, delivery_seq: int | None = None) -> None:
    """Keep ``staging.<type>_latest`` holding the latest delivery of each record.

    Identity and marts read ``staging.<type>_current`` many times per run; as a view
    it would re-run the de-duplicating window over all deliveries each time, so it
    is a view over this table. Without ``delivery_seq`` the table is rebuilt from all
    deliveries (first load, or a warehouse from before the table existed). With
    ``delivery_seq`` (a delivery just appended to ``staging.<type>``, read back from
    there in DuckDB's own format) only that delivery is merged, so the cost follows the new file, not the table:
    a new delivery always has the highest ``delivery_seq``, so its rows replace
    every older row of the same record id, and within it the highest
    ``source_line`` wins.
    """
    if delivery_seq is None:
        con.execute(f"""
            CREATE OR REPLACE TABLE staging.{record_type}_latest AS {_latest_sql(record_type)};
            CREATE OR REPLACE VIEW staging.{record_type}_current AS SELECT * FROM staging.{record_type}_latest;
        """)
        return
    con.execute(f"""
        DELETE FROM staging.{record_type}_latest
            WHERE record_id IN (SELECT record_id FROM staging.{record_type} WHERE delivery_seq = {int(delivery_seq)});
        INSERT INTO staging.{record_type}_latest
            SELECT * FROM staging.{record_type} WHERE delivery_seq = {int(delivery_seq)}
            QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY source_line DESC) = 1;
    """)


def _has_latest(con: duckdb.DuckDBPyConnection, record_type: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging' "
                       "AND table_name = ?", [f"{record_type}_latest"]).fetchall()[0][0] > 0


def _duck_type(dtype: pl.DataType) -> str:
    return {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Int8: "TINYINT", pl.Float64: "DOUBLE",
            pl.Boolean: "BOOLEAN"}.get(dtype, "TIMESTAMPTZ")


def check_token_key(con: duckdb.DuckDBPyConnection, keyring: Keyring) -> None:
    """Refuse to mix tokens made with two different token keys in one warehouse."""
    con.execute(DDL)
    rows = con.execute("SELECT value FROM staging.meta WHERE key = 'token_key_fingerprint'").fetchall()
    row = rows[0] if rows else None
    if row is None:
        con.execute("INSERT INTO staging.meta VALUES ('token_key_fingerprint', ?)", [keyring.fingerprint()])
    elif row[0] != keyring.fingerprint():
        raise WrongKey(
            "this warehouse was tokenised with a different token key than the keyring in use: "
            "point SCV_KEY_DIR / SCV_MASTER_KEY at the brand's keys (or rotate tokens with `scv keys rotate`)"
        )


def _next_seq(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT coalesce(max(delivery_seq), 0) + 1 FROM staging.file_ledger").fetchall()[0][0]


def _ledger(con, fmt, path, stat: os.stat_result, sha, rep: FileReport, seq, run_id, now) -> None:
    con.execute(
        "INSERT INTO staging.file_ledger (record_type, file_name, size_bytes, sha256, status, rows_delivered, "
        "rows_loaded, rows_quarantined, delivery_seq, batch, missing_columns, extra_columns, message, run_id, "
        "ingested_at, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [fmt.record_type, path.name, stat.st_size, sha, rep.status, rep.delivered, rep.loaded, rep.quarantined, seq,
         batch_label(path, fmt), rep.missing_columns, rep.extra_columns, rep.message, run_id, now,
         stat.st_mtime_ns],
    )


def _unchanged_since_ledger(con: duckdb.DuckDBPyConnection, path: Path, stat: os.stat_result, fmt: FileFormat) -> bool:
    """The quick check rsync makes: same name, size and modification time as a file already
    in the ledger means the same file, so the nightly run need not re-read gigabytes of landing
    files it has loaded before. A file rewritten in place changes its mtime and is hashed again."""
    return bool(con.execute(
        "SELECT 1 FROM staging.file_ledger WHERE record_type = ? AND file_name = ? AND size_bytes = ? "
        "AND mtime_ns = ? AND status <> 'failed' LIMIT 1",
        [fmt.record_type, path.name, stat.st_size, stat.st_mtime_ns]).fetchall())


def _shape_only(raw_json: str, fmt: FileFormat) -> str:
    """A staged row rejected by the staging rules, as JSON: the record id kept, every other value only its shape.

    Staging already replaces personal-data fields by ``<redacted>``; a row whose columns are
    shifted can still carry a phone or a name in a field of another role, so nothing is trusted.
    """
    try:
        row = json.loads(raw_json)
    except (TypeError, json.JSONDecodeError):
        return redact(str(raw_json))
    shape = {k: v[:200] if k == fmt.id_field.source and isinstance(v, str) else v if v in (None, "<redacted>")
             else redact(str(v), 80) for k, v in row.items()}
    return json.dumps(shape, ensure_ascii=False)


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, fmt: FileFormat, keyring: Keyring, run_id: str,
                now: datetime, prepared: Callable[[], Prepared] | None = None) -> FileReport:
    """Load one landing file (or record why not). Safe to call again: a known file is skipped.

    ``prepared`` gives the file read and staged (by a worker process, see
    :class:`~assets.landing.prepare.Preparer`); without it the file is prepared here.
    It is called only once the ledger says the file is new.
    """
    stat = path.stat()  # one stat for the quick check and the ledger row, so both see the same file
    if _unchanged_since_ledger(con, path, stat, fmt):
        return FileReport(path.name, "known")
    sha = file_sha256(path)
    known = con.execute(
        "SELECT file_name FROM staging.file_ledger WHERE record_type = ? AND sha256 = ? AND status <> 'failed'",
        [fmt.record_type, sha]).fetchall()
    if known:
        if path.name not in {k[0] for k in known}:
            rep = FileReport(path.name, "duplicate", message=f"same content as {known[0][0]}; skipped")
            _ledger(con, fmt, path, stat, sha, rep, None, run_id, now)
            return rep
        return FileReport(path.name, "known")
    seq = _next_seq(con)
    try:
        read = prepared() if prepared else prepare_file(path, fmt, keyring)
        good, bad = read.good, read.bad
    except UnreadableFile as exc:
        rep = FileReport(path.name, "unreadable", message=str(exc))
        con.execute("INSERT INTO staging.quarantine VALUES (?, ?, 0, ?, NULL, ?, ?)",
                    [fmt.record_type, path.name, f"whole file unreadable: {exc}", run_id, now])
        _ledger(con, fmt, path, stat, sha, rep, seq, run_id, now)
        return rep
    except KeyProblem:
        raise  # the keys, not the file: every file would fail alike, so the run must stop
    except Exception as exc:  # noqa: BLE001 - one file's unforeseen content must not stop the others
        # Error texts may quote the data (Polars shows offending values): keep only their shape.
        message = f"{path.name}: could not be read ({type(exc).__name__}: {redact(str(exc), 200)}); retried next run"
        log.error(message)
        rep = FileReport(path.name, "failed", message=message)
        _ledger(con, fmt, path, stat, sha, rep, None, run_id, now)
        return rep
    good, erased = split_suppressed(con, good, fmt.identifiers, keyring)
    label = batch_label(path, fmt)
    good = good.with_columns(
        pl.lit(path.name).alias("source_file"), pl.lit(label).alias("batch"),
        pl.lit(batch_date(label), dtype=pl.Date).alias("batch_date"), pl.lit(seq, dtype=pl.Int64).alias("delivery_seq"),
        pl.lit(run_id).alias("run_id"), pl.lit(now).dt.replace_time_zone("UTC").alias("loaded_at"),
    )
    rejected = pl.concat([
        pl.DataFrame({"line": [r.line for r in read.rejected], "reason": [r.reason for r in read.rejected],
                      "raw_redacted": [r.raw for r in read.rejected]},
                     schema={"line": pl.Int64, "reason": pl.String, "raw_redacted": pl.String}),
        bad.select(pl.col("_line").cast(pl.Int64).alias("line"), "reason").with_columns(
            pl.Series("raw_redacted", [_shape_only(raw, fmt) for raw in bad["raw"]], dtype=pl.String)),
        erased,
    ])
    con.register("incoming", good)
    con.execute(f"INSERT INTO staging.{fmt.record_type} BY NAME SELECT * FROM incoming")
    if _has_latest(con, fmt.record_type):  # in the same transaction: _current never lags the deliveries
        materialize_current(con, fmt.record_type, seq)
    con.unregister("incoming")
    if rejected.height:
        con.register("rejected", rejected)
        con.execute(
            "INSERT INTO staging.quarantine SELECT ?, ?, line, reason, raw_redacted, ?, ? FROM rejected ORDER BY line",
            [fmt.record_type, path.name, run_id, now])
        con.unregister("rejected")
    rep = FileReport(path.name, "loaded", read.delivered, good.height, rejected.height,
                     missing_columns=read.missing_columns, extra_columns=read.extra_columns, seconds=read.seconds,
                     prepared_in_worker=read.in_worker)
    if rep.delivered != rep.loaded + rep.quarantined:  # an accounting bug must never pass silently
        raise AssertionError(f"{path.name}: {rep.delivered} delivered != {rep.loaded} loaded + {rep.quarantined}")
    _ledger(con, fmt, path, stat, sha, rep, seq, run_id, now)
    return rep


def ingest_new_files(con: duckdb.DuckDBPyConnection, landing: Path, fmt: FileFormat, keyring: Keyring,
                     run_id: str, now: datetime) -> list[FileReport]:
    """Ingest every file of one type not yet in the ledger, oldest name first."""
    return ingest_types(con, landing, [fmt], keyring, run_id, now)[fmt.record_type]


def ingest_types(con: duckdb.DuckDBPyConnection, landing: Path, formats: Sequence[FileFormat], keyring: Keyring,
                 run_id: str, now: datetime) -> dict[str, list[FileReport]]:
    """Ingest every new file of the given types, type by type, oldest name first within a type.

    Each file is one transaction. ``staging.<type>_latest`` is built once if missing,
    then each file merges its own rows into it in that transaction (see
    :func:`materialize_current`). Files the ledger's quick check does not already know
    are prepared ahead in worker processes when there is enough to gain
    (:func:`~assets.landing.prepare.worker_count`); the writes stay here, in order.
    """
    files = []
    for fmt in formats:
        ensure_schema(con, fmt)
        if not _has_latest(con, fmt.record_type):
            materialize_current(con, fmt.record_type)
        files += [(fmt, path) for path in sorted(landing.glob(fmt.glob))]
    new = {path for fmt, path in files if not _unchanged_since_ledger(con, path, path.stat(), fmt)}
    reports: dict[str, list[FileReport]] = {fmt.record_type: [] for fmt in formats}
    with Preparer(files, new, keyring, worker_count(sum(path.stat().st_size for path in new))) as preparer:
        asked = time.perf_counter()
        for fmt, path, prepared in preparer:
            waited = time.perf_counter() - asked  # for a worker to finish one of the next files
            rep = _ingest_in_transaction(con, path, fmt, keyring, run_id, now, prepared)
            rep.seconds["wait"] += waited
            if rep.status != "known":
                reports[fmt.record_type].append(rep)
            asked = time.perf_counter()
    return reports


def _ingest_in_transaction(con, path, fmt, keyring, run_id, now, prepared) -> FileReport:
    """:func:`ingest_file` as one transaction, timing the wait for its preparation apart from the write."""
    waited = 0.0

    def timed_prepared() -> Prepared:
        nonlocal waited
        start = time.perf_counter()
        try:
            return prepared()
        finally:
            waited = time.perf_counter() - start

    start = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    try:
        rep = ingest_file(con, path, fmt, keyring, run_id, now, timed_prepared)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    rep.seconds |= {"wait": waited, "write": time.perf_counter() - start - waited}
    return rep
