"""Shared fixtures: isolated SCV_HOME, keys and warehouses per test."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from assets.landing.load import ROW_KEY
from identity.config import IdentityConfig

REPO = Path(__file__).resolve().parent.parent
SAMPLE_LANDING = REPO / "data" / "landing"
SAMPLE_TRUTH = REPO / "data" / "sample-truth.csv"

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture
def key_dir(tmp_path, monkeypatch) -> Path:
    from privacy.keys import init_keys

    folder = tmp_path / "keys"
    monkeypatch.setenv("SCV_KEY_DIR", str(folder))
    monkeypatch.delenv("SCV_MASTER_KEY", raising=False)
    init_keys(folder)
    return folder


@pytest.fixture
def keyring(key_dir):
    from privacy.keys import load_keyring

    return load_keyring(key_dir)


@pytest.fixture
def scv_home(tmp_path, monkeypatch, key_dir) -> Path:
    """A fresh SCV_HOME holding a copy of the committed sample landing set."""
    home = tmp_path / "home"
    shutil.copytree(SAMPLE_LANDING, home / "landing")
    monkeypatch.setenv("SCV_HOME", str(home))
    monkeypatch.setenv("SCV_AS_OF", "2026-11-23")
    return home


def run_pipeline(home: Path, instance=None):
    """Materialise the whole asset graph (the job users run) into ``home``."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.resources import ScvResource

    job = defs.resolve_job_def("scv_refresh")
    result = job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"scv": ScvResource(home=str(home))},
        raise_on_error=False,
    )
    return result


NOW = datetime(2026, 11, 23, tzinfo=UTC)


class Graph:
    """Build tiny staging tables by hand and resolve them: for identity unit tests."""

    KINDS = ("phone", "unionid", "email", "member_card", "weibo_uid", "buyer_nick")
    # every type a test may add: the settings (and so the identity fingerprint) do not change as types appear
    ALL_TYPES = ("followers", "interactions", "leads", "members", "miniprogram", "surveys", "tickets",
                 "tmall_orders", "transactions", "users", "webshop_orders")
    COLUMN = {"phone": "phone_token", "unionid": "unionid_token", "email": "email_token",
              "member_card": "member_card", "weibo_uid": "weibo_uid", "buyer_nick": "buyer_nick_token"}

    def __init__(self):
        self.con = duckdb.connect()
        self.con.execute("CREATE SCHEMA s")
        self.types: set[str] = set()
        self.run = 0
        self.lines = 0

    def add(self, record_type: str, record_id: str, phone_status: str = "ok", name: str | None = None,
            gender: str | None = None, **ids):
        if record_type not in self.types:
            cols = ", ".join(f"{self.COLUMN[k]} VARCHAR" for k in self.KINDS)
            self.con.execute(f"CREATE TABLE s.{record_type} (record_id VARCHAR, phone_status VARCHAR, "
                             f"phone_is_mobile BOOLEAN, name_token VARCHAR, gender VARCHAR, event_at TIMESTAMPTZ, "
                             f"delivery_seq BIGINT, source_line BIGINT, {cols})")
            self.types.add(record_type)
        # the run that first sees a row: a record delivered again carries a new version
        # each row its own line, across types too, so that the row key is unique as staging's is
        self.lines += 1
        values = ([record_id, phone_status, True, name, gender, NOW, self.run + 1, self.lines]
                  + [ids.get(k) for k in self.KINDS])
        self.con.execute(f"INSERT INTO s.{record_type} VALUES ({', '.join('?' * len(values))})", values)
        return self

    def redeliver(self, record_type: str, record_id: str, phone_status: str = "ok", name: str | None = None,
                  gender: str | None = None, **ids):
        """A new delivery of a record: it replaces the old row, as ``staging.<type>_current`` does."""
        self.con.execute(f"DELETE FROM s.{record_type} WHERE record_id = ?", [record_id])
        return self.add(record_type, record_id, phone_status, name, gender, **ids)

    def sources(self) -> list:
        from identity.graph import Source

        return [Source(rt, "test", f"s.{rt}", tuple((k, self.COLUMN[k]) for k in self.KINDS), "event_at",
                       "name_token", "gender", "delivery_seq", row_key=ROW_KEY) for rt in sorted(self.types)]

    def resolve(self, cfg=None, incremental: bool = True):
        from identity.graph import resolve

        self.run += 1
        return resolve(self.con, self.sources(), cfg or self.config(), f"run{self.run}", NOW,
                       incremental=incremental)

    @classmethod
    def config(cls, **settings) -> IdentityConfig:
        """Names and genders from every type; incremental runs whatever share of the graph they touch."""
        return IdentityConfig(**{"name_sources": cls.ALL_TYPES, "gender_sources": cls.ALL_TYPES,
                                 "incremental_max_share": 1.0, **settings})

    def customer(self, record_type: str, record_id: str) -> str | None:
        return self.con.execute("SELECT customer_id FROM identity.record_customer WHERE record_type = ? AND "
                                "record_id = ?", [record_type, record_id]).fetchall()[0][0]

    def groups(self) -> set[frozenset[str]]:
        rows = self.con.execute("""SELECT list(record_type || ':' || record_id) FROM identity.record_customer
                                   WHERE customer_id IS NOT NULL GROUP BY customer_id""").fetchall()
        return {frozenset(r[0]) for r in rows}


@pytest.fixture
def graph() -> Graph:
    return Graph()


def unsplit_staging(con: duckdb.DuckDBPyConnection, record_type: str) -> None:
    """Put one type's staging back as warehouses kept it before the split: every delivery in the
    table ``staging.<type>``, the latest rows copied in ``_latest``, ``_current`` a view of those."""
    rt = record_type
    con.execute(f"""
        DROP VIEW staging.{rt}; DROP VIEW staging.{rt}_current;
        CREATE TABLE staging.{rt} AS SELECT * FROM staging.{rt}_latest UNION ALL SELECT * FROM staging.{rt}_superseded;
        DROP TABLE staging.{rt}_superseded;
        CREATE VIEW staging.{rt}_current AS SELECT * FROM staging.{rt}_latest""")
