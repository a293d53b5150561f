"""Mart, export and publish assets."""


import time

import dagster as dg

from assets.downstream import build_marts
from assets.marts.exports import write_exports
from assets.staging import OWNERS
from pipelines.resources import ScvResource, as_of_date


@dg.asset(
    key=["mart", "customer_profile"],
    deps=[dg.AssetKey(["identity", "record_customer"])],
    group_name="mart",
    description="mart.customer_profile (one row per customer, no plaintext PII), mart.golden_attributes "
                "(survivorship with provenance) and the marketer views mart.customers, mart.churn_alerts, "
                "mart.segment_summary, mart.channel_overlap, mart.value_class_revenue.",
    kinds={"duckdb", "sql"},
    owners=OWNERS,
    code_version="1",
    pool="duckdb",
    tags={"layer": "mart"},
)
def customer_profile(context: dg.AssetExecutionContext, scv: ScvResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    con = scv.connect(context.run_id)
    try:
        as_of = as_of_date()
        done = build_marts(con, scv.layout().home, as_of)
        classes = con.execute("SELECT value_class, customers, customer_share, revenue_share "
                              "FROM mart.value_class_revenue").fetchall()
        stages = con.execute("SELECT lifecycle_stage, count(*) FROM mart.customer_profile GROUP BY 1 ORDER BY 1"
                             ).fetchall()
        n, alerts, consent = con.execute(
            "SELECT count(*), count(*) FILTER (churn_alert), count(*) FILTER (marketing_consent) "
            "FROM mart.customer_profile").fetchall()[0]
    finally:
        con.close()
    return dg.MaterializeResult(metadata={
        "customers": n,
        "churn_alerts": alerts,
        "consenting_customers": consent,
        "as_of": as_of.isoformat(),
        # "refreshed": only the customers identity re-resolved or a moved date window reached; "rebuilt": all
        "facts": f"{done.facts} ({done.reason})",
        "customers_refreshed": done.customers_refreshed,
        "abc_revenue_shares": dg.MetadataValue.md(
            "| class | customers | customer share | revenue share |\n|---|---|---|---|\n"
            + "".join(f"| {c} | {k} | {s} | {r} |\n" for c, k, s, r in classes)),
        "lifecycle": dg.MetadataValue.json(dict(stages)),
        "seconds": round(time.perf_counter() - started, 3),
    })


@dg.asset(
    key=["export", "parquet"],
    deps=[dg.AssetKey(["mart", "customer_profile"])],
    group_name="export",
    description="Parquet exports exports/customer_profile/ and exports/record_customer/ (no ciphertext, no "
                "plaintext PII; marketing_consent flags who may be contacted). Written aside, swapped in on publish.",
    kinds={"parquet"},
    owners=OWNERS,
    code_version="1",
    pool="duckdb",
    tags={"layer": "export"},
)
def parquet_exports(context: dg.AssetExecutionContext, scv: ScvResource) -> dg.MaterializeResult:
    con = scv.connect(context.run_id)
    try:
        counts = write_exports(con, scv.layout().build_exports(context.run_id))
    finally:
        con.close()
    return dg.MaterializeResult(metadata={f"{k}_rows": v for k, v in counts.items()})


@dg.asset(
    key=["publish", "warehouse"],
    deps=[dg.AssetKey(["export", "parquet"])],
    group_name="publish",
    description="Atomically swaps this run's warehouse and exports into place: readers only ever see whole runs.",
    kinds={"duckdb"},
    owners=OWNERS,
    code_version="1",
    pool="duckdb",
    tags={"layer": "publish"},
)
def published_warehouse(context: dg.AssetExecutionContext, scv: ScvResource) -> dg.MaterializeResult:
    scv.publish(context.run_id)
    layout = scv.layout()
    return dg.MaterializeResult(metadata={
        "warehouse": dg.MetadataValue.path(str(layout.warehouse)),
        "exports": dg.MetadataValue.path(str(layout.exports)),
    })
