"""``mart.customer_facts``: what each customer's own records add up to, kept from run to run.

The profile's analytics come in two parts. The *facts* are aggregates over one customer's
records (channels, orders and spend, consent, tickets, the latest survey...); the *date
pass* in :mod:`assets.marts.profile` turns them into day counts, ranks, stages and alerts
for ``as_of``, over narrow rows. A customer's facts change only when

* identity re-resolved the customer's records (``identity.touched_customers``: new,
  re-delivered, erased records, merges and splits), or
* ``as_of`` moved a window edge across one of the customer's events. An event counts when
  its Shanghai date is on or before ``as_of`` (orders, tickets, surveys), after
  ``as_of - preferred_window_days`` (recent activity, for the preferred channel), or after
  ``as_of - value_window_days`` (ABC's spend window). Moving ``as_of`` from A to B flips
  exactly the events dated in ``(min(A, B) - d, max(A, B) - d]`` for each edge ``d``.

So a run refreshes only those customers and keeps every other row: the same table a
rebuild writes (the mart tests build every case both ways). Facts are rebuilt whole when
there is no state yet, identity resolved everything, or the facts SQL changed (another
set of record types, other windows, new code): ``mart.customer_facts_state`` keeps a hash
of the SQL and the ``as_of`` the rows were computed for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import duckdb

from assets.marts.sources import (
    LOCAL_TZ,
    activity_sql,
    consent_sql,
    dated_columns,
    local_date,
    orders_sql,
    src,
)
from pipelines.storage import create_table_as

CSAT_DIMENSIONS = ("price", "timeliness", "quality", "attitude")
AS_OF = "$as_of"  # bound as a DATE parameter, so the SQL text (and its hash) does not change with the date


@dataclass(frozen=True)
class FactsPlan:
    """How this run writes the facts: ``refresh`` customers only (TEMP ``facts_refresh``) or everyone."""

    incremental: bool
    reason: str


def edges(cfg) -> list[int]:
    """Days before ``as_of`` at which an event starts or stops counting (see the module docstring)."""
    return [0, cfg.preferred_window_days] + ([cfg.value_window_days] if cfg.value_window_days is not None else [])


def statements(present: set[str], cfg) -> list[str]:
    """The facts, as SQL over the lineage TEMP table ``rc``; the last statement is the facts SELECT.

    Every use of ``as_of`` must be one of :func:`edges`, or an incremental run would miss it.
    """
    in_window = ("TRUE" if cfg.value_window_days is None
                 else f"{local_date('ts')} > {AS_OF} - INTERVAL {int(cfg.value_window_days)} DAY")
    w = cfg.csat_weights
    # A blank dimension drops out of both the weighted sum and the sum of weights.
    csat_num = " + ".join(f"coalesce({w[d]} * score_{d}, 0)" for d in CSAT_DIMENSIONS)
    csat_den = " + ".join(f"CASE WHEN score_{d} IS NOT NULL THEN {w[d]} ELSE 0 END" for d in CSAT_DIMENSIONS)
    channel = f"""
    CREATE OR REPLACE TEMP TABLE customer_channel AS
    SELECT customer_id, channel, count(*) AS n,
           count(*) FILTER ({local_date('ts')} > {AS_OF} - INTERVAL {int(cfg.preferred_window_days)} DAY) AS recent,
           min(ts) AS first_at, max(ts) AS last_at, max(loaded_at) AS loaded_at
    FROM ({activity_sql(present)})
    GROUP BY customer_id, channel"""
    orders = f"""
    CREATE OR REPLACE TEMP TABLE customer_orders AS
    SELECT customer_id, count(*) AS orders_count, round(sum(amount_cny), 2) AS total_spent_cny,
           coalesce(round(sum(amount_cny) FILTER ({in_window}), 2), 0) AS value_spent_cny,
           min(ts) AS first_order_at, max(ts) AS last_order_at
    FROM ({orders_sql(present)}) o(customer_id, channel, ts, amount_cny)
    WHERE {local_date('ts')} <= {AS_OF}
    GROUP BY customer_id"""
    tickets = (f"""SELECT rc.customer_id, count(*) AS tickets_count,
               count(*) FILTER (category = 'complaint') AS complaints_count,
               count(*) FILTER (category = 'complaint' AND coalesce(ticket_status, 'open') = 'open'
                                AND resolved_at IS NULL) AS open_complaints,
               min(event_at) FILTER (category = 'complaint' AND coalesce(ticket_status, 'open') = 'open'
                                     AND resolved_at IS NULL) AS oldest_open_complaint_at,
               max(event_at) FILTER (category = 'complaint') AS last_complaint_at
        {src("tickets")}
        WHERE {local_date('event_at')} <= {AS_OF}
        GROUP BY rc.customer_id""" if "tickets" in present else
               "SELECT NULL::VARCHAR customer_id, 0 tickets_count, 0 complaints_count, 0 open_complaints, "
               "NULL::TIMESTAMPTZ oldest_open_complaint_at, NULL::TIMESTAMPTZ last_complaint_at WHERE FALSE")
    surveys = (f"""SELECT rc.customer_id,
               perceived_score - expected_score AS satisfaction_gap,
               round(({csat_num}) / nullif({csat_den}, 0), 2) AS csat,
               nps AS nps_latest
        {src("surveys")}
        WHERE {local_date('event_at')} <= {AS_OF}
        QUALIFY row_number() OVER (PARTITION BY rc.customer_id ORDER BY event_at DESC, s.record_id DESC) = 1"""
               if "surveys" in present else "SELECT NULL::VARCHAR customer_id, NULL::INT satisfaction_gap, "
               "NULL::DOUBLE csat, NULL::INT nps_latest WHERE FALSE")
    advocacy = (f"""SELECT rc.customer_id, count(*) FILTER (interaction_type IN ('repost', 'mention')) AS advocacy
        {src("interactions")}
        GROUP BY rc.customer_id""" if "interactions" in present else
                "SELECT NULL::VARCHAR customer_id, 0 advocacy WHERE FALSE")
    wechat = " ".join(
        (["UNION ALL SELECT rc.customer_id, unionid_token, subscribed, "
          "greatest(subscribed_at, batch_date::TIMESTAMPTZ) " + src("followers")] if "followers" in present else [])
        + (["UNION ALL SELECT rc.customer_id, unionid_token, NULL, authorized_at " + src("miniprogram")]
           if "miniprogram" in present else []))
    weibo = " UNION ALL ".join(
        f"SELECT rc.customer_id, weibo_uid, event_at AS ts {src(rt)} WHERE weibo_uid IS NOT NULL"
        for rt in ("interactions", "leads") if rt in present
    ) or "SELECT NULL::VARCHAR customer_id, NULL::VARCHAR weibo_uid, NULL::TIMESTAMPTZ ts WHERE FALSE"
    facts = f"""
    WITH base AS (
        SELECT customer_id, list(channel ORDER BY channel) AS channels, sum(n)::BIGINT AS source_records,
               min(first_at) AS first_seen_at, max(last_at) AS last_seen_at, max(loaded_at) AS updated_at
        FROM customer_channel GROUP BY customer_id),
    pref AS (
        SELECT customer_id, channel AS preferred_channel FROM customer_channel
        QUALIFY row_number() OVER (PARTITION BY customer_id
                                   ORDER BY recent DESC, n DESC, last_at DESC NULLS LAST, channel) = 1),
    reach AS (
        SELECT rc.customer_id,
            count(*) FILTER (rc.record_type = 'members') AS member_card_count,
            max(rc.record_id) FILTER (rc.record_type = 'users') AS weibo_uid_user
        FROM rc GROUP BY rc.customer_id),
    wx AS (
        SELECT customer_id, arg_max(unionid_token, ts) FILTER (unionid_token IS NOT NULL) AS wechat_unionid_token,
               arg_max(subscribed, ts) FILTER (subscribed IS NOT NULL) AS wechat_subscribed
        FROM (SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS unionid_token, NULL::BOOLEAN AS subscribed,
                     NULL::TIMESTAMPTZ AS ts WHERE FALSE {wechat})
        GROUP BY customer_id),
    wb AS (SELECT customer_id, arg_max(weibo_uid, ts) AS weibo_uid_any FROM ({weibo}) GROUP BY customer_id),
    consent AS (
        SELECT customer_id, arg_max(opt_in, (ts, delivery_seq, NOT opt_in)) AS marketing_consent
        FROM ({consent_sql(present)}) GROUP BY customer_id),
    svc AS ({tickets}),
    srv AS ({surveys}),
    adv AS ({advocacy})
    SELECT b.customer_id, b.channels, wx.wechat_unionid_token, wx.wechat_subscribed,
           coalesce(r.weibo_uid_user, wb.weibo_uid_any) AS weibo_uid, r.member_card_count,
           p.preferred_channel, coalesce(c.marketing_consent, FALSE) AS marketing_consent,
           b.first_seen_at, b.last_seen_at,
           coalesce(o.orders_count, 0) AS orders_count, coalesce(o.total_spent_cny, 0) AS total_spent_cny,
           coalesce(o.value_spent_cny, 0) AS value_spent_cny,
           round(o.total_spent_cny / o.orders_count, 2) AS avg_order_value_cny,
           o.first_order_at, o.last_order_at,
           coalesce(s.tickets_count, 0) AS tickets_count, coalesce(s.complaints_count, 0) AS complaints_count,
           coalesce(s.open_complaints, 0) AS open_complaints, s.oldest_open_complaint_at, s.last_complaint_at,
           v.satisfaction_gap, v.csat, v.nps_latest, coalesce(a.advocacy, 0) AS advocacy,
           b.source_records, b.updated_at
    FROM base b LEFT JOIN pref p USING (customer_id)
    LEFT JOIN reach r USING (customer_id) LEFT JOIN wx USING (customer_id) LEFT JOIN wb USING (customer_id)
    LEFT JOIN consent c USING (customer_id) LEFT JOIN customer_orders o USING (customer_id)
    LEFT JOIN svc s USING (customer_id) LEFT JOIN srv v USING (customer_id) LEFT JOIN adv a USING (customer_id)"""
    return [channel, orders, facts]


def fingerprint(sql: list[str]) -> str:
    """Hash of the facts SQL (:func:`statements`): rows written by other SQL are not refreshed, they are rebuilt."""
    return hashlib.sha256("\n;\n".join(sql).encode()).hexdigest()[:16]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(LOCAL_TZ))


def plan(con: duckdb.DuckDBPyConnection, present: set[str], cfg, tables: set[str], touched: bool,
         rebuild: bool = False) -> FactsPlan:
    """Decide how to write the facts; for a refresh, fill TEMP ``facts_refresh`` with the customers to redo.

    ``touched``: identity's list of re-resolved customers is complete (no full resolve since the
    facts were written). Band customers are found by a range filter on the staging timestamps
    (the UTC instants of the band's Shanghai midnights), then looked up in the lineage.
    """
    if rebuild:
        return FactsPlan(False, "rebuild asked for")
    if not {"mart.customer_facts", "mart.customer_facts_state"} <= tables:
        return FactsPlan(False, "no facts yet")
    if not touched:
        return FactsPlan(False, "identity resolved everyone")
    state = con.execute("SELECT as_of, fingerprint FROM mart.customer_facts_state").fetchall()
    if len(state) != 1 or state[0][1] != fingerprint(statements(present, cfg)):
        return FactsPlan(False, "facts SQL changed")
    con.execute("CREATE OR REPLACE TEMP TABLE facts_refresh AS "
                "SELECT DISTINCT customer_id FROM identity.touched_customers WHERE customer_id IS NOT NULL")
    before = state[0][0]
    if before != cfg.as_of:
        lo, hi = min(before, cfg.as_of), max(before, cfg.as_of)
        # local date in (lo - d, hi - d]  <=>  instant in [midnight(lo - d + 1), midnight(hi - d + 1))
        bands = [(_midnight(lo - timedelta(days=d - 1)), _midnight(hi - timedelta(days=d - 1))) for d in edges(cfg)]
        parts, params = [], []
        for rt in sorted(present):
            for col in dated_columns(rt):
                within = " OR ".join(f"({col}::TIMESTAMPTZ >= ? AND {col}::TIMESTAMPTZ < ?)" for _ in bands)
                parts.append(f"SELECT '{rt}' AS record_type, record_id FROM staging.{rt}_current WHERE {within}")
                params += [bound for band in bands for bound in band]
        con.execute(f"CREATE OR REPLACE TEMP TABLE facts_band AS {' UNION ALL '.join(parts)}", params)
        con.execute("""INSERT INTO facts_refresh
                       SELECT DISTINCT customer_id FROM identity.record_customer SEMI JOIN facts_band
                       USING (record_type, record_id) WHERE customer_id IS NOT NULL
                       EXCEPT SELECT customer_id FROM facts_refresh""")
        con.execute("DROP TABLE facts_band")
    return FactsPlan(True, f"as_of {before} -> {cfg.as_of}" if before != cfg.as_of else "same as_of")


def write(con: duckdb.DuckDBPyConnection, present: set[str], cfg, facts_plan: FactsPlan) -> None:
    """Write ``mart.customer_facts`` (whole, or the refresh set's rows) and its state row."""
    sql = statements(present, cfg)
    *steps, select = sql

    def params(sql: str) -> dict | None:  # DuckDB refuses a parameter the statement does not use
        return {"as_of": cfg.as_of} if AS_OF in sql else None

    def run(sql: str) -> None:
        con.execute(sql, params(sql))

    for step in steps:
        run(step)
    if facts_plan.incremental:
        con.execute("DELETE FROM mart.customer_facts WHERE customer_id IN (SELECT customer_id FROM facts_refresh)")
        run(f"INSERT INTO mart.customer_facts BY NAME {select}")
    else:
        create_table_as(con, "mart.customer_facts", select, params(select))
    con.execute("CREATE OR REPLACE TABLE mart.customer_facts_state AS SELECT ?::DATE AS as_of, ? AS fingerprint",
                [cfg.as_of, fingerprint(sql)])
    con.execute("DROP TABLE customer_channel; DROP TABLE customer_orders")
