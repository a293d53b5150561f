"""Orchestration as a data engineer relies on it: definitions, schedule, sensor, gates, crashes, readers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.landing.formats import FORMATS
from tests.conftest import REPO, run_pipeline

AS_OF = "2026-11-23"


# --- definitions ------------------------------------------------------------------------------------------------

def test_definitions_load_with_owners_kinds_versions_and_gates():
    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("scv_refresh").run_tags["scv/writes"] == "warehouse"
    assert {s.name for s in defs.schedules} == {"scv_nightly"}
    assert {s.name for s in defs.sensors} == {"scv_landing_sensor"}
    specs = defs.resolve_all_asset_specs()
    assert {s.group_name for s in specs} == {"staging", "identity", "mart", "export", "publish"}
    for spec in specs:
        assert spec.description and spec.owners and spec.kinds and spec.code_version, spec.key
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name): graph.get_check_spec(k) for k in graph.asset_check_keys}
    for fmt in FORMATS:
        assert {("staging/" + fmt.record_type, n) for n in ("every_row_accounted", "staging_suite")} <= set(checks)
    assert {("identity/record_customer", "lineage_complete"), ("identity/record_customer", "cluster_size_within_limit"),
            ("identity/record_customer", "no_link_through_rejected_identifier"),
            ("identity/record_customer", "customer_ids_issued_once"),
            ("mart/customer_profile", "profile_suite"), ("mart/customer_profile", "no_plaintext_pii_columns"),
            ("export/parquet", "consent_in_exports")} <= set(checks)
    assert {key for key, spec in checks.items() if not spec.blocking} == {("mart/customer_profile",
                                                                            "customer_ids_stable")}


def test_instance_config_loads_and_limits_writers(tmp_path, monkeypatch):
    """dagster.yaml is a valid instance config whose run queue admits one warehouse writer at a time."""
    from pipelines.definitions import defs

    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)  # storage paths are relative: keep them inside tmp_path
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.run_monitoring_enabled
        assert Path(instance.root_directory).resolve().is_relative_to(tmp_path.resolve() / "data")
        concurrency = instance.get_concurrency_config()
    finally:
        instance.dispose()
    queue = concurrency.run_queue_config
    assert queue.max_concurrent_runs == 1 and concurrency.pool_config.default_pool_limit == 1
    [(key, value)] = defs.resolve_job_def("scv_refresh").run_tags.items()
    assert {"key": key, "value": value, "limit": 1} in queue.tag_concurrency_limits


# --- schedule and sensor ---------------------------------------------------------------------------------------

def test_nightly_schedule_requests_one_refresh_per_shanghai_night():
    from pipelines.definitions import defs, nightly

    assert (nightly.cron_schedule, nightly.execution_timezone) == ("0 2 * * *", "Asia/Shanghai")
    assert nightly.job_name == "scv_refresh"
    assert nightly.default_status == dg.DefaultScheduleStatus.STOPPED
    # 02:00 in Shanghai on 24 November is 18:00 UTC on the 23rd: the run belongs to the 24th
    tick = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        data = nightly.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                                               repository_def=defs.get_repository_def()))
    [request] = data.run_requests
    assert request.run_key == "nightly-2026-11-24"
    assert request.tags["scv/scheduled_for"] == "2026-11-24" and request.tags["scv/trigger"] == "schedule"


def _touch(path: Path, text: str = "x\n", age_seconds: float = 3600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    then = time.time() - age_seconds
    os.utime(path, (then, then))


def test_landing_sensor_never_opens_duckdb(tmp_path, monkeypatch):
    from pipelines.definitions import defs

    sensor = defs.resolve_sensor_def("scv_landing_sensor")
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    monkeypatch.setenv("SCV_HOME", str(home))

    def no_duckdb(*args, **kwargs):
        raise AssertionError("the sensor opened DuckDB")

    monkeypatch.setattr(duckdb, "connect", no_duckdb)

    def tick(cursor):
        with dg.instance_for_test() as instance:
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))

    empty = tick(None)
    assert not empty.run_requests and "empty" in empty.skip_message

    _touch(home / "landing" / "store" / "members-2026-11-21.csv")
    _touch(home / "landing" / "store" / "notes.txt")  # no format reads it: never a trigger
    first = tick(None)
    [request] = first.run_requests
    assert request.run_key.startswith("landing-") and request.tags["scv/landing_files"] == "1"
    assert first.cursor

    unchanged = tick(first.cursor)
    assert not unchanged.run_requests and "no change" in unchanged.skip_message

    _touch(home / "landing" / "service" / "tickets-2026-11-22.csv")
    second = tick(first.cursor)
    [again] = second.run_requests
    assert again.run_key != request.run_key and second.cursor != first.cursor

    _touch(home / "landing" / "service" / "surveys-2026-11-22.csv", age_seconds=0)  # still being copied in
    waiting = tick(second.cursor)
    assert not waiting.run_requests and "waiting" in waiting.skip_message and waiting.cursor in (None, second.cursor)


# --- a failing gate blocks the rest of the run ---------------------------------------------------------------

def _file_digest(home: Path) -> dict[str, str]:
    files = [home / "warehouse.duckdb", *sorted((home / "exports").rglob("*.parquet"))]
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_failing_staging_gate_blocks_publish(scv_home):
    first = run_pipeline(scv_home)
    assert first.success
    before = _file_digest(scv_home)
    # a refund typed as a negative sale: parses fine, breaks "amounts are not negative"
    (scv_home / "landing" / "store" / "transactions-2026-11-22.csv").write_text(
        "小票号,门店编码,会员卡号,手机号,交易时间,金额,支付方式\n"
        "SH001-20261122-0001,SH001,VIP0010001,13900139001,2026-11-22 10:15:32,-368.00,微信支付\n",
        encoding="utf-8-sig")
    second = run_pipeline(scv_home)
    assert not second.success
    evaluations = _evaluations(second)
    assert evaluations[("staging/transactions", "staging_suite")].passed is False
    assert evaluations[("staging/transactions", "every_row_accounted")].passed is True
    # the gate judged the run's new row exactly (and a sample of the rest)
    assert evaluations[("staging/transactions", "staging_suite")].metadata["rows_checked_exactly"].value == 1
    materialized = {e.asset_key.to_user_string() for e in second.get_asset_materialization_events()}
    assert materialized and all(key.startswith("staging/") for key in materialized)
    assert "publish/warehouse" not in materialized
    assert not any(key[0].startswith(("identity/", "mart/", "export/")) for key in evaluations)
    assert _file_digest(scv_home) == before  # readers still see the last good run, byte for byte

    # executed on its own, the gate judges the whole published table: the bad row never reached it
    from pipelines.definitions import ALL_ASSETS, defs
    from pipelines.resources import ScvResource

    gate = dg.AssetCheckKey(dg.AssetKey(["staging", "transactions"]), "staging_suite")
    alone = dg.materialize([*ALL_ASSETS, *defs.asset_checks], selection=dg.AssetSelection.checks(gate),
                           resources={"scv": ScvResource(home=str(scv_home))})
    verdict = _evaluations(alone)[("staging/transactions", "staging_suite")]
    assert verdict.passed
    assert verdict.metadata["rows_checked_exactly"].value == verdict.metadata["table_rows"].value > 1


def test_a_run_may_load_a_single_file_type(scv_home):
    """All types load in one step, yet each is its own asset: selecting one loads only its files."""
    from pipelines.definitions import ALL_ASSETS
    from pipelines.resources import ScvResource

    result = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(dg.AssetKey(["staging", "members"])),
                            resources={"scv": ScvResource(home=str(scv_home))})
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.asset_key == dg.AssetKey(["staging", "members"])
    metadata = event.step_materialization_data.materialization.metadata
    assert metadata["new_files"].value == 2 and metadata["rows_loaded"].value > 0
    seconds = metadata["seconds_by_part"].value  # where the step's time went, for whoever watches the runs
    assert set(seconds) == {"read", "stage", "phones", "other fields", "tokenise", "encrypt", "wait", "write", "merge"}
    assert 0 < seconds["phones"] + seconds["tokenise"] + seconds["encrypt"] <= seconds["stage"]


def _evaluations(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): e
            for e in (ev.event_specific_data for ev in result.all_events
                      if ev.event_type_value == "ASSET_CHECK_EVALUATION")}


# --- crash safety and concurrent readers, on a landing set big enough to take seconds -------------------------

# Two runs encrypt with fresh nonces and stamp their own load time: those columns are compared by presence only.
CIPHERTEXT = "lambda c: c LIKE '%\\_enc' ESCAPE '\\'"
EXCLUDED = "lambda c: NOT (c LIKE '%\\_enc' ESCAPE '\\' OR c = 'updated_at')"


def _published(home: Path) -> dict:
    """The published lineage and profile, as a reader sees them."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {
            "record_customer": con.execute("SELECT * FROM identity.record_customer ORDER BY ALL").fetchall(),
            "customer_profile": con.execute(
                f"SELECT COLUMNS({EXCLUDED}), COLUMNS({CIPHERTEXT}) IS NULL FROM mart.customer_profile "
                "ORDER BY customer_id").fetchall(),
            "exported": con.execute(f"SELECT count(*) FROM read_parquet('{home}/exports/customer_profile/*.parquet')"
                                    ).fetchall()[0][0],
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """Keys, a published first delivery (2,000 people) and a second, ten times bigger delivery to land."""
    from pipelines.generate import generate_landing
    from privacy.keys import init_keys

    root = tmp_path_factory.mktemp("trial")
    generate_landing(people=2000, seed=11, out=root / "first", batch="2026-11-20")
    generate_landing(people=20000, seed=12, out=root / "second", batch="2026-11-21")
    init_keys(root / "keys")
    env = {"SCV_KEY_DIR": str(root / "keys"), "SCV_AS_OF": AS_OF}
    base = root / "base"
    shutil.copytree(root / "first", base / "landing")
    with pytest.MonkeyPatch.context() as patch:
        for k, v in env.items():
            patch.setenv(k, v)
        patch.delenv("SCV_MASTER_KEY", raising=False)
        assert run_pipeline(base).success
    return {"root": root, "env": env, "base": base, "first": _published(base)}


def _home_with_second_delivery(trial, name: str) -> Path:
    home = trial["root"] / name
    shutil.copytree(trial["base"], home)
    shutil.copytree(trial["root"] / "second", home / "landing", dirs_exist_ok=True)
    return home


def _run_in_process(trial, home: Path):
    with pytest.MonkeyPatch.context() as patch:
        for k, v in trial["env"].items():
            patch.setenv(k, v)
        patch.setenv("SCV_HOME", str(home))
        return run_pipeline(home)


READER = textwrap.dedent("""
    import json, os, sys, time
    import duckdb
    path, out, stop = sys.argv[1:4]
    with open(out, "w") as fh:
        while not os.path.exists(stop):
            try:
                con = duckdb.connect(path, read_only=True)  # fresh each time, as a marketer's session would be
                try:
                    n, ids, lineage_ids = con.execute(
                        "SELECT count(*), count(DISTINCT customer_id), "
                        "(SELECT count(DISTINCT customer_id) FROM identity.record_customer) "
                        "FROM mart.customer_profile").fetchall()[0]
                finally:
                    con.close()
                fh.write(json.dumps({"rows": n, "ids": ids, "lineage_ids": lineage_ids}) + "\\n")
            except Exception as exc:
                fh.write(json.dumps({"error": repr(exc)}) + "\\n")
            fh.flush()
            time.sleep(0.01)
""")


@pytest.fixture(scope="module")
def uninterrupted(trial):
    """The second delivery run start to finish, with a marketer querying the warehouse the whole time."""
    home = _home_with_second_delivery(trial, "uninterrupted")
    out, stop = home.parent / "reader.jsonl", home.parent / "reader.stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(home / "warehouse.duckdb"), str(out), str(stop)])
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text().count("\n") >= 3):  # the reader is reading the old snapshot
            assert time.monotonic() < deadline and reader.poll() is None, "reader did not start"
            time.sleep(0.05)
        result = _run_in_process(trial, home)
        seen = out.read_text().count("\n")
        while out.read_text().count("\n") < seen + 3:  # ... and goes on reading the new one
            assert reader.poll() is None
            time.sleep(0.05)
    finally:
        stop.touch()
        reader.wait(timeout=30)
    assert result.success
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    return {"home": home, "published": _published(home), "answers": answers}


def test_readers_see_whole_snapshots_during_a_run(trial, uninterrupted):
    answers = uninterrupted["answers"]
    errors = [a["error"] for a in answers if "error" in a]
    assert errors == []
    sizes = {len(trial["first"]["customer_profile"]), len(uninterrupted["published"]["customer_profile"])}
    assert len(sizes) == 2
    for a in answers:
        # one snapshot: ids unique, the profile and the lineage from the same run, and one of the two runs
        assert a["rows"] == a["ids"] == a["lineage_ids"] and a["rows"] in sizes, a
    assert {a["rows"] for a in answers} == sizes  # the reader spanned the swap


def test_killed_run_leaves_published_marts_and_rerun_matches_uninterrupted(trial, uninterrupted):
    home = _home_with_second_delivery(trial, "killed")
    env = {**os.environ, **trial["env"], "SCV_HOME": str(home), "DAGSTER_HOME": str(trial["root"] / "dagster"),
           "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false"}
    (trial["root"] / "dagster").mkdir(exist_ok=True)
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run"], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list((home / ".build").glob("*.duckdb")):
            assert run.poll() is None, "the run ended before it started building"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(1.0)  # mid-way: staging is being loaded into the private build copy
        assert run.poll() is None, "the run finished before it could be killed"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    assert list((home / ".build").glob("*.duckdb"))  # the killed run's half-built copy is still there
    assert _published(home) == trial["first"]  # the last published marts, intact and readable

    assert _run_in_process(trial, home).success
    assert not list((home / ".build").glob("*.duckdb"))  # the next run cleared the debris
    resumed, clean = _published(home), uninterrupted["published"]
    assert resumed["record_customer"] == clean["record_customer"]
    assert resumed["customer_profile"] == clean["customer_profile"]
    assert resumed["exported"] == clean["exported"] == len(clean["customer_profile"])
    assert len(clean["customer_profile"]) > len(trial["first"]["customer_profile"])  # the second delivery landed
