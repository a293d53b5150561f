"""The Great Expectations suites and the DuckDB probes that feed them (assets/quality.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest

from assets import quality
from assets.landing.formats import BY_TYPE, FORMATS
from assets.landing.load import ROW_KEY, ingest_new_files
from tests.conftest import NOW, SAMPLE_LANDING


def _failed(verdict: quality.Verdict) -> set[tuple[str, str]]:
    return {(r["expectation"], r["column"]) for r in verdict.failed}


def _judge(con, fmt, focus=None) -> quality.Verdict:
    rules = quality.staging_suite(fmt, NOW)
    frame, sizes = quality.probe_frame(con, f"staging.{fmt.record_type}",
                                       quality.probe_for(rules, quality.staging_within(fmt)), focus=focus,
                                       key=ROW_KEY)
    return quality.validate(frame, rules, sizes)


def _stage(keyring, formats=FORMATS) -> duckdb.DuckDBPyConnection:
    """The committed sample landing set, loaded into staging by the real ingestion code."""
    con = duckdb.connect()
    for fmt in formats:
        ingest_new_files(con, SAMPLE_LANDING, fmt, keyring, "run-1", NOW)
    return con


@pytest.fixture
def staged(keyring):
    return _stage(keyring, [BY_TYPE["tmall_orders"]])


def test_staging_suites_accept_what_the_privacy_boundary_produces(keyring):
    con = _stage(keyring)
    for fmt in FORMATS:
        verdict = _judge(con, fmt)
        assert verdict.passed, (fmt.record_type, verdict.failed)
        assert len(verdict.rows) >= 3


@pytest.mark.parametrize(("change", "expected"), [
    ("UPDATE staging.tmall_orders_latest SET amount_cny = -0.01 WHERE rowid = 2", ("column_values_to_be_between",
                                                                             "amount_cny")),
    ("UPDATE staging.tmall_orders_latest SET event_at = TIMESTAMPTZ '1970-01-01 00:00:00+00' WHERE rowid = 1",
     ("column_values_to_be_between", "event_at")),
    ("UPDATE staging.tmall_orders_latest SET event_at = TIMESTAMPTZ '2027-06-01 00:00:00+00' WHERE rowid = 1",
     ("column_values_to_be_between", "event_at")),
    ("UPDATE staging.tmall_orders_latest SET phone_token = upper(phone_token) WHERE phone_status = 'ok' AND rowid = "
     "(SELECT min(rowid) FROM staging.tmall_orders_latest WHERE phone_status = 'ok')",
     ("column_values_to_match_regex", "phone_token")),
    ("UPDATE staging.tmall_orders_latest SET phone_token = NULL WHERE rowid = "
     "(SELECT min(rowid) FROM staging.tmall_orders_latest WHERE phone_status = 'ok')",
     ("column_values_to_not_be_null", "phone_token")),
    ("UPDATE staging.tmall_orders_latest SET phone_masked = '13812345678' WHERE phone_masked IS NOT NULL AND rowid = "
     "(SELECT min(rowid) FROM staging.tmall_orders_latest WHERE phone_masked IS NOT NULL)",
     ("column_values_to_match_regex", "phone_masked")),
    ("UPDATE staging.tmall_orders_latest SET order_status = '请联系 13812345678' WHERE rowid = 3",
     ("column_values_to_not_match_regex", "order_status")),
    ("UPDATE staging.tmall_orders_latest SET phone_status = 'guessed' WHERE rowid = 0",
     ("column_values_to_be_in_set", "phone_status")),
])
def test_staging_suite_catches_each_kind_of_bad_row(staged, change, expected):
    fmt = BY_TYPE["tmall_orders"]
    staged.execute(change)
    verdict = _judge(staged, fmt)
    assert _failed(verdict) == {expected}
    # what the check shows carries counts and names, never the offending value
    shown = json.dumps({k: getattr(v, "value", v) for k, v in verdict.metadata().items()}, default=str)
    assert "13812345678" not in shown and expected[1] in shown


def test_a_null_token_is_fine_where_the_phone_is_unusable(staged):
    staged.execute("UPDATE staging.tmall_orders_latest SET phone_token = NULL, phone_masked = NULL, phone_enc = NULL "
                   "WHERE phone_status <> 'ok'")
    assert _judge(staged, BY_TYPE["tmall_orders"]).passed


def test_probe_finds_one_bad_row_in_a_million_exactly():
    """A random sample would miss it; the probe's exact picks (shape, range ends) cannot."""
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE t AS SELECT i AS id, CASE WHEN i % 3 = 0 THEN 'ok' ELSE 'empty' END AS phone_status,
               CASE WHEN i % 3 = 0 THEN sha256(i::VARCHAR) END AS phone_token, (i % 500)::DOUBLE AS amount
        FROM range(1000000) r(i)""")
    con.execute("UPDATE t SET phone_token = 'G' || phone_token[2:] WHERE id = 600000")
    con.execute("UPDATE t SET amount = -1 WHERE id = 777777")
    gxe = quality._gxe()
    rules = quality.suite("probe_test", [
        gxe.ExpectColumnValuesToMatchRegex(column="phone_token", regex=quality.HEX64,
                                           row_condition='phone_status=="ok"', condition_parser="pandas"),
        gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
    ])
    probe = quality.probe_for(rules, within=("phone_status",), sample_rows=500)
    frame, sizes = quality.probe_frame(con, "t", probe)
    assert sizes["table_rows"] == 1_000_000 and len(frame) < 1000
    verdict = quality.validate(frame, rules, sizes)
    assert _failed(verdict) == {("column_values_to_match_regex", "phone_token"),
                                ("column_values_to_be_between", "amount")}
    assert all(r["unexpected"] == 1 for r in verdict.failed)


def test_focus_limits_exact_picks_to_the_rows_of_this_run():
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT i AS id, 'old' AS run_id, i::DOUBLE AS amount FROM range(100000) r(i)")
    con.execute("UPDATE t SET amount = -5 WHERE id = 99")  # an old row the sample does not draw
    con.execute("INSERT INTO t SELECT 100000 + i, 'new', i FROM range(10) r(i)")
    gxe = quality._gxe()
    rules = quality.suite("focus_test", [gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0)])
    probe = quality.probe_for(rules, sample_rows=10)
    frame, sizes = quality.probe_frame(con, "t", probe, focus="run_id = 'new'")
    assert sizes["rows_in_focus"] == 10 and quality.validate(frame, rules).passed
    con.execute("UPDATE t SET amount = -1 WHERE id = 100003")
    frame, _ = quality.probe_frame(con, "t", probe, focus="run_id = 'new'")
    assert not quality.validate(frame, rules).passed


def test_probe_refuses_rules_it_cannot_decide():
    gxe = quality._gxe()
    with pytest.raises(ValueError, match="facts frame"):
        quality.probe_for(quality.suite("x", [gxe.ExpectColumnValuesToBeUnique(column="customer_id")]))


def test_column_name_rule():
    import pandas as pd

    names = ["phone_token", "phone_enc", "phone_masked", "phone_status", "phone_is_mobile", "birth_month",
             "file_name", "email_masked", "name_token", "city", "amount_cny"]
    ok = quality.validate(pd.DataFrame({"column_name": names}), quality.column_names_suite("names_ok"))
    assert ok.passed
    for bad in ("phone", "customer_name", "email_address", "birthday", "receiver_phone_e164"):
        verdict = quality.validate(pd.DataFrame({"column_name": [*names, bad]}), quality.column_names_suite("names"))
        assert not verdict.passed, bad
    with_cipher = pd.DataFrame({"column_name": ["customer_id", "phone_enc"]})
    assert quality.validate(with_cipher, quality.column_names_suite("a")).passed
    assert not quality.validate(with_cipher, quality.column_names_suite("b", forbid_ciphertext=True)).passed


def _identity_verdicts(con, max_records: int = 500) -> dict[str, bool]:
    return {
        "lineage": quality.validate(con.sql(quality.lineage_facts_sql()).df(), quality.lineage_suite()).passed,
        "clusters": quality.validate(con.sql(quality.CLUSTER_FACTS_SQL).df(),
                                     quality.cluster_suite(max_records)).passed,
        "rejected": quality.validate(con.sql(quality.REJECTED_LINK_FACTS_SQL).df(),
                                     quality.rejected_link_suite()).passed,
        "registry": quality.validate(con.sql(quality.REGISTRY_FACTS_SQL).df(), quality.registry_suite()).passed,
    }


def test_identity_suites(graph):
    graph.add("members", "m1", phone="P1", member_card="m1")
    graph.add("miniprogram", "mp1", phone="P1", unionid="U1")
    graph.add("followers", "f1", unionid="U1")
    for i in range(3):  # a store phone on three cards: rejected, links nobody
        graph.add("members", f"s{i}", phone="STORE", member_card=f"s{i}")
    graph.resolve()
    con = graph.con
    assert _identity_verdicts(con) == {"lineage": True, "clusters": True, "rejected": True, "registry": True}
    assert _identity_verdicts(con, max_records=2)["clusters"] is False  # m1 + mp1 + f1 is one customer of 3

    # a link through the rejected store phone, stored as links are: by the identifier's number
    con.execute("""INSERT INTO identity.record_links SELECT 1, t.iid FROM identity.rejected_identifiers
                   JOIN identity.identifier_tokens t USING (kind, value)""")
    assert con.execute("SELECT count(*) FROM identity.links l JOIN identity.rejected_identifiers "
                       "USING (kind, value)").fetchall() == [(1,)]
    assert _identity_verdicts(con)["rejected"] is False

    con.execute("INSERT INTO identity.customer_registry SELECT * FROM identity.customer_registry LIMIT 1")
    assert _identity_verdicts(con)["registry"] is False  # an id issued twice

    con.execute("INSERT INTO identity.record_customer SELECT * FROM identity.record_customer LIMIT 1")
    assert _identity_verdicts(con)["lineage"] is False
    con.execute("DELETE FROM identity.record_customer")
    assert _identity_verdicts(con)["lineage"] is False


def test_profile_suite_on_a_probe():
    import pandas as pd

    rules = quality.profile_suite("C")
    good = pd.DataFrame({"customer_id": ["C000000001", "C000000002"], "value_class": ["A", "C"],
                         "lifecycle_stage": ["loyal", "potential"], "marketing_consent": [True, False],
                         "phone_masked": ["138****5678", None], "phone_token": ["a" * 64, None],
                         "total_spent_cny": [10.0, 0.0]})
    assert quality.validate(good, rules).passed
    for column, value, rule in [("value_class", "D", "column_values_to_be_in_set"),
                                ("lifecycle_stage", "dormant", "column_values_to_be_in_set"),
                                ("marketing_consent", None, "column_values_to_not_be_null"),
                                ("customer_id", "X1", "column_values_to_match_regex")]:
        bad = good.copy()
        bad[column] = bad[column].astype(object)
        bad.loc[1, column] = value
        assert (rule, column) in _failed(quality.validate(bad, rules)), column


def test_timestamp_bounds_follow_the_clock():
    fmt = BY_TYPE["tickets"]
    rules = quality.staging_suite(fmt, datetime(2030, 1, 1, tzinfo=UTC))
    bounds = {e.column: e.max_value for e in rules.expectations
              if e.expectation_type == "expect_column_values_to_be_between"}
    assert bounds["event_at"] == datetime(2030, 1, 2, tzinfo=UTC) and "resolved_at" in bounds


def test_gx_is_preloaded_once_in_the_background_and_usable_after():
    """The staging step starts GX's import early; the checks after it find GX ready and working."""
    import subprocess
    import sys

    code = """
import sys
from assets import quality
assert "great_expectations" not in sys.modules, "importing the quality module must not import GX"
quality.preload_gx()
first = quality._preload
quality.preload_gx()
assert quality._preload is first, "a second call must not start a second import"
first.join(120)
assert "great_expectations" in sys.modules
import pandas as pd
rules = quality.column_names_suite("preload_probe")
assert quality.validate(pd.DataFrame({"column_name": ["phone_token"]}), rules).passed
assert not quality.validate(pd.DataFrame({"column_name": ["phone"]}), rules).passed
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
