"""Asset checks: the gates that stop bad data flowing on.

Blocking checks fail the run before downstream assets materialise, so the last
published marts stay as they were (a run publishes only after every gate passed).
Rules are Great Expectations suites defined as code in :mod:`assets.quality`;
DuckDB reduces each table to a small frame first, so gates stay fast on 10M rows.

Gates, by layer:

* staging (per file type): every delivered row accounted for; the rows this run
  loaded obey the staging suite (tokens, masks, dates, amounts, no PII in free
  text), checked exactly, plus a sample of older rows (a check executed on its
  own judges the whole table); no column is named like plaintext personal data;
* identity: every record in the lineage exactly once; no customer above the
  configured size; no accepted link through a rejected identifier; no customer id issued twice;
* mart: no plaintext-PII column anywhere; ids unique, classes and stages valid,
  class shares add up; customer ids stable across runs (a warning, not a gate);
* export: the parquet marketers activate from carries a yes/no consent for every
  customer, equal to the mart's, and no ciphertext column.
"""


import dagster as dg
import duckdb
import pandas as pd

from assets import quality
from assets.landing.formats import FORMATS, FileFormat
from assets.landing.load import ROW_KEY
from assets.marts.views import profile_consistency
from pipelines.resources import ScvResource
from pipelines.warehouse import open_published

STAGING = "staging"
IDENTITY = dg.AssetKey(["identity", "record_customer"])
PROFILE = dg.AssetKey(["mart", "customer_profile"])
EXPORT = dg.AssetKey(["export", "parquet"])
POOL = "duckdb"  # the same pool as the assets: one step at a time touches a warehouse file


def _result(verdict: quality.Verdict, severity=dg.AssetCheckSeverity.ERROR, **extra) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=verdict.passed, severity=severity, metadata={**extra, **verdict.metadata()})


def _materialized_in_run(context, key: dg.AssetKey) -> bool:
    """Whether this run materialised ``key`` (a check executed on its own did not)."""
    event = context.instance.get_latest_materialization_event(key)
    return event is not None and event.run_id == context.run.run_id


def _connect(context, scv: ScvResource, key: dg.AssetKey) -> duckdb.DuckDBPyConnection:
    """The run's build copy when this run built ``key``, else the published warehouse, read-only.

    A check executed on its own (from the UI, say) judges what marketers see, and must
    neither copy the warehouse into a build that is never published nor take the writer lock.
    """
    if _materialized_in_run(context, key):
        return scv.connect(context.run.run_id)
    return open_published(scv.layout())


def erased_rows(con, record_type: str) -> int:
    """Rows of this type deleted by erasure requests (``privacy.erased_rows``), 0 before any erasure."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'privacy' "
                         "AND table_name = 'erased_rows'").fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(sum(rows), 0) FROM privacy.erased_rows WHERE record_type = ?",
                       [record_type]).fetchall()[0][0]


def accounting_check(fmt: FileFormat) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey([STAGING, fmt.record_type]),
        name="every_row_accounted",
        blocking=True,
        pool=POOL,
        description="For every ingested file: rows delivered = rows loaded + rows quarantined.",
    )
    def _check(context, scv: ScvResource) -> dg.AssetCheckResult:
        con = _connect(context, scv, dg.AssetKey([STAGING, fmt.record_type]))
        try:
            bad = con.execute("""
                SELECT file_name, rows_delivered, rows_loaded, rows_quarantined FROM staging.file_ledger
                WHERE record_type = ? AND status = 'loaded'
                  AND rows_delivered <> rows_loaded + rows_quarantined""", [fmt.record_type]).fetchall()
            loaded_rows = con.execute(f"SELECT count(*) FROM staging.{fmt.record_type}").fetchall()[0][0]
            # rows removed on a customer's erasure request stay accounted for
            loaded_rows += erased_rows(con, fmt.record_type)
            ledger_rows = con.execute(
                "SELECT coalesce(sum(rows_loaded), 0) FROM staging.file_ledger WHERE record_type = ?",
                [fmt.record_type]).fetchall()[0][0]
        finally:
            con.close()
        return dg.AssetCheckResult(
            passed=not bad and loaded_rows == ledger_rows,
            metadata={"files_out_of_balance": len(bad), "staging_rows": loaded_rows, "ledger_rows": ledger_rows},
        )

    return _check


def staging_suite_check(fmt: FileFormat) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey([STAGING, fmt.record_type]),
        name="staging_suite",
        blocking=True,
        pool=POOL,
        description=f"Great Expectations suite `staging_{fmt.record_type}` on the rows this run loaded (exact "
                    "probe) plus a sample of history (the whole table when executed on its own): phone tokens "
                    "64 hex for every usable phone, masked forms are masks, timestamps 2000-01-01..now+1 day, "
                    "amounts >= 0, no phone or e-mail in free text, no column named like plaintext PII.",
    )
    def _check(context, scv: ScvResource) -> dg.AssetCheckResult:
        run_id = context.run.run_id
        rules = quality.staging_suite(fmt, scv.now())
        # After an ingest, judge what it loaded (exactly) and a sample of the rest; run on its own, judge it all.
        key = dg.AssetKey([STAGING, fmt.record_type])
        loaded_here = _materialized_in_run(context, key)
        con = _connect(context, scv, key)
        try:
            frame, sizes = quality.probe_frame(
                con, f"{STAGING}.{fmt.record_type}", quality.probe_for(rules, quality.staging_within(fmt)),
                focus=f"run_id = {quality.sql_string(run_id)}" if loaded_here else None, key=ROW_KEY)
            columns = quality.columns_frame(con, "table_schema = 'staging' AND table_name = ?", [fmt.record_type])
        finally:
            con.close()
        verdict = (quality.validate(frame, rules, sizes)
                   + quality.validate(columns, quality.column_names_suite(f"staging_{fmt.record_type}_columns")))
        return _result(verdict, rows_checked_exactly=sizes["rows_in_focus"], table_rows=sizes["table_rows"])

    return _check


def _facts_check(name: str, description: str, sql: str, make_suite):
    """An identity gate: a facts frame computed in DuckDB, judged by a GX suite."""

    @dg.asset_check(asset=IDENTITY, name=name, blocking=True, pool=POOL,
                    description=description)
    def _check(context, scv: ScvResource) -> dg.AssetCheckResult:
        con = _connect(context, scv, IDENTITY)
        try:
            frame = con.sql(sql).df()
        finally:
            con.close()
        return _result(quality.validate(frame, make_suite(scv)))

    return _check


lineage_complete = _facts_check(
    "lineage_complete",
    "Every current staging record appears in identity.record_customer exactly once, per record type "
    "(no record missing, none twice, no lineage row without its record).",
    quality.lineage_facts_sql(), lambda scv: quality.lineage_suite())

cluster_size_within_limit = _facts_check(
    "cluster_size_within_limit",
    "No customer holds more records than IdentityConfig.max_cluster_records (a larger cluster means a shared "
    "identifier slipped past the guards).",
    quality.CLUSTER_FACTS_SQL, lambda scv: quality.cluster_suite(scv.identity_config().max_cluster_records))

no_link_through_rejected_identifier = _facts_check(
    "no_link_through_rejected_identifier",
    "No accepted link in identity.links goes through an identifier in identity.rejected_identifiers "
    "(placeholders, shared phones).",
    quality.REJECTED_LINK_FACTS_SQL, lambda scv: quality.rejected_link_suite())

customer_ids_issued_once = _facts_check(
    "customer_ids_issued_once",
    "No customer id appears twice in identity.customer_registry (ids are issued as the highest "
    "sequence + 1, 2, ...; the table carries no key constraint).",
    quality.REGISTRY_FACTS_SQL, lambda scv: quality.registry_suite())


@dg.asset_check(asset=PROFILE, name="no_plaintext_pii_columns", blocking=True, pool=POOL,
                description="No column in any schema of the warehouse (staging, identity, mart, privacy...) is "
                            "named like PII unless it is a token, ciphertext, masked or derived form.")
def no_plaintext_pii_columns(context, scv: ScvResource) -> dg.AssetCheckResult:
    con = _connect(context, scv, PROFILE)
    try:
        columns = quality.columns_frame(con, "table_catalog = current_database() "
                                             "AND table_schema NOT IN ('information_schema', 'pg_catalog')")
    finally:
        con.close()
    verdict = quality.validate(columns, quality.column_names_suite("warehouse_columns"))
    suspicious = columns[columns["column_name"].str.contains(quality.PII_COLUMN_NAME, regex=True)]
    names = ", ".join(suspicious["table_name"] + "." + suspicious["column_name"])  # column names, never values
    return _result(verdict, suspicious_columns=names or "none")


@dg.asset_check(asset=PROFILE, name="profile_suite", blocking=True, pool=POOL,
                description="Great Expectations suites on mart.customer_profile: customer_id present, unique and "
                            "well-formed; value_class in A/B/C; lifecycle_stage one of the 6 stages; consent a "
                            "yes/no; class customer and revenue shares sum to 1 and the ABC cut is on target.")
def profile_suite(context, scv: ScvResource) -> dg.AssetCheckResult:
    rules = quality.profile_suite(scv.identity_config().id_prefix)
    con = _connect(context, scv, PROFILE)
    try:
        frame, sizes = quality.probe_frame(con, "mart.customer_profile", quality.probe_for(rules))
        facts = profile_consistency(con)
    finally:
        con.close()
    broken_rules = sorted(k for k, ok in facts["checks"].items() if not ok)
    has_customers, has_revenue = facts["customers"] > 0, facts["class_revenue_share_sum"] is not None
    facts_frame = pd.DataFrame([{
        "customers": facts["customers"],
        "distinct_customer_ids": facts["distinct_customer_ids"],
        "lifecycle_total": facts["lifecycle_total"],
        # shares are undefined without customers (or revenue): null is skipped by GX, not failed
        "class_customer_share_sum": facts["class_customer_share_sum"] if has_customers else None,
        "class_revenue_share_sum": facts["class_revenue_share_sum"] if has_revenue else None,
        "abc_cut_on_target": facts["checks"]["a_share_near_target"] and facts["checks"]["ab_share_near_target"]
                             and facts["checks"].get("classes_ordered_by_value", True),
    }])
    verdict = quality.validate(frame, rules, sizes) + quality.validate(facts_frame, quality.profile_facts_suite())
    return _result(verdict, customers=facts["customers"], consistency_rules_failed=", ".join(broken_rules) or "none")


@dg.asset_check(asset=PROFILE, name="customer_ids_stable", blocking=False, pool=POOL,
                description="Every customer id of the last published profile is still a customer, or its merge or "
                            "split is recorded in identity.customer_id_history. Warns (does not block): a customer "
                            "whose every key became shared legitimately loses its id.")
def customer_ids_stable(context, scv: ScvResource) -> dg.AssetCheckResult:
    published = scv.layout().warehouse
    if not published.exists():
        return dg.AssetCheckResult(passed=True, metadata={"previous_customers": 0, "note": "first publish"})
    if not _materialized_in_run(context, PROFILE):
        return dg.AssetCheckResult(passed=True, metadata={"note": "the profile was not rebuilt in this run"})
    con = scv.connect(context.run.run_id)
    try:
        con.execute(f"ATTACH {quality.sql_string(str(published))} AS published (READ_ONLY)")
        try:
            has_profile = con.execute("""
                SELECT count(*) FROM duckdb_tables() WHERE database_name = 'published' AND schema_name = 'mart'
                  AND table_name = 'customer_profile'""").fetchall()[0][0]
            frame = con.sql("""
                SELECT count(*) AS previous_customers,
                       count(*) FILTER (c.customer_id IS NULL AND h.old_id IS NULL) AS vanished_without_history
                FROM published.mart.customer_profile p
                LEFT JOIN mart.customer_profile c USING (customer_id)
                LEFT JOIN (SELECT DISTINCT old_id FROM identity.customer_id_history) h ON h.old_id = p.customer_id
            """).df() if has_profile else pd.DataFrame([{"previous_customers": 0, "vanished_without_history": 0}])
        finally:
            con.execute("DETACH published")
    finally:
        con.close()
    verdict = quality.validate(frame, quality.stability_suite())
    return _result(verdict, severity=dg.AssetCheckSeverity.WARN,
                   previous_customers=int(frame["previous_customers"].iloc[0]),
                   vanished_without_history=int(frame["vanished_without_history"].iloc[0]))


@dg.asset_check(asset=EXPORT, name="consent_in_exports", blocking=True, pool=POOL,
                description="The customer_profile parquet export has a boolean, non-null marketing_consent for "
                            "every customer, equal to the mart's, holds exactly the mart's customers, and has no "
                            "ciphertext or plaintext-PII column.")
def consent_in_exports(context, scv: ScvResource) -> dg.AssetCheckResult:
    layout = scv.layout()
    built_here = _materialized_in_run(context, EXPORT)
    folder = (layout.build_exports(context.run.run_id) if built_here else layout.exports) / "customer_profile"
    scan = f"read_parquet({quality.sql_string(str(folder / '*.parquet'))}, file_row_number = true)"
    rules = quality.export_suite()
    con = _connect(context, scv, EXPORT)
    try:
        columns = con.sql(f"SELECT column_name, column_type AS data_type FROM (DESCRIBE SELECT * FROM {scan}) "
                          "WHERE column_name <> 'file_row_number'").df()
        if "marketing_consent" not in set(columns["column_name"]):  # the suite reports the missing column
            frame, sizes = con.sql(f"SELECT * EXCLUDE (file_row_number) FROM {scan} LIMIT 0").df(), None
            facts = pd.DataFrame()
        else:
            frame, sizes = quality.probe_frame(con, scan, quality.probe_for(rules), key="file_row_number")
            facts = con.sql(f"""
                SELECT (SELECT count(*) FROM {scan}) AS export_rows,
                       (SELECT count(*) FROM mart.customer_profile) AS mart_rows,
                       (SELECT count(DISTINCT customer_id) FROM {scan}) AS distinct_customer_ids,
                       (SELECT count(*) FROM {scan} e JOIN mart.customer_profile m USING (customer_id)
                        WHERE e.marketing_consent IS DISTINCT FROM m.marketing_consent) AS consent_mismatches
            """).df()
    except duckdb.IOException as exc:
        raise dg.Failure(f"cannot read the export at {folder}: {exc}") from exc
    finally:
        con.close()
    verdict = (quality.validate(frame, rules, sizes)
               + quality.validate(columns, quality.column_names_suite("export_columns", forbid_ciphertext=True)))
    if not facts.empty:
        verdict += quality.validate(facts, quality.export_facts_suite())
    return _result(verdict, export=dg.MetadataValue.path(str(folder)))


ACCOUNTING_CHECKS = [accounting_check(fmt) for fmt in FORMATS]
STAGING_SUITE_CHECKS = [staging_suite_check(fmt) for fmt in FORMATS]
IDENTITY_CHECKS = [lineage_complete, cluster_size_within_limit, no_link_through_rejected_identifier,
                   customer_ids_issued_once]
MART_CHECKS = [no_plaintext_pii_columns, profile_suite, customer_ids_stable]
EXPORT_CHECKS = [consent_in_exports]
CHECKS = [*ACCOUNTING_CHECKS, *STAGING_SUITE_CHECKS, *IDENTITY_CHECKS, *MART_CHECKS, *EXPORT_CHECKS]
