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


def test_wrong_pairs_split_by_whether_the_records_tell_the_people_apart(tmp_path):
    """C1 joins P1 and P2, whose records carry different names (evidence a guard could use);
    C2 joins P3 and P4, who share a phone and nothing else; C3 joins P5 and P6, whose
    openids differ (every WeChat app gives one person another openid: not evidence)."""
    truth = tmp_path / "truth.csv"
    truth.write_text("record_type,record_id,person_id\n"
                     "a,1,P1\na,2,P1\na,3,P2\na,4,P3\na,5,P4\na,6,P5\na,7,P6\n")
    con = duckdb.connect()
    _lineage(con, [("a", "1", "C1"), ("a", "2", "C1"), ("a", "3", "C1"), ("a", "4", "C2"), ("a", "5", "C2"),
                   ("a", "6", "C3"), ("a", "7", "C3")])
    con.execute("CREATE TABLE identity.records AS SELECT r AS rk, 'a' AS record_type, (r - 100)::VARCHAR AS record_id "
                "FROM range(101, 108) t(r)")
    con.execute("CREATE TABLE identity.identifier_tokens (iid BIGINT, kind VARCHAR, value VARCHAR)")
    con.execute("INSERT INTO identity.identifier_tokens VALUES (1, 'phone', 'p'), (2, 'name', 'n1'), "
                "(3, 'name', 'n2'), (4, 'openid', 'o1'), (5, 'openid', 'o2')")
    con.execute("CREATE TABLE identity.record_identifiers (rk BIGINT, iid BIGINT)")
    # every record carries the shared phone; P1's records name n1, P2's n2; P5 and P6 differ by openid only
    con.execute("INSERT INTO identity.record_identifiers SELECT rk, 1 FROM identity.records")
    con.execute("INSERT INTO identity.record_identifiers VALUES (101, 2), (102, 2), (103, 3), (106, 4), (107, 5)")
    acc = evaluate(con, truth, identity="identity")
    assert acc.predicted_pairs == 3 + 1 + 1
    assert (acc.wrong_pairs, acc.wrong_pairs_with_evidence) == (2 + 1 + 1, 2)  # P1-P2 twice, P3-P4, P5-P6
    assert abs(acc.precision_ceiling - 1 / (5 - 2)) < 1e-9  # the one right pair (1-2) of what is left
    assert "precision ceiling" in "\n".join(acc.lines())
    assert evaluate(con, truth).wrong_pairs is None  # without the identity schema: not asked
    con.execute("DROP TABLE identity.identifier_tokens")
    assert evaluate(con, truth, identity="identity").wrong_pairs is None  # an older warehouse: not asked either
