"""Asset checks: the gates that stop bad data flowing on.

Blocking checks fail the run before downstream assets materialise, so the last
published marts stay as they were.
"""


import dagster as dg

from assets.landing.formats import FORMATS, FileFormat
from pipelines.resources import ScvResource

PII_WORDS = ("phone", "name", "email", "address", "birthday")
ALLOWED_PII_NAMES = {"file_name"}
ALLOWED_PII_SUFFIXES = ("_token", "_enc", "_masked", "_status", "_is_mobile", "_month")


def accounting_check(fmt: FileFormat) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["staging", fmt.record_type]),
        name="every_row_accounted",
        blocking=True,
        description="For every ingested file: rows delivered = rows loaded + rows quarantined.",
    )
    def _check(context, scv: ScvResource) -> dg.AssetCheckResult:
        con = scv.connect(context.run.run_id)
        try:
            bad = con.execute("""
                SELECT file_name, rows_delivered, rows_loaded, rows_quarantined FROM staging.file_ledger
                WHERE record_type = ? AND status = 'loaded'
                  AND rows_delivered <> rows_loaded + rows_quarantined""", [fmt.record_type]).fetchall()
            loaded_rows = con.execute(f"SELECT count(*) FROM staging.{fmt.record_type}").fetchall()[0][0]
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


@dg.asset_check(asset=dg.AssetKey(["identity", "record_customer"]), name="lineage_complete", blocking=True,
                description="Every current staging record appears in identity.record_customer exactly once.")
def lineage_complete(context, scv: ScvResource) -> dg.AssetCheckResult:
    con = scv.connect(context.run.run_id)
    try:
        dupes = con.execute("""SELECT count(*) FROM (SELECT record_type, record_id FROM identity.record_customer
                               GROUP BY ALL HAVING count(*) > 1)""").fetchall()[0][0]
        lineage = con.execute("SELECT count(*) FROM identity.record_customer").fetchall()[0][0]
        records = con.execute("SELECT count(*) FROM identity.records").fetchall()[0][0]
    finally:
        con.close()
    return dg.AssetCheckResult(passed=dupes == 0 and lineage == records,
                               metadata={"duplicates": dupes, "lineage_rows": lineage, "records": records})


@dg.asset_check(asset=dg.AssetKey(["mart", "customer_profile"]), name="no_plaintext_pii_columns", blocking=True,
                description="No warehouse column outside the token/ciphertext/masked forms is named like PII.")
def no_plaintext_pii_columns(context, scv: ScvResource) -> dg.AssetCheckResult:
    con = scv.connect(context.run.run_id)
    try:
        cols = con.execute("""SELECT table_schema || '.' || table_name || '.' || column_name, column_name
                              FROM information_schema.columns
                              WHERE table_schema IN ('staging', 'identity', 'mart')""").fetchall()
    finally:
        con.close()
    suspicious = [full for full, col in cols
                  if any(w in col for w in PII_WORDS) and not col.endswith(ALLOWED_PII_SUFFIXES)
                  and col not in ALLOWED_PII_NAMES]
    return dg.AssetCheckResult(passed=not suspicious, metadata={"suspicious_columns": ", ".join(suspicious) or "none"})


ACCOUNTING_CHECKS = [accounting_check(fmt) for fmt in FORMATS]
CHECKS = [*ACCOUNTING_CHECKS, lineage_complete, no_plaintext_pii_columns]
