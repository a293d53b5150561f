"""Leak test: after a whole run on generated data, no plaintext personal data is at rest.

Every phone, email and name of the landing files, in their common spellings, is
searched for in every value of every warehouse table, in every parquet export,
in the quarantine, the audit log and in Dagster's own storage (event log, run
storage, compute logs). DuckDB and parquet compress strings, so those are read
back through their own readers; everything else is scanned as raw bytes.
"""

from __future__ import annotations

import csv
import re

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from assets.landing.formats import FORMATS
from assets.landing.readers import read_file
from pipelines.generate import generate_landing
from tests.conftest import run_pipeline


def _spellings(e164: str) -> set[str]:
    national = e164.removeprefix("+86")
    spaced = f"{national[:3]} {national[3:7]} {national[7:]}"
    return {national, e164, spaced, f"{national[:3]}-{national[3:7]}-{national[7:]}"}


def _plaintexts(landing, truth) -> set[str]:
    found: set[str] = set()
    with truth.open() as fh:
        for row in csv.DictReader(fh):
            for key in filter(None, (row["keys"] or "").split("|")):
                kind, _, value = key.partition(":")
                if kind == "phone" and value.startswith("+86"):
                    found |= _spellings(value)
                elif kind == "email":
                    found.add(value)
    for fmt in FORMATS:
        for path in landing.glob(fmt.glob):
            frame = read_file(path, fmt).frame
            for fld in fmt.fields:
                if fld.role in {"name", "address"}:
                    found |= {re.sub(r"\s", "", v) for v in frame[fld.source].drop_nulls().to_list()
                              if len(re.sub(r"\s", "", v)) >= 3}
    return found


@pytest.fixture
def generated_home(tmp_path, monkeypatch, key_dir):
    home = tmp_path / "home"
    generate_landing(people=1500, seed=5, out=home / "landing", truth=tmp_path / "truth.csv")
    monkeypatch.setenv("SCV_HOME", str(home))
    monkeypatch.setenv("SCV_AS_OF", "2026-11-23")
    return home, tmp_path / "truth.csv"


def test_whole_run_leaves_no_plaintext_at_rest(generated_home, tmp_path):
    home, truth = generated_home
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    result = run_pipeline(home, instance)
    assert result.success
    secrets = _plaintexts(home / "landing", truth)
    assert len(secrets) > 2000

    haystack: list[str] = []
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                         "WHERE table_type = 'BASE TABLE'").fetchall()
    assert ("staging", "quarantine") in tables
    for schema, table in tables:
        for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
            haystack.append("\x1f".join(str(v) for v in row))
    con.close()
    for path in (home / "exports").rglob("*.parquet"):
        haystack.extend("\x1f".join(map(str, r.values())) for r in pq.read_table(path).to_pylist())
    scanned = 0
    for root in (home, tmp_path / "dagster"):
        for path in root.rglob("*"):
            if path.is_file() and "landing" not in path.parts and path.suffix not in {".duckdb", ".parquet"}:
                haystack.append(path.read_bytes().decode("utf-8", errors="ignore"))
                scanned += 1
    assert scanned > 0
    blob = "\n".join(haystack)
    leaks = sorted(s for s in secrets if s in blob)
    assert leaks == [], f"{len(leaks)} plaintext values at rest, e.g. {leaks[:3]}"
    instance.dispose()
