"""Baseline (b): Splink 5's deterministic linking and clustering on the same records.

Input: every current staging record with its identifier tokens, exactly the ones
our identity graph may use (a phone only when ``phone_status = 'ok'`` and mobile,
as :func:`identity.graph.build_identifiers` filters them), one column per kind.
Each kind is an exact-match blocking rule; Splink's ``deterministic_link`` makes
the pairs and ``cluster_pairwise_predictions_at_threshold`` the connected
components, on Splink's DuckDB backend.

Only the matching stage is timed (linker set-up, pairs, clusters); loading the
input table into Splink's DuckDB is not. What Splink does not have, and our graph
does, are the guards: an identifier shared by too many people (a store's own
phone, a family phone) links everyone it touches, which shows in its precision.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb
import polars as pl

from identity.evaluate import Accuracy, evaluate
from identity.graph import Source

KIND_ORDER = ("phone", "unionid", "email", "member_card", "weibo_uid", "buyer_nick", "openid")


@dataclass
class SplinkResult:
    version: str
    records: int
    pairs: int
    clusters: int
    seconds: float  # matching stage: linker, deterministic_link, clustering
    seconds_link: float
    seconds_cluster: float
    accuracy: Accuracy | None = None


def splink_input(con: duckdb.DuckDBPyConnection, srcs: list[Source]) -> pl.DataFrame:
    """One row per current record: ``unique_id``, record keys and one column per identifier kind."""
    parts = []
    for s in srcs:
        kinds = dict(s.identifiers)
        cols = []
        for kind in KIND_ORDER:
            column = kinds.get(kind)
            if column is None:
                cols.append(f"NULL::VARCHAR AS {kind}")
            elif kind == "phone":
                cols.append(f"CASE WHEN phone_status = 'ok' AND phone_is_mobile THEN {column} END AS phone")
            else:
                cols.append(f"{column}::VARCHAR AS {kind}")
        parts.append(f"SELECT '{s.record_type}' AS record_type, record_id, {', '.join(cols)} FROM {s.relation}")
    query = f"""SELECT row_number() OVER (ORDER BY record_type, record_id) AS unique_id, *
                FROM ({' UNION ALL '.join(parts)})"""
    return con.sql(query).pl()


def run_splink(records: pl.DataFrame, truth=None) -> SplinkResult:
    """Deterministic link + cluster in a fresh in-memory DuckDB; accuracy against ``truth`` if given."""
    import splink
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    logging.getLogger("splink").setLevel(logging.WARNING)
    con = duckdb.connect()
    db_api = DuckDBAPI(connection=con)
    kinds = [k for k in KIND_ORDER if records[k].null_count() < records.height]
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[block_on(k) for k in kinds],
        retain_matching_columns=False,
    )
    table = db_api.register(records.select("unique_id", *kinds).to_arrow(), table_name="scv_records")

    start = time.perf_counter()
    linker = Linker(table, settings, log_level=None)
    pairs = linker.inference.deterministic_link()
    link_done = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, None)
    clustered = clusters.as_duckdbpyrelation().select("unique_id, cluster_id").pl()
    end = time.perf_counter()

    n_pairs = pairs.as_duckdbpyrelation().count("*").fetchall()[0][0]
    result = SplinkResult(splink.__version__, records.height, n_pairs, clustered["cluster_id"].n_unique(),
                          end - start, link_done - start, end - link_done)
    if truth is not None:
        lineage = records.select("unique_id", "record_type", "record_id").join(
            clustered.with_columns(pl.col("unique_id").cast(records["unique_id"].dtype)), on="unique_id",
            how="left").select("record_type", "record_id", pl.col("cluster_id").cast(pl.String).alias("customer_id"))
        eval_con = duckdb.connect()
        eval_con.register("splink_lineage", lineage)
        result.accuracy = evaluate(eval_con, truth, "splink_lineage")
        eval_con.close()
    con.close()
    return result
