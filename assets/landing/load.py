"""Incremental, idempotent loading of landing files into ``staging``.

The file ledger (``staging.file_ledger``) remembers every file by content hash:
a file already loaded is skipped, even when re-delivered under another name. A file
whose name, size and modification time match its ledger row is not even re-read.
Rows of new files are staged with their delivery sequence;
``staging.<record_type>_current`` shows the latest delivery of each record id and
``staging.<record_type>`` every delivery, so a row repeated across files counts once
while its history stays (see :func:`ensure_schema`).
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
from assets.landing.stage import STAGE_PARTS, staging_schema
from pipelines.storage import column_definitions
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


# What ``FileReport.seconds`` holds: reading and staging the file (with staging's parts), wherever it was
# prepared; the writer waiting for it and writing it, of which merging its rows into ``_latest``.
TIMED_PARTS = ("read", "stage", *STAGE_PARTS, "wait", "write", "merge")


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
    seconds: dict[str, float] = field(default_factory=dict)  # by TIMED_PARTS
    prepared_in_worker: bool = False

    @property
    def writer_seconds(self) -> float:
        """What the file cost the writer: waiting for it to be prepared (or preparing it), then writing it."""
        return self.seconds.get("wait", 0.0) + self.seconds.get("write", 0.0)


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


# Identifies a row among all deliveries of every type: the file ledger numbers deliveries across
# types, and a file has fewer than 2**32 lines. Identity numbers its records by it (``Source.row_key``).
ROW_KEY = "delivery_seq * 4294967296 + source_line"


def ensure_schema(con: duckdb.DuckDBPyConnection, fmt: FileFormat | None = None) -> None:
    """The ledger and quarantine tables, and for ``fmt`` its staging tables and views.

    ``staging.<type>_latest`` holds the latest delivery of each record id, which is what
    identity and marts read (through the view ``staging.<type>_current``); the older
    versions a later delivery replaced move to ``staging.<type>_superseded``. The view
    ``staging.<type>`` shows all deliveries. Each row is thus stored once: the common
    first delivery of a record is written once, not once for history and once for now.
    Ciphertext, token and id columns are stored uncompressed (:mod:`pipelines.storage`).
    """
    con.execute(DDL)
    if fmt is None:
        return
    rt = fmt.record_type
    _split_history_table(con, rt)
    cols = column_definitions((c, _duck_type(t)) for c, t in staging_schema(fmt).items())
    for table in (f"{rt}_latest", f"{rt}_superseded"):
        con.execute(f"""CREATE TABLE IF NOT EXISTS staging.{table} (
            {cols}, source_file VARCHAR, batch VARCHAR, batch_date DATE, delivery_seq BIGINT,
            run_id VARCHAR, loaded_at TIMESTAMPTZ)""")
    con.execute(f"""
        CREATE VIEW IF NOT EXISTS staging.{rt} AS
            SELECT * FROM staging.{rt}_latest UNION ALL BY NAME SELECT * FROM staging.{rt}_superseded;
        CREATE OR REPLACE VIEW staging.{rt}_current AS SELECT * FROM staging.{rt}_latest;
    """)


def _table_type(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    rows = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'staging' "
                       "AND table_name = ?", [name]).fetchall()
    return rows[0][0] if rows else None


def _split_history_table(con: duckdb.DuckDBPyConnection, record_type: str) -> None:
    """A warehouse from before the split kept every delivery in the table ``staging.<type>``
    (and, later, a copy of the latest rows in ``_latest``): keep the latest rows, move the
    table to ``_superseded`` and take the latest rows out of it."""
    if _table_type(con, record_type) != "BASE TABLE":
        return
    rt = record_type
    if _table_type(con, f"{rt}_latest") is None:
        con.execute(f"""CREATE TABLE staging.{rt}_latest AS SELECT * FROM staging.{rt} QUALIFY row_number()
                        OVER (PARTITION BY record_id ORDER BY delivery_seq DESC, source_line DESC) = 1""")
    con.execute(f"""
        DROP VIEW IF EXISTS staging.{rt}_current;
        ALTER TABLE staging.{rt} RENAME TO {rt}_superseded;
        DELETE FROM staging.{rt}_superseded s USING staging.{rt}_latest l
            WHERE s.delivery_seq = l.delivery_seq AND s.source_line = l.source_line;
    """)
    log.info("staging.%s: history split into %s_latest and %s_superseded", rt, rt, rt)


def merge_delivery(con: duckdb.DuckDBPyConnection, record_type: str, incoming: pl.DataFrame) -> None:
    """Write one delivery's staged rows: each replaces the current row of its record id.

    A new delivery always has the highest ``delivery_seq``, so its rows replace every
    older row of the same record id (those move to ``_superseded``), and within it the
    highest ``source_line`` wins. The cost follows the delivery, not the table.
    """
    rt = record_type
    newest = pl.col("source_line") == pl.col("source_line").max().over("record_id")
    repeated = incoming.height > incoming["record_id"].n_unique()
    con.register("incoming", incoming.filter(newest) if repeated else incoming)
    con.execute(f"""
        INSERT INTO staging.{rt}_superseded BY NAME
            SELECT * FROM staging.{rt}_latest WHERE record_id IN (SELECT record_id FROM incoming);
        DELETE FROM staging.{rt}_latest WHERE record_id IN (SELECT record_id FROM incoming);
        INSERT INTO staging.{rt}_latest BY NAME SELECT * FROM incoming;
    """)
    con.unregister("incoming")
    if repeated:
        con.register("repeated", incoming.filter(~newest))
        con.execute(f"INSERT INTO staging.{rt}_superseded BY NAME SELECT * FROM repeated")
        con.unregister("repeated")


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


def _hash_if_touched(con: duckdb.DuckDBPyConnection, path: Path, stat: os.stat_result, fmt: FileFormat,
                     hashes: dict[Path, tuple[int, int, str]]) -> bool:
    """Whether a file that fails the quick check only because its modification time moved is one
    the ledger has loaded (copied again, restored from a backup, touched).

    Only a file the ledger holds under the same name and size is hashed here; its hash goes into
    ``hashes`` (with the size and time it was taken at) so that loading the file does not read it
    twice. If the content is the one loaded, the ledger takes the new time: neither this run's
    workers (which prepare every file the quick check does not know) nor a later run's quick check
    read it again; otherwise a restored landing folder would be prepared in full on every run.
    """
    sums = {row[0] for row in con.execute(
        "SELECT sha256 FROM staging.file_ledger WHERE record_type = ? AND file_name = ? AND size_bytes = ? "
        "AND status <> 'failed'", [fmt.record_type, path.name, stat.st_size]).fetchall()}
    if not sums:
        return False
    sha = file_sha256(path)
    hashes[path] = (stat.st_size, stat.st_mtime_ns, sha)
    if sha not in sums:
        return False
    con.execute("UPDATE staging.file_ledger SET mtime_ns = ? WHERE record_type = ? AND file_name = ? AND sha256 = ? "
                "AND status <> 'failed'", [stat.st_mtime_ns, fmt.record_type, path.name, sha])
    return True


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
                now: datetime, prepared: Callable[[], Prepared] | None = None,
                hashed: tuple[int, int, str] | None = None) -> FileReport:
    """Load one landing file (or record why not). Safe to call again: a known file is skipped.

    ``prepared`` gives the file read and staged (by a worker process, see
    :class:`~assets.landing.prepare.Preparer`); without it the file is prepared here.
    It is called only once the ledger says the file is new. ``hashed`` is (size, mtime_ns,
    sha256) of the file if it was hashed already; used only if the file still has that size and time.
    """
    stat = path.stat()  # one stat for the quick check and the ledger row, so both see the same file
    if _unchanged_since_ledger(con, path, stat, fmt):
        return FileReport(path.name, "known")
    same = hashed is not None and hashed[:2] == (stat.st_size, stat.st_mtime_ns)
    sha = hashed[2] if same else file_sha256(path)
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
    merge_start = time.perf_counter()
    merge_delivery(con, fmt.record_type, good)
    merged = time.perf_counter() - merge_start
    if rejected.height:
        con.register("rejected", rejected)
        con.execute(
            "INSERT INTO staging.quarantine SELECT ?, ?, line, reason, raw_redacted, ?, ? FROM rejected ORDER BY line",
            [fmt.record_type, path.name, run_id, now])
        con.unregister("rejected")
    rep = FileReport(path.name, "loaded", read.delivered, good.height, rejected.height,
                     missing_columns=read.missing_columns, extra_columns=read.extra_columns,
                     seconds=read.seconds | {"merge": merged}, prepared_in_worker=read.in_worker)
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
    """Ingest every new file of the given types, oldest name first within a type.

    Each file is one transaction, in which its rows replace the current rows of their
    record ids (:func:`merge_delivery`). Files the ledger's quick check does not already know
    are prepared ahead in worker processes when there is enough to gain
    (:func:`~assets.landing.prepare.worker_count`); the writes stay here, in order.
    """
    files = []
    for fmt in formats:
        ensure_schema(con, fmt)
        files += [(fmt, path) for path in sorted(landing.glob(fmt.glob))]
    stats = {path: path.stat() for _, path in files}
    hashes: dict[Path, tuple[int, int, str]] = {}
    new = {path: stats[path].st_size for fmt, path in files
           if not _unchanged_since_ledger(con, path, stats[path], fmt)
           and not _hash_if_touched(con, path, stats[path], fmt, hashes)}
    reports: dict[str, list[FileReport]] = {fmt.record_type: [] for fmt in formats}
    with Preparer(files, new, keyring, worker_count(sum(new.values())), _database_folder(con)) as preparer:
        asked = time.perf_counter()
        for fmt, path, prepared in preparer:
            waited = time.perf_counter() - asked  # for a worker to finish one of the next files
            rep = _ingest_in_transaction(con, path, fmt, keyring, run_id, now, prepared, hashes.get(path))
            rep.seconds["wait"] += waited
            if rep.status != "known":
                reports[fmt.record_type].append(rep)
            asked = time.perf_counter()
    return reports


def _database_folder(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The folder of the connection's database file (None in memory): where workers spool prepared files."""
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    return Path(path[0][0]).parent if path and path[0][0] else None


def _ingest_in_transaction(con, path, fmt, keyring, run_id, now, prepared, hashed=None) -> FileReport:
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
        rep = ingest_file(con, path, fmt, keyring, run_id, now, timed_prepared, hashed)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    rep.seconds |= {"wait": waited, "write": time.perf_counter() - start - waited}
    return rep
