"""The Dagster code location: assets, checks, jobs, schedule, sensor, resources.

Layers are asset groups (staging, identity, mart, export, publish); every asset
says what it builds, who owns it, what it runs on (kinds) and its code version.
Runs use the in-process executor: every step of a run shares one private DuckDB
build file, and DuckDB allows one writer per file. Every asset and check is in
the ``duckdb`` pool (limit 1 in ``dagster.yaml``) and every run carries the
``scv/writes`` tag the run queue limits to one, so two runs never write at once;
marketers are never blocked, because a run publishes by an atomic file swap.
"""

import dagster as dg

from assets.checks import CHECKS
from assets.identity_graph import record_customer
from assets.profile import customer_profile, parquet_exports, published_warehouse
from assets.staging import staging
from pipelines.resources import REBUILD_TAG, ScvResource
from pipelines.sensors import landing_sensor, nightly_schedule

ALL_ASSETS = [staging, record_customer, customer_profile, parquet_exports, published_warehouse]
WRITER_TAG = {"scv/writes": "warehouse"}  # dagster.yaml: tag_concurrency_limits allows one such run at a time

scv_job = dg.define_asset_job(
    "scv_refresh",
    selection=dg.AssetSelection.all(),
    description="Incremental: ingest landing files not yet in the file ledger, re-resolve identities, rebuild "
                "marts and exports, run every quality gate, publish atomically. Safe to re-run at any time.",
    executor_def=dg.in_process_executor,
    run_tags=WRITER_TAG,
)

rebuild_job = dg.define_asset_job(
    "scv_rebuild",
    selection=dg.AssetSelection.all(),
    description="Full rebuild: start from an empty warehouse and re-ingest every file in the landing folder "
                "(after a reader fix or a token-key change). Customer ids, their history and erasures are kept.",
    executor_def=dg.in_process_executor,
    run_tags={**WRITER_TAG, REBUILD_TAG: "true"},
)

nightly = nightly_schedule(scv_job)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=CHECKS,
    jobs=[scv_job, rebuild_job],
    schedules=[nightly],
    sensors=[landing_sensor(scv_job)],
    resources={"scv": ScvResource()},
    executor=dg.in_process_executor,
)
