"""Erasure on request (PIPL): remove a person everywhere, and keep them gone.

``erase`` deletes every staging row of the person (all deliveries, history
included) and their lineage, and writes the tokens of their identifiers to
``privacy.suppression``. Ingestion consults that list, so a later delivery of
their old rows lands in quarantine as "erased on request" instead of resurrecting
them. The suppression list holds keyed tokens only, never the identifiers.
Only identifiers that actually tied records to this customer are suppressed: a
shared family phone that linked nothing does not erase the rest of the family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import polars as pl

from privacy.crypto import token_sql
from privacy.keys import Keyring

DDL = """
CREATE SCHEMA IF NOT EXISTS privacy;
CREATE TABLE IF NOT EXISTS privacy.suppression (kind VARCHAR, token VARCHAR, request_id VARCHAR,
                                                erased_at TIMESTAMPTZ, token_key_id VARCHAR);
ALTER TABLE privacy.suppression ADD COLUMN IF NOT EXISTS token_key_id VARCHAR;
CREATE TABLE IF NOT EXISTS privacy.erased_rows (request_id VARCHAR, record_type VARCHAR, source_file VARCHAR,
                                                rows BIGINT);
CREATE TABLE IF NOT EXISTS privacy.erasure_log (request_id VARCHAR, erased_at TIMESTAMPTZ, customer_ids VARCHAR[],
                                                records_removed BIGINT, detail JSON);
"""
# identity kinds whose staging value is already a token; the others are tokenised here
TOKEN_KINDS = {"phone", "email", "unionid", "buyer_nick"}


@dataclass
class ErasureReport:
    request_id: str
    customer_ids: list[str]
    records_removed: dict[str, int] = field(default_factory=dict)
    tokens_suppressed: int = 0


def customers_for_phone(con: duckdb.DuckDBPyConnection, phone_token: str) -> list[str]:
    """Customers whose records carry this phone token (also used by ``scv lookup``)."""
    rows = con.execute("""SELECT DISTINCT rc.customer_id FROM identity.identifiers i JOIN identity.records r USING (rk)
                          JOIN identity.record_customer rc USING (record_type, record_id)
                          WHERE i.kind = 'phone' AND i.value = ? AND rc.customer_id IS NOT NULL""",
                       [phone_token]).fetchall()
    return [r[0] for r in rows]


def erase(con: duckdb.DuckDBPyConnection, keyring: Keyring, customer_ids: list[str], request_id: str,
          now: datetime, extra_phone_token: str | None = None) -> ErasureReport:
    """Delete the customers' records from staging and mark their ids erased; suppress their keys.

    Run :func:`assets.downstream.rebuild_downstream` after it (``scv erase`` does) to drop them from
    identity and the marts.
    """
    con.execute(DDL)
    report = ErasureReport(request_id, sorted(customer_ids))
    con.register("erase_ids", pl.DataFrame({"customer_id": customer_ids}, schema={"customer_id": pl.String}))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE erase_records AS
            SELECT rc.record_type, rc.record_id, r.rk FROM identity.record_customer rc
            JOIN identity.records r USING (record_type, record_id) SEMI JOIN erase_ids USING (customer_id)""")
    if extra_phone_token:  # erasure by phone also removes records of that phone that linked to nobody
        con.execute("""INSERT INTO erase_records SELECT r.record_type, r.record_id, r.rk FROM identity.identifiers i
                       JOIN identity.records r USING (rk) WHERE i.kind = 'phone' AND i.value = ?
                       AND (r.record_type, r.record_id) NOT IN (SELECT (record_type, record_id) FROM erase_records)""",
                    [extra_phone_token])
    tokenised = " UNION ALL ".join(
        f"SELECT kind, {token_sql('value', keyring, kind)} AS token FROM erase_links WHERE kind = '{kind}'"
        for kind in ("member_card", "weibo_uid", "openid"))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE erase_links AS
            SELECT DISTINCT l.kind, l.value FROM identity.links l SEMI JOIN erase_records USING (rk);
        CREATE OR REPLACE TEMP TABLE erase_tokens AS
            SELECT kind, value AS token FROM erase_links WHERE kind IN ('phone', 'email', 'unionid', 'buyer_nick')
            UNION ALL {tokenised}""")
    if extra_phone_token:
        con.execute("INSERT INTO erase_tokens VALUES ('phone', ?)", [extra_phone_token])
    con.execute("INSERT INTO privacy.suppression SELECT DISTINCT kind, token, ?, ?, ? FROM erase_tokens",
                [request_id, now, keyring.token_key_id])
    report.tokens_suppressed = con.execute("SELECT count(DISTINCT token) FROM erase_tokens").fetchall()[0][0]
    for (record_type,) in con.execute("SELECT DISTINCT record_type FROM erase_records ORDER BY 1").fetchall():
        before = con.execute(f"SELECT count(*) FROM staging.{record_type}").fetchall()[0][0]
        # keep the row accounting whole: delivered = loaded + quarantined, loaded = staged + erased
        con.execute(f"""INSERT INTO privacy.erased_rows
                        SELECT ?, ?, source_file, count(*) FROM staging.{record_type}
                        WHERE record_id IN (SELECT record_id FROM erase_records WHERE record_type = ?)
                        GROUP BY source_file""", [request_id, record_type, record_type])
        # the view staging.<type> shows _latest and _superseded (a warehouse not yet loaded since
        # staging was split keeps every delivery in the table staging.<type>)
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging' "
            "AND table_type = 'BASE TABLE' AND table_name IN (?, ?, ?)",
            [record_type, f"{record_type}_latest", f"{record_type}_superseded"]).fetchall()]
        for table in tables:
            con.execute(f"""DELETE FROM staging.{table}
                            WHERE record_id IN (SELECT record_id FROM erase_records WHERE record_type = ?)""",
                        [record_type])
        report.records_removed[record_type] = before - con.execute(
            f"SELECT count(*) FROM staging.{record_type}").fetchall()[0][0]
    # The identity tables (lineage included) are left to the resolve that follows every erasure
    # (``rebuild_downstream``): it sees the records gone, drops their rows and lists their customers
    # as touched, so the marts drop theirs too.
    con.execute("UPDATE identity.customer_registry SET status = 'erased' WHERE customer_id IN "
                "(SELECT customer_id FROM erase_ids)")
    con.execute("INSERT INTO privacy.erasure_log VALUES (?, ?, ?, ?, ?)",
                [request_id, now, report.customer_ids, sum(report.records_removed.values()),
                 str(report.records_removed).replace("'", '"')])
    con.unregister("erase_ids")
    return report


def split_suppressed(con: duckdb.DuckDBPyConnection, staged: pl.DataFrame,
                     identifiers: tuple[tuple[str, str], ...], keyring: Keyring) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split staged rows into (kept, erased): erased rows carry a suppressed identifier.

    ``identifiers`` are the format's (kind, column) pairs; raw ids (member card,
    Weibo uid, openid) are tokenised here to meet the suppression list. People
    erased before a token rotation are recognised through the ``<column>__<key id>``
    tokens the staging step made with retired token keys; their identifiers are
    then re-listed under the active key. Erased rows come back as quarantine rows
    (line, reason, no raw text) so accounting stays whole; helper columns are dropped.
    """
    empty = pl.DataFrame(schema={"line": pl.Int64, "reason": pl.String, "raw_redacted": pl.String})
    helpers = [c for c in staged.columns if "__" in c]
    con.execute(DDL)
    if staged.height == 0 or not con.execute("SELECT count(*) FROM privacy.suppression").fetchall()[0][0]:
        return staged.drop(helpers), empty
    keys = {keyring.token_key_id: keyring.token_key, **keyring.old_token_keys}
    checks, active_tokens = [], []
    for kind, column in identifiers:
        if column not in staged.columns:
            continue
        for kid, key in keys.items():
            if kind in TOKEN_KINDS:
                value = column if kid == keyring.token_key_id else f"{column}__{kid}"
                if value not in staged.columns:
                    continue
            else:
                value = token_sql(column, keyring, kind, key)
            checks.append(f"{value} IN (SELECT token FROM privacy.suppression "
                          f"WHERE kind = '{kind}' AND coalesce(token_key_id, '{kid}') = '{kid}')")
        active = column if kind in TOKEN_KINDS else token_sql(column, keyring, kind)
        active_tokens.append(f"SELECT '{kind}' AS kind, {active} AS token FROM incoming_check "
                             f"WHERE _hit AND {column} IS NOT NULL")
    if not checks:
        return staged.drop(helpers), empty
    indexed = staged.with_row_index("_row")
    con.register("incoming_check", indexed)
    hits = con.sql(f"SELECT _row FROM incoming_check WHERE coalesce({' OR '.join(checks)}, FALSE)").pl()["_row"]
    hit = indexed["_row"].is_in(hits.implode())
    if hits.len():  # keep them out under the active token key from now on
        con.unregister("incoming_check")
        con.register("incoming_check", indexed.with_columns(hit.alias("_hit")))
        con.execute(f"""INSERT INTO privacy.suppression
                        SELECT DISTINCT t.kind, t.token, 'carried over', now(), ?
                        FROM ({' UNION ALL '.join(active_tokens)}) t
                        WHERE NOT EXISTS (SELECT 1 FROM privacy.suppression s WHERE s.kind = t.kind
                                          AND s.token = t.token)""", [keyring.token_key_id])
    con.unregister("incoming_check")
    erased = staged.filter(hit).select(
        pl.col("source_line").alias("line"),
        pl.lit("erased on the customer's request (suppression list); not loaded").alias("reason"),
        pl.lit(None, dtype=pl.String).alias("raw_redacted"),
    )
    return staged.filter(~hit).drop(helpers), erased
