"""Identity asset: the graph that turns records into customers."""


import time

import dagster as dg

from assets.downstream import identity_sources
from assets.staging import OWNERS, STAGING_KEYS
from identity.graph import cluster_sizes, resolve
from pipelines.resources import ScvResource


@dg.asset(
    key=["identity", "record_customer"],
    deps=STAGING_KEYS,
    group_name="identity",
    description="Identity graph: identifiers, guards (identity.rejected_identifiers), connected components, "
                "stable customer ids (identity.customer_registry, identity.customer_id_history) and the lineage "
                "table identity.record_customer.",
    kinds={"duckdb", "sql"},
    owners=OWNERS,
    code_version="1",
    pool="duckdb",
    tags={"layer": "identity"},
)
def record_customer(context: dg.AssetExecutionContext, scv: ScvResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    con = scv.connect(context.run_id)
    try:
        stats = resolve(con, identity_sources(con), scv.identity_config(), context.run_id, scv.now())
        hist = cluster_sizes(con)
        top_rejected = con.execute("""SELECT kind, reason, count(*), sum(records) FROM identity.rejected_identifiers
                                      GROUP BY ALL ORDER BY 4 DESC LIMIT 10""").fetchall()
        cross = con.execute("""
            WITH c AS (SELECT customer_id, count(DISTINCT channel) AS n FROM identity.record_customer
                       WHERE customer_id IS NOT NULL GROUP BY 1)
            SELECT round(avg(coalesce(c.n >= 2, FALSE)::INT), 4)
            FROM identity.record_customer rc LEFT JOIN c USING (customer_id)""").fetchall()[0][0]
    finally:
        con.close()
    match_rate = stats.linked_records / stats.records if stats.records else 0.0
    return dg.MaterializeResult(metadata={
        "records": stats.records,
        "customers": stats.customers,
        "match_rate": round(match_rate, 4),
        "records_on_2plus_channel_customers": cross,
        "label_propagation_rounds": stats.iterations,
        "rejected_identifiers": stats.rejected,
        "new_customer_ids": stats.new_ids,
        "merges": stats.merges,
        "splits": stats.splits,
        "cluster_sizes": dg.MetadataValue.md(
            "| records per customer | customers |\n|---|---|\n" + "".join(f"| {b} | {n} |\n" for b, n in hist)),
        "rejected_by_reason": dg.MetadataValue.md(
            "| kind | reason | identifiers | records |\n|---|---|---|---|\n"
            + "".join(f"| {k} | {r} | {n} | {m} |\n" for k, r, n, m in top_rejected)),
        "seconds": round(time.perf_counter() - started, 3),
    })
