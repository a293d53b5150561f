"""Pairwise accuracy against a ground truth: the figures and the side effects."""

import duckdb

from identity.evaluate import evaluate


def _lineage(con, rows):
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    con.execute("CREATE TABLE identity.record_customer (record_type VARCHAR, record_id VARCHAR, customer_id VARCHAR)")
    con.executemany("INSERT INTO identity.record_customer VALUES (?, ?, ?)", rows)


def test_pairwise_figures_and_no_side_effects(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("record_type,record_id,person_id,keys\n"
                     "a,1,P1,phone:1\na,2,P1,phone:1\na,3,P2,phone:2\na,4,P2,phone:2\n")
    con = duckdb.connect()
    # one right pair (1-2), one wrong pair (3 with 1 and 2 -> two false pairs), one missed pair (3-4)
    _lineage(con, [("a", "1", "C1"), ("a", "2", "C1"), ("a", "3", "C1"), ("a", "4", "C2")])
    con.execute("CREATE TABLE identity.links AS SELECT 1 AS rk, 1 AS iid, 'phone' AS kind, 'x' AS value")
    acc = evaluate(con, truth)
    assert (acc.predicted_pairs, acc.true_pairs) == (3, 2)
    assert abs(acc.precision - 1 / 3) < 1e-9 and abs(acc.recall - 1 / 2) < 1e-9
    # a warehouse's own identity tables are left alone
    assert con.execute("SELECT kind, value FROM identity.links").fetchall() == [("phone", "x")]
    assert not con.execute("SELECT * FROM information_schema.tables WHERE table_name = 'components'").fetchall()
