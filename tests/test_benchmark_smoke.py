"""The benchmark command at a tiny size: it runs end to end and reports what it measured.

Benchmarks are not tests, so nothing here asserts a timing. What must hold at any
size: every landing row of the base delivery is ingested by the full build and
every held-back row by the incremental run, accuracy is computed from the ground
truth, and the report carries its tables.
"""

from __future__ import annotations

import importlib.util
import time

import duckdb

from benchmarks.run import main
from identity.graph import RESOLVE_PHASES


def test_benchmark_smoke(tmp_path, monkeypatch, capsys):
    # main() points SCV_HOME / SCV_KEY_DIR at its work folder; monkeypatch restores them afterwards.
    monkeypatch.setenv("SCV_HOME", str(tmp_path / "unused"))
    monkeypatch.setenv("SCV_KEY_DIR", str(tmp_path / "unused-keys"))
    monkeypatch.setenv("SCV_AS_OF", "2026-11-23")
    monkeypatch.delenv("SCV_MASTER_KEY", raising=False)

    out = main(["--people", "300", "--seed", "3", "--work", str(tmp_path / "bench"), "--baselines", "on",
                "--phones-common", "20000", "--dagster", "--json", str(tmp_path / "bench.json")])
    printed = capsys.readouterr().out

    data, full, inc = out["data"], out["full"], out["incremental"]
    assert data["base_rows"] > 0 and data["delta_rows"] > 0
    # The held-back rows were moved byte for byte: the pipeline sees every one exactly once.
    assert full["landing_rows"] == data["base_rows"]
    assert inc["landing_rows"] == data["delta_rows"]
    assert inc["records"] >= full["records"] > 0
    assert set(full["stages"]) == {"open build copy", "ingest", "identity", "mart", "export", "publish"}
    assert full["total"] > 0 and full["landing_rows"] / full["total"] > 0
    # Ingest split: each part measured. A delivery this small is prepared by the writer itself, so
    # reading and staging are inside its "waiting", and waiting plus writing inside the ingest.
    parts = dict(full["ingest_parts"])
    assert all(v is not None and v >= 0 for v in parts.values()), parts
    read, stage = parts.pop("read"), parts.pop("stage (normalise, tokenise, encrypt)")
    staged = [v for k, v in parts.items() if "of which" in k and "merge" not in k]
    assert len(staged) == 4 and all(v > 0 for v in staged) and sum(staged) <= stage
    waited = parts["writer: waiting for (in-process: preparing) files"]
    wrote = parts["writer: merge, quarantine, ledger"]
    assert 0 < parts["&nbsp;&nbsp;of which merge into _latest"] <= wrote
    assert read + stage <= waited and waited + wrote <= full["stages"]["ingest"]
    assert not any(item["in_workers"] for item in out["full"]["ingest_by_type"])
    # Identity split by phase: a full build runs every one, within the stage's time.
    assert tuple(full["identity_phases"]) == RESOLVE_PHASES
    assert 0 < sum(full["identity_phases"].values()) <= full["stages"]["identity"]
    assert "&nbsp;&nbsp;components |" in printed

    for acc in (full["accuracy"], inc["accuracy"]):
        assert 0 < acc["precision"] <= 1 and 0 < acc["recall"] <= 1 and 0 < acc["f1"] <= 1
        assert acc["unmatched_truth"] == 0  # the base truth leaves out exactly the held-back records

    assert [p["agreement"] for p in out["phones"]] == [1.0, 1.0]
    assert all(p["per_second"] > 0 for p in out["phones"])

    naive = out["naive"]
    assert naive["rows"] == data["base_rows"] and naive["accuracy"]["f1"] > 0
    if importlib.util.find_spec("splink") is not None:
        assert out["splink"]["records"] == full["records"] and out["splink"]["accuracy"]["f1"] > 0
        # like for like: Splink's link + cluster against our identifiers + components, part of our resolve
        assert 0 < out["splink"]["ours_link_cluster_seconds"] < out["splink"]["ours_seconds"]

    # The real job ran twice: the base delivery, then the next night's files alone.
    dag = out["dagster"]
    assert dag["seconds"] > 0 and dag["next_day_seconds"] > 0
    assert "staging" in dag["steps"] and "staging" in dag["next_day_steps"]
    job_home = tmp_path / "bench" / "dagster-home"
    with duckdb.connect(str(job_home / "warehouse.duckdb"), read_only=True) as con:
        by_night = dict(con.execute("""
            SELECT run_id = (SELECT max_by(run_id, ingested_at) FROM staging.file_ledger), sum(rows_delivered)
            FROM staging.file_ledger GROUP BY ALL""").fetchall())
        as_of = con.execute("SELECT max(snapshot_date) FROM mart.customer_profile").fetchall()[0][0]
    assert by_night == {False: data["base_rows"], True: data["delta_rows"]}
    assert str(as_of) == "2026-11-24"  # the nightly run's analytics date moved on by a day

    for heading in ("## Full build", "| stage | wall s | CPU s | rows | rows/s (wall) |", "**end-to-end**",
                    "## Incremental run", "## Accuracy against the ground truth", "## Phone normalisation",
                    "## Naive pipeline", "## The real Dagster job", "## Targets (issue 8)"):
        assert heading in printed
    assert (tmp_path / "bench.json").exists()


def _hold_memory(ready, done) -> None:
    block = bytearray(300 << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: private memory of this process
    ready.set()
    done.wait(30)


def test_sampler_counts_worker_memory_read_less_often_than_its_own():
    import multiprocessing

    from benchmarks.measure import RssSampler

    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    with RssSampler(children_interval=0.2) as sampler, sampler.section("worker") as sec:
        worker = ctx.Process(target=_hold_memory, args=(ready, done))
        worker.start()
        assert ready.wait(60)
        time.sleep(0.5)  # past one children_interval: the worker's memory is read while it holds the block
        done.set()
        worker.join()
    assert sec.peak_tree_rss - sec.peak_rss > 250 << 20
