"""Identity asset: the graph that turns records into customers."""


import time

import dagster as dg

from assets.downstream import identity_sources
from assets.staging import OWNERS, STAGING_KEYS
from identity.diagnostics import diagnostics
from identity.graph import resolve
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
        diag = diagnostics(con)
    finally:
        con.close()
    match_rate = stats.linked_records / stats.records if stats.records else 0.0
    return dg.MaterializeResult(metadata={
        "records": stats.records,
        "customers": stats.customers,
        "match_rate": round(match_rate, 4),
        "records_on_2plus_channel_customers": diag["share_of_records_on_2plus_channel_customers"],
        "dropped_links": diag["dropped_links"],
        # incremental: only the regions of the graph that changed records touch were re-resolved
        "resolve_mode": stats.extra.get("mode", "full"),
        "records_re_resolved": stats.extra.get("records_resolved"),
        "label_propagation_rounds": stats.iterations,
        "rejected_identifiers": stats.rejected,
        "new_customer_ids": stats.new_ids,
        "merges": stats.merges,
        "splits": stats.splits,
        "cluster_sizes": dg.MetadataValue.md(
            "| records per customer | customers |\n|---|---|\n"
            + "".join(f"| {b} | {n} |\n" for b, n in diag["cluster_sizes"])),
        "largest_customers": dg.MetadataValue.md(
            "| customer_id | records | channels |\n|---|---|---|\n"
            + "".join(f"| {c} | {n} | {ch} |\n" for c, n, ch in diag["largest_clusters"])),
        # the identifiers tying the most records, by kind and token prefix (a keyed hash: never the value)
        "most_connected_identifiers": dg.MetadataValue.md(
            "| kind | token prefix | records |\n|---|---|---|\n"
            + "".join(f"| {k} | {t} | {n} |\n" for k, t, n in diag["most_connected_identifiers"])),
        "rejected_by_reason": dg.MetadataValue.md(
            "| kind | reason | identifiers | records |\n|---|---|---|---|\n"
            + "".join(f"| {k} | {r} | {n} | {m} |\n" for k, r, n, m in diag["rejected_identifiers"])),
        # where the step's time went (identity.graph.RESOLVE_PHASES), to see which part grew
        "seconds_by_phase": dg.MetadataValue.json({k: round(v, 3) for k, v in stats.seconds.items()}),
        "seconds": round(time.perf_counter() - started, 3),
    })
