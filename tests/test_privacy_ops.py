"""Operator commands on a populated warehouse: explain, lookup, reveal, erase, key rotation."""

from __future__ import annotations

import json
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from privacy import keys
from privacy.crypto import decrypt_value
from tests.conftest import run_pipeline, unsplit_staging

runner = CliRunner()
ZHANG = "+8613900139001"  # persona P01 of the sample set


@pytest.fixture
def built(scv_home):
    assert run_pipeline(scv_home).success
    return scv_home


def _zhang_id(home) -> str:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT customer_id FROM identity.record_customer WHERE record_type = 'members' "
                           "AND record_id = 'VIP0010001'").fetchall()[0][0]
    finally:
        con.close()


def test_lookup_and_explain(built):
    cid = _zhang_id(built)
    out = runner.invoke(app, ["lookup", "--phone", "139 0013 9001"])
    assert out.exit_code == 0, out.output
    assert cid in out.output and "139****9001" in out.output
    out = runner.invoke(app, ["explain", cid])
    assert out.exit_code == 0, out.output
    assert "members:VIP0010001" in out.output and "member_card" in out.output
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    linked = set(con.execute("""SELECT record_type, record_id, kind, status FROM identity.customer_explain
                                WHERE customer_id = ? AND status LIKE 'links %'""", [cid]).fetchall())
    # each surviving link says how many records its identifier ties together, counted from the link table
    expected = set(con.execute("""
        SELECT rc.record_type, rc.record_id, t.kind, 'links ' || count(*) OVER (PARTITION BY l.iid) || ' records'
        FROM identity.record_links l JOIN identity.identifier_tokens t USING (iid)
        JOIN identity.records r USING (rk) JOIN identity.record_customer rc USING (record_type, record_id)
        QUALIFY rc.customer_id = ?""", [cid]).fetchall())
    assert linked == expected
    assert any(status != "links 1 records" for *_, status in linked)  # Zhang's phone ties several records


def test_reveal_decrypts_and_audits(built):
    cid = _zhang_id(built)
    out = runner.invoke(app, ["reveal", cid, "--reason", "customer asked for a copy of their data", "--who", "dpo"])
    assert out.exit_code == 0, out.output
    assert ZHANG in out.output and "张伟" in out.output
    lines = (built / "audit" / "reveal_log.jsonl").read_text().splitlines()
    entry = json.loads(lines[-1])
    assert entry["customer_id"] == cid and entry["who"] == "dpo" and "phone" in entry["fields"]
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT who, customer_id FROM privacy.reveal_log").fetchall() == [("dpo", cid)]
    assert runner.invoke(app, ["reveal", cid, "--reason", "  "]).exit_code == 2


def test_erase_removes_everywhere_and_redelivery_stays_out(built):
    cid = _zhang_id(built)
    out = runner.invoke(app, ["erase", "--phone", "+86 139 0013 9001"])
    assert out.exit_code == 0, out.output
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM identity.record_customer WHERE customer_id = ?", [cid]).fetchall() == [
        (0,)]
    for table in ("mart.customer_profile", "mart.golden_attributes", "mart.customer_facts"):
        assert con.execute(f"SELECT count(*) FROM {table} WHERE customer_id = ?", [cid]).fetchall() == [(0,)], table
    assert con.execute("SELECT count(*) FROM staging.members WHERE record_id = 'VIP0010001'").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM privacy.suppression").fetchall()[0][0] >= 3
    assert con.execute("SELECT status FROM identity.customer_registry WHERE customer_id = ?", [cid]).fetchall() == [
        ("erased",)]
    con.close()
    exported = pq.read_table(built / "exports" / "customer_profile").column("customer_id").to_pylist()
    assert cid not in exported

    # the store re-delivers its member file under a new name, with one byte changed so it is a new file
    src = built / "landing" / "store" / "members-2026-11-21.csv"
    shutil.copy(src, src.with_name("members-2026-11-24.csv"))
    with src.with_name("members-2026-11-24.csv").open("ab") as fh:
        fh.write(b"\r\n")
    assert run_pipeline(built).success
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM staging.members WHERE record_id = 'VIP0010001'").fetchall() == [(0,)]
    reasons = con.execute("SELECT reason FROM staging.quarantine WHERE source_file = 'members-2026-11-24.csv'"
                          ).fetchall()
    assert reasons and all("erased" in r[0] for r in reasons)
    assert con.execute("SELECT count(*) FROM identity.record_customer rc JOIN mart.customer_profile p "
                       "USING (customer_id) WHERE rc.record_id = 'VIP0010001'").fetchall() == [(0,)]


def test_erase_reaches_a_warehouse_still_keeping_every_delivery_in_one_table(built):
    """Staging as it was before it kept the latest rows and the replaced ones apart."""
    con = duckdb.connect(str(built / "warehouse.duckdb"))
    unsplit_staging(con, "members")
    assert con.execute("SELECT count(*) FROM staging.members WHERE record_id = 'VIP0010001'").fetchall() == [(2,)]
    con.close()
    out = runner.invoke(app, ["erase", "--phone", "+86 139 0013 9001"])
    assert out.exit_code == 0, out.output
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    for table in ("members", "members_latest"):
        assert con.execute(f"SELECT count(*) FROM staging.{table} WHERE record_id = 'VIP0010001'").fetchall() == [
            (0,)], table


def test_key_rotation_round_trip(built, key_dir):
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    before = con.execute("SELECT record_id, name_enc FROM staging.members_current ORDER BY record_id").fetchall()
    con.close()
    old_ring = keys.load_keyring(key_dir)
    out = runner.invoke(app, ["keys", "rotate"])
    assert out.exit_code == 0, out.output
    assert "retired d1" in out.output
    ring = keys.load_keyring(key_dir)
    assert ring.active_data_key == "d2" and "d1" not in ring.data_keys
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    after = con.execute("SELECT record_id, name_enc FROM staging.members_current ORDER BY record_id").fetchall()
    for (rid, old), (rid2, new) in zip(before, after, strict=True):
        assert rid == rid2
        if old is None:
            continue
        assert new.startswith("d2:")
        assert decrypt_value(new, ring, "name") == decrypt_value(old, old_ring, "name")
    from privacy.rotation import key_usage

    assert set(key_usage(con)) == {"d2"}
    con.close()
    # the next run encrypts new data with the new key and still matches old tokens
    assert run_pipeline(built).success


def test_run_with_another_token_key_is_refused_before_writing(built, tmp_path, monkeypatch):
    snapshot = (built / "warehouse.duckdb").read_bytes()
    other = tmp_path / "other-keys"
    keys.init_keys(other)
    monkeypatch.setenv("SCV_KEY_DIR", str(other))
    result = run_pipeline(built)
    assert not result.success
    assert (built / "warehouse.duckdb").read_bytes() == snapshot
    messages = " ".join(str(e.step_failure_data.error.cause.message) for e in result.all_events
                        if e.is_step_failure and e.step_failure_data.error.cause)
    assert "different token key" in messages


def test_token_rotation_rekeys_everything_keeps_ids_and_erasures(built, key_dir):
    zhang = _zhang_id(built)
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    ids_before = dict(con.execute("SELECT record_type || ':' || record_id, customer_id FROM identity.record_customer "
                                  "WHERE customer_id IS NOT NULL").fetchall())
    tokens_before = set(r[0] for r in con.execute("SELECT phone_token FROM staging.tickets WHERE phone_token "
                                                  "IS NOT NULL").fetchall())
    con.close()
    assert runner.invoke(app, ["erase", "--customer", zhang]).exit_code == 0

    out = runner.invoke(app, ["keys", "rotate", "--tokens"])
    assert out.exit_code == 0, out.output
    ring = keys.load_keyring(key_dir)
    assert ring.token_key_id == "t2" and set(ring.old_token_keys) == {"t1"}
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    tokens_after = set(r[0] for r in con.execute("SELECT phone_token FROM staging.tickets WHERE phone_token "
                                                 "IS NOT NULL").fetchall())
    assert tokens_after and not tokens_after & tokens_before  # every token re-made
    ids_after = dict(con.execute("SELECT record_type || ':' || record_id, customer_id FROM identity.record_customer "
                                 "WHERE customer_id IS NOT NULL").fetchall())
    survivors = {k: v for k, v in ids_before.items() if v != zhang}
    assert {k: ids_after.get(k) for k in survivors} == survivors  # everyone else keeps their id
    # the erased person's rows were re-read from landing and kept out through the retired key
    assert zhang not in ids_after.values()
    assert con.execute("SELECT count(*) FROM staging.members WHERE record_id = 'VIP0010001'").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM privacy.suppression WHERE token_key_id = 't2'").fetchall()[0][0] > 0
    con.close()
    out = runner.invoke(app, ["lookup", "--phone", "13600136002"])  # look-ups use the new key
    assert out.exit_code == 0, out.output
