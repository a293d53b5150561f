"""The whole asset graph on the committed sample landing set, as users run it."""

from __future__ import annotations

import csv
import re
import shutil
from collections import defaultdict
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from assets.landing.formats import FORMATS
from assets.landing.readers import read_file
from identity.graph import RESOLVE_PHASES
from tests.conftest import SAMPLE_LANDING, SAMPLE_TRUTH, run_pipeline


def _first_run(home: Path, dagster_dir: Path) -> dg.DagsterInstance:
    """Run the whole graph on ``home`` with an instance of its own; the run must succeed."""
    dagster_dir.mkdir()
    instance = dg.DagsterInstance.local_temp(str(dagster_dir))
    result = run_pipeline(home, instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return instance


@pytest.fixture
def built(scv_home, tmp_path):
    instance = _first_run(scv_home, tmp_path / "dagster")
    yield scv_home, instance
    instance.dispose()


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """One run of the sample, shared by the tests that only read what it wrote (a run takes ~10 s)."""
    from privacy.keys import init_keys

    root = tmp_path_factory.mktemp("built_once")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCV_KEY_DIR", str(root / "keys"))
        env.delenv("SCV_MASTER_KEY", raising=False)
        init_keys(root / "keys")
        home = root / "home"
        shutil.copytree(SAMPLE_LANDING, home / "landing")
        env.setenv("SCV_HOME", str(home))
        env.setenv("SCV_AS_OF", "2026-11-23")
        instance = _first_run(home, root / "dagster")
        yield home, instance
        instance.dispose()


def _groups(con) -> set[frozenset[str]]:
    rows = con.execute("""SELECT list(record_type || ':' || record_id) FROM identity.record_customer
                          WHERE customer_id IS NOT NULL GROUP BY customer_id""").fetchall()
    return {frozenset(r[0]) for r in rows}


def _expected_groups() -> tuple[set[frozenset[str]], set[str]]:
    """The truth's persons, with the two deliberate, documented exceptions (see data/SAMPLE.md)."""
    persons: dict[str, set[str]] = defaultdict(set)
    with SAMPLE_TRUTH.open() as fh:
        for row in csv.DictReader(fh):
            persons[row["person_id"]].add(f"{row['record_type']}:{row['record_id']}")
    unassigned = persons.pop("ANON") | persons.pop("P21")  # no usable identifier: no customer
    groups = {frozenset(v) for v in persons.values()}
    # The family sharing 18600186016: the shared phone is no key, so each person's WeChat side
    # (unionid) and store side (member card) stay apart rather than risk joining the two people.
    for person in ("P16", "P17"):
        records = persons[person]
        wechat = frozenset(r for r in records if r.split(":")[0] in {"followers", "miniprogram"})
        groups.remove(frozenset(records))
        groups |= {wechat, frozenset(records - wechat)}
    return groups, unassigned


def test_sample_grouping_is_exactly_the_hand_checked_one(built_once):
    home, _ = built_once
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    expected, unassigned = _expected_groups()
    assert _groups(con) == expected
    nulls = {f"{t}:{i}" for t, i in con.execute(
        "SELECT record_type, record_id FROM identity.record_customer WHERE customer_id IS NULL").fetchall()}
    assert nulls == unassigned
    reasons = dict(con.execute("SELECT reason, count(*) FROM identity.rejected_identifiers GROUP BY 1").fetchall())
    assert reasons == {"placeholder or blocklisted number": 1, "shared identifier over cardinality limit": 2}


def test_profile_and_lineage_shapes(built_once):
    home, _ = built_once
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    lineage_cols = [r[0] for r in con.execute("DESCRIBE identity.record_customer").fetchall()]
    assert lineage_cols == ["channel", "record_type", "record_id", "customer_id", "matched_by"]
    n_customers = con.execute("SELECT count(DISTINCT customer_id) FROM identity.record_customer").fetchall()[0][0]
    assert con.execute("SELECT count(*), count(DISTINCT customer_id) FROM mart.customer_profile").fetchall() == [
        (n_customers, n_customers)]
    zhang = con.execute("""
        SELECT p.* FROM mart.customer_profile p JOIN identity.record_customer rc USING (customer_id)
        WHERE rc.record_type = 'members' AND rc.record_id = 'VIP0010001'""").fetch_df().iloc[0].to_dict()
    assert zhang["phone_masked"] == "139****9001"
    assert list(zhang["channels"]) == ["ecommerce", "service", "store", "wechat", "weibo"]
    assert zhang["member_card_count"] == 1
    assert zhang["marketing_consent"] is False  # opted out in the 11-22 store delivery
    assert zhang["name_enc"].startswith("d1:") and zhang["phone_token"]
    for view in ("customers", "churn_alerts", "segment_summary", "channel_overlap", "value_class_revenue"):
        con.execute(f"SELECT * FROM mart.{view}").fetchall()
    # persona P04 has the sample's one open complaint
    chen = con.execute("""SELECT customer_id FROM identity.record_customer WHERE record_type = 'tickets'
                          AND record_id = 'TK2611210002'""").fetchall()[0][0]
    by_topic = con.execute("SELECT customer_id, complaints, open_complaints FROM mart.complaints_by_topic "
                           "WHERE open_complaints > 0").fetchall()
    assert by_topic == [(chen, 1, 1)]


def test_rerun_and_redelivery_leave_marts_identical(built):
    home, instance = built
    snap = _snapshot(home)
    assert run_pipeline(home, instance).success
    assert _snapshot(home) == snap
    # every file delivered again under a new name is recognised and skipped
    originals = [p for p in (home / "landing").rglob("*") if p.is_file()]
    for src in originals:
        shutil.copy(src, src.with_name(src.stem + "-resent" + src.suffix))
    assert run_pipeline(home, instance).success
    assert _snapshot(home) == snap
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    statuses = con.execute("SELECT DISTINCT status FROM staging.file_ledger WHERE file_name LIKE '%-resent%'"
                           ).fetchall()
    assert statuses == [("duplicate",)]
    assert con.execute("SELECT count(*) FROM staging.file_ledger WHERE status = 'duplicate'").fetchall() == [
        (len(originals),)]


def _snapshot(home: Path):
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return (con.execute("SELECT * FROM identity.record_customer ORDER BY ALL").fetchall(),
                con.execute("SELECT * FROM mart.customer_profile ORDER BY customer_id").fetchall())
    finally:
        con.close()


def test_exports_are_plain_parquet_without_pii(built_once):
    home, _ = built_once
    table = pq.read_table(home / "exports" / "customer_profile")
    frame = pd.read_parquet(home / "exports" / "record_customer")
    assert "marketing_consent" in table.column_names and "snapshot_date" in table.column_names
    assert not [c for c in table.column_names if c.endswith("_enc")]
    assert len(frame) == 76 and frame["customer_id"].isna().sum() == 2


def _plaintexts() -> set[str]:
    """Every phone (as 11 digits), email and name in the sample landing files."""
    found: set[str] = set()
    for fmt in FORMATS:
        for path in SAMPLE_LANDING.glob(fmt.glob):
            frame = read_file(path, fmt).frame
            for fld in fmt.fields:
                if fld.role not in {"phone", "email", "name", "address"}:
                    continue
                for value in frame[fld.source].drop_nulls().to_list():
                    if fld.role == "phone":
                        digits = re.sub(r"\D", "", value.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
                        if len(digits) >= 11 and "E" not in value:
                            found.add(digits[-11:])
                    elif fld.role == "email":
                        found.add(value.strip().lower())
                    else:
                        cleaned = re.sub(r"\s", "", value)
                        if len(cleaned) >= 2:
                            found.add(cleaned)
    return found


def test_no_plaintext_personal_data_at_rest(built_once):
    home, instance = built_once
    secrets = _plaintexts()
    assert len(secrets) > 30
    texts: list[str] = []
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    ).fetchall():
        for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
            texts.append(" ".join(str(v) for v in row))
    for path in (home / "exports").rglob("*.parquet"):
        texts.extend(" ".join(map(str, r)) for r in pq.read_table(path).to_pylist())
    storage = Path(instance.root_directory)
    for path in storage.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="ignore"))
    blob = "\n".join(texts)
    leaks = sorted(s for s in secrets if s in blob)
    assert leaks == []


def test_ciphertext_tokens_and_ids_are_stored_uncompressed_and_the_rest_compressed(built_once):
    """Random bytes, tokens and near-unique ids do not pay for compression: those columns skip DuckDB's,
    in staging, identity and mart tables alike; the other string columns keep it."""
    home, _ = built_once
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    tables = ["staging.members_latest", "staging.tmall_orders_latest", "identity.record_customer",
              "identity.records", "mart.customer_profile", "mart.golden_attributes", "mart.customer_facts"]
    ids = {"record_id", "customer_id", "source_record_id"}
    methods: dict[bool, set[str]] = {True: set(), False: set()}
    seen: set[str] = set()
    for table in tables:
        for column, compression in con.execute(
                f"SELECT column_name, compression FROM pragma_storage_info('{table}') "
                "WHERE segment_type = 'VARCHAR'").fetchall():
            methods[column.endswith(("_enc", "_token")) or column in {"ciphertext", *ids}].add(compression)
            seen.add(column)
    con.close()
    assert {"phone_enc", "ciphertext", "phone_token", "record_id", "customer_id", "source_record_id"} <= seen
    assert methods[True] == {"Uncompressed"}
    assert methods[False] - {"Uncompressed"}  # e.g. dictionary/FSST on masked phones and cities


def test_failed_run_leaves_the_published_warehouse_readable(built, monkeypatch):
    home, instance = built
    before = _snapshot(home)
    (home / "landing" / "service" / "tickets-2026-11-23.csv").write_text(
        "ticket_id,phone,contact_channel,category,topic,severity,created_at,resolved_at,status\n"
        "TNEW,13900139001,hotline,complaint,delay,3,2026-11-23 09:00:00,,open\n")
    import assets.downstream

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(assets.downstream, "build_profile", boom)
        assert not run_pipeline(home, instance).success
    assert _snapshot(home) == before  # readers still see the last good run
    assert run_pipeline(home, instance).success
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM identity.record_customer WHERE record_id = 'TNEW' "
                       "AND customer_id IS NOT NULL").fetchall() == [(1,)]
    assert not list((home / ".build").glob("*.duckdb"))


def test_definitions_load():
    from pipelines.definitions import defs

    defs.validate_loadable(defs)
    assert defs.resolve_job_def("scv_refresh")
    assert {s.name for s in defs.schedules} == {"scv_nightly"}


def test_full_rebuild_keeps_customer_ids(built):
    home, instance = built
    before = _snapshot(home)
    from pipelines.definitions import defs
    from pipelines.resources import ScvResource

    result = defs.resolve_job_def("scv_rebuild").execute_in_process(
        instance=instance, resources={"scv": ScvResource(home=str(home))}, raise_on_error=False,
        tags={"scv/rebuild": "true"})
    assert result.success
    after = _snapshot(home)
    assert after[0] == before[0]  # every record keeps its customer id
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    # every landing file was ingested again in this run
    runs = con.execute("SELECT run_id, count(*) FROM staging.file_ledger GROUP BY run_id").fetchall()
    assert runs == [(result.run_id, 12)]


def _identity_metadata(result, node: str = "identity__record_customer") -> dict:
    (mat,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mat.metadata.items()}


def test_identity_diagnostics_are_asset_metadata(built_once):
    """Whoever watches runs in Dagster sees the largest customers and the busiest identifiers."""
    home, instance = built_once
    event = instance.get_latest_materialization_event(dg.AssetKey(["identity", "record_customer"]))
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    largest = con.execute("""SELECT customer_id, count(*), count(DISTINCT channel) FROM identity.record_customer
                             WHERE customer_id IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1""").fetchall()[0]
    busiest = con.execute("""SELECT t.kind, left(t.value, 12), count(*) FROM identity.record_links
                             JOIN identity.identifier_tokens t USING (iid) GROUP BY t.kind, t.value
                             ORDER BY 3 DESC, t.kind, t.value LIMIT 1""").fetchall()[0]
    con.close()
    assert meta["largest_customers"].splitlines()[2] == "| {} | {} | {} |".format(*largest)
    rows = meta["most_connected_identifiers"].splitlines()[2:]
    assert len(rows) == 5 and rows[0].endswith(f"| {busiest[2]} |") and busiest[1] in rows[0]
    assert int(meta["customers"]) == sum(int(r.split("|")[2]) for r in meta["cluster_sizes"].splitlines()[2:])
    # a full build ran every phase; together they fit in the step's own time
    assert set(meta["seconds_by_phase"]) == set(RESOLVE_PHASES)
    assert 0 < sum(meta["seconds_by_phase"].values()) <= meta["seconds"]


def test_new_delivery_is_resolved_incrementally_as_a_rebuild_would(scv_home, tmp_path):
    # the second members delivery arrives a day later: only the graph regions it touches are re-resolved
    late = scv_home / "landing" / "store" / "members-2026-11-22.csv"
    held = tmp_path / late.name
    shutil.move(late, held)
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    first = run_pipeline(scv_home, instance)
    assert first.success and _identity_metadata(first)["resolve_mode"] == "full"
    assert _identity_metadata(run_pipeline(scv_home, instance))["resolve_mode"] == "unchanged"
    shutil.move(held, late)
    second = run_pipeline(scv_home, instance)
    assert second.success
    meta = _identity_metadata(second)
    assert meta["resolve_mode"] == "incremental"
    assert 0 < meta["records_re_resolved"] < meta["records"]
    mart = _identity_metadata(second, "mart__customer_profile")
    assert mart["facts"].startswith("refreshed") and 0 < mart["customers_refreshed"] < mart["customers"]
    incremental = _resolved(scv_home)
    con = duckdb.connect(str(scv_home / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM identity.touched_customers").fetchall() == [(0,)]  # the mart took them
    con.close()

    from pipelines.definitions import defs
    from pipelines.resources import ScvResource

    rebuild = defs.resolve_job_def("scv_rebuild").execute_in_process(
        instance=instance, resources={"scv": ScvResource(home=str(scv_home))}, raise_on_error=False,
        tags={"scv/rebuild": "true"})
    assert rebuild.success and _identity_metadata(rebuild)["resolve_mode"] == "full"
    assert _resolved(scv_home) == incremental
    instance.dispose()


def _resolved(home: Path):
    """Lineage, guards and profile; not what a rebuild's fresh load makes anew (load times, nonces)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return [con.execute(q).fetchall() for q in (
            "SELECT * FROM identity.record_customer ORDER BY ALL",
            "SELECT * FROM identity.rejected_identifiers ORDER BY ALL",
            "SELECT r.record_type, r.record_id, d.kind, d.value, d.reason FROM identity.dropped_links d "
            "JOIN identity.records r USING (rk) ORDER BY ALL",
            "SELECT * EXCLUDE (updated_at, phone_enc, name_enc, email_enc, birthday_enc, address_enc) "
            "FROM mart.customer_profile ORDER BY customer_id",
            "SELECT * EXCLUDE (ciphertext) FROM mart.golden_attributes ORDER BY ALL",
            "SELECT * EXCLUDE (updated_at) FROM mart.customer_facts ORDER BY customer_id")]
    finally:
        con.close()
