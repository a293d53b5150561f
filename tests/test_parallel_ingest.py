"""Files prepared in worker processes load exactly as files prepared by the writer itself."""

from __future__ import annotations

import shutil
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import duckdb
import pytest

from assets.landing import prepare
from assets.landing.formats import BY_TYPE, FORMATS
from assets.landing.load import ingest_types
from assets.landing.stage import STAGE_PARTS
from privacy.crypto import decrypt_value
from tests.conftest import NOW, SAMPLE_LANDING


def _ingest(landing, keyring, workers: int, monkeypatch) -> duckdb.DuckDBPyConnection:
    monkeypatch.setenv("SCV_INGEST_WORKERS", str(workers))
    con = duckdb.connect()
    reports = ingest_types(con, landing, FORMATS, keyring, "run-1", NOW)
    loaded = [r for reps in reports.values() for r in reps if r.status == "loaded"]
    assert len(loaded) == 12 and all(r.prepared_in_worker == (workers > 0) for r in loaded)
    # staging times its parts wherever it ran, so a worker's file reports them too
    for rep in (r for r in reports["members"] if r.status == "loaded"):
        parts = [rep.seconds[part] for part in STAGE_PARTS]
        assert all(p > 0 for p in parts) and sum(parts) <= rep.seconds["stage"], rep.seconds
        assert 0 < rep.seconds["merge"] <= rep.seconds["write"]
    return con


def _rows(con, table: str, keyring) -> list[tuple]:
    """Every row, ciphertext opened (fresh nonces make the ciphertext itself differ) and the delivery
    sequence left out (numbered in write order, which follows the workers across types)."""
    frame = con.sql(f"SELECT * EXCLUDE (delivery_seq) FROM {table}").pl()
    for column in [c for c in frame.columns if c.endswith("_enc")]:
        frame = frame.with_columns(
            frame[column].map_elements(lambda v, c=column: decrypt_value(v, keyring, c.removesuffix("_enc")),
                                       return_dtype=frame[column].dtype))
    return sorted(frame.rows(), key=repr)


@pytest.fixture
def landing(tmp_path):
    folder = tmp_path / "landing"
    shutil.copytree(SAMPLE_LANDING, folder)
    (folder / "service" / "tickets-2026-11-22.csv").write_bytes(b"\x00\xff garbage, not a ticket export\n" * 3)
    shutil.copy(folder / "store" / "members-2026-11-21.csv", folder / "store" / "members-copy.csv")  # re-delivered
    return folder


def test_worker_prepared_ingest_equals_the_in_process_one(landing, keyring, monkeypatch):
    alone = _ingest(landing, keyring, 0, monkeypatch)
    parallel = _ingest(landing, keyring, 2, monkeypatch)
    for fmt in FORMATS:
        for table in (f"staging.{fmt.record_type}", f"staging.{fmt.record_type}_current"):
            assert _rows(parallel, table, keyring) == _rows(alone, table, keyring), table
    ledger = ("SELECT record_type, file_name, status, rows_delivered, rows_loaded, rows_quarantined, message "
              "FROM staging.file_ledger ORDER BY ALL")
    assert parallel.execute(ledger).fetchall() == alone.execute(ledger).fetchall()
    statuses = {r[1]: r[2] for r in parallel.execute(ledger).fetchall()}
    assert statuses["tickets-2026-11-22.csv"] == "unreadable" and statuses["members-copy.csv"] == "duplicate"
    quarantine = "SELECT record_type, source_file, line, reason, raw_redacted FROM staging.quarantine ORDER BY ALL"
    assert parallel.execute(quarantine).fetchall() == alone.execute(quarantine).fetchall()
    # within a type, deliveries are still written in name order: the later one is the current row
    order = parallel.execute("""SELECT file_name FROM staging.file_ledger WHERE record_type = 'members'
                                AND status = 'loaded' ORDER BY delivery_seq""").fetchall()
    assert order == [("members-2026-11-21.csv",), ("members-2026-11-22.csv",)]


def test_workers_hand_rows_over_in_a_spool_beside_the_warehouse_removed_after(landing, keyring, monkeypatch, tmp_path):
    monkeypatch.setenv("SCV_INGEST_WORKERS", "2")
    handed = []
    load_spooled = prepare.Prepared.load_spooled

    def spy(self):
        handed.append((self.spooled, self.spooled.stat().st_size, self.good.height))
        return load_spooled(self)

    monkeypatch.setattr(prepare.Prepared, "load_spooled", spy)
    build = tmp_path / "build"
    build.mkdir()
    con = duckdb.connect(str(build / "warehouse.duckdb"))
    ingest_types(con, landing, FORMATS, keyring, "run-1", NOW)
    assert len(handed) == 12  # every loaded file came from a worker (the duplicate was never asked for)
    assert all(path.parent.parent == build and height == 0 for path, _, height in handed)  # rows came by file
    assert sum(size for _, size, _ in handed) > 0
    assert not list(build.glob("prepared-*"))  # the spool is gone
    assert con.execute("SELECT count(*) FROM staging.members_current").fetchall()[0][0] > 0


def test_a_worker_that_died_costs_its_file_nothing(tmp_path, keyring):
    fmt = BY_TYPE["tickets"]
    path = next(SAMPLE_LANDING.glob(fmt.glob))
    dead = Future()
    dead.set_exception(BrokenProcessPool("a child process terminated abruptly"))
    with prepare.Preparer([(fmt, path)], {}, keyring, 0) as preparer:
        recovered = preparer._result(dead, path, fmt)
    assert recovered.good.height == prepare.prepare_file(path, fmt, keyring).good.height > 0
    assert not recovered.in_worker


def test_workers_start_only_for_deliveries_worth_it(monkeypatch):
    monkeypatch.delenv("SCV_INGEST_WORKERS", raising=False)
    assert prepare.worker_count(prepare.PARALLEL_BYTES - 1) == 0
    monkeypatch.setattr(prepare.os, "cpu_count", lambda: 2)
    assert prepare.worker_count(prepare.PARALLEL_BYTES) == 2
    monkeypatch.setenv("SCV_INGEST_WORKERS", "0")
    assert prepare.worker_count(10 * prepare.PARALLEL_BYTES) == 0
    monkeypatch.setenv("SCV_INGEST_WORKERS", "1")
    assert prepare.worker_count(1) == 1
