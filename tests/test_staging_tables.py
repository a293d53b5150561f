"""How staging keeps deliveries: the latest row of each record id, the versions it replaced, each stored once."""

from __future__ import annotations

import duckdb

from assets.landing.formats import BY_TYPE
from assets.landing.load import ingest_new_files
from tests.conftest import NOW, unsplit_staging

TICKETS = "ticket_id,phone,contact_channel,category,topic,severity,created_at,resolved_at,status\n"


def _ticket(ticket_id: str, topic: str) -> str:
    return f"{ticket_id},13900139001,hotline,complaint,{topic},2,2026-11-20 10:00:00,,open\n"


def _landing(tmp_path, files: dict[str, str]):
    folder = tmp_path / "landing" / "service"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(TICKETS + text, encoding="utf-8")
    return tmp_path / "landing"


def _rows(con, table: str) -> list[tuple]:
    return con.execute(f"SELECT record_id, topic, source_file FROM staging.{table} ORDER BY ALL").fetchall()


def test_a_redelivered_record_replaces_its_row_and_the_old_version_is_kept_once(tmp_path, keyring):
    landing = _landing(tmp_path, {
        "tickets-1.csv": _ticket("T1", "first") + _ticket("T2", "first"),
        # T2 again, twice in one file: the later line wins
        "tickets-2.csv": _ticket("T2", "second") + _ticket("T3", "only") + _ticket("T2", "third")})
    con = duckdb.connect()
    reports = ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run-1", NOW)
    assert [r.loaded for r in reports] == [2, 3]
    assert _rows(con, "tickets_current") == [("T1", "first", "tickets-1.csv"), ("T2", "third", "tickets-2.csv"),
                                              ("T3", "only", "tickets-2.csv")]
    assert _rows(con, "tickets_superseded") == [("T2", "first", "tickets-1.csv"), ("T2", "second", "tickets-2.csv")]
    # every delivered row is in the all-deliveries view exactly once
    assert sorted(_rows(con, "tickets")) == sorted(_rows(con, "tickets_current") + _rows(con, "tickets_superseded"))
    assert con.execute("SELECT count(*) FROM staging.tickets").fetchall()[0][0] == sum(r.loaded for r in reports)


def test_a_warehouse_keeping_every_delivery_in_one_table_is_split_without_losing_a_row(tmp_path, keyring):
    """The layout before the split: table ``staging.tickets`` with every delivery, a copy of the
    latest rows in ``_latest`` (or not yet), the ``_current`` view over it."""
    for with_latest in (True, False):
        home = tmp_path / str(with_latest)
        landing = _landing(home, {"tickets-1.csv": _ticket("T1", "first") + _ticket("T2", "first"),
                                  "tickets-2.csv": _ticket("T2", "second")})
        con = duckdb.connect()
        ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run-1", NOW)
        everything = _rows(con, "tickets")
        unsplit_staging(con, "tickets")
        if not with_latest:
            con.execute("DROP VIEW staging.tickets_current; DROP TABLE staging.tickets_latest; CREATE VIEW "
                        "staging.tickets_current AS SELECT * FROM staging.tickets QUALIFY row_number() OVER "
                        "(PARTITION BY record_id ORDER BY delivery_seq DESC, source_line DESC) = 1")
        _landing(home, {"tickets-3.csv": _ticket("T1", "third")})
        ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run-2", NOW)
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables "
                                 "WHERE table_name LIKE 'tickets%'").fetchall())
        assert kinds == {"tickets": "VIEW", "tickets_current": "VIEW", "tickets_latest": "BASE TABLE",
                         "tickets_superseded": "BASE TABLE"}
        assert _rows(con, "tickets") == sorted([*everything, ("T1", "third", "tickets-3.csv")])
        assert _rows(con, "tickets_current") == [("T1", "third", "tickets-3.csv"), ("T2", "second", "tickets-2.csv")]
        assert _rows(con, "tickets_superseded") == [("T1", "first", "tickets-1.csv"), ("T2", "first", "tickets-1.csv")]
