"""The Dagster code location: assets, checks, jobs, schedule, sensor, resources.

Runs use the in-process executor: every step of a run shares one private DuckDB
build file, and DuckDB allows one writer per file.
"""

from __future__ import annotations

import dagster as dg

from assets.checks import CHECKS
from assets.identity_graph import record_customer
from assets.profile import customer_profile, parquet_exports, published_warehouse
from assets.staging import STAGING_ASSETS
from pipelines.resources import ScvResource
from pipelines.sensors import landing_sensor

ALL_ASSETS = [*STAGING_ASSETS, record_customer, customer_profile, parquet_exports, published_warehouse]

scv_job = dg.define_asset_job(
    "scv_refresh",
    selection=dg.AssetSelection.all(),
    description="Ingest new landing files, re-resolve identities, rebuild marts and exports, publish.",
    executor_def=dg.in_process_executor,
)

nightly = dg.ScheduleDefinition(
    name="scv_nightly",
    job=scv_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai",
    description="Nightly refresh at 02:00 Shanghai time, after the channels' overnight exports.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=CHECKS,
    jobs=[scv_job],
    schedules=[nightly],
    sensors=[landing_sensor(scv_job)],
    resources={"scv": ScvResource()},
    executor=dg.in_process_executor,
)
