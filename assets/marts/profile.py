"""``mart.customer_profile``: the single customer view and its CRM analytics, in SQL.

Definitions a marketer can check (thresholds in :class:`MartConfig`):

* **Orders**: Tmall orders paid (交易成功, or shipped 卖家已发货...), web-shop orders
  ``paid`` (refunded and cancelled excluded), and store receipts with a positive
  amount. ``total_spent_cny`` sums them.
  Only orders placed on or before ``as_of`` count, so a backfill never sees the future.
* **Dates**: day counts (recency, tenure, new, complaint age) use calendar days in
  Asia/Shanghai, the zone ``as_of`` is given in, whatever the server's time zone.
* **RFM**: recency in days since the last order (as of ``as_of``); R, F and M
  scores 1-5 by quintile among buyers (5 = most recent / most frequent / most spent):
  ``score = 1 + floor(5 x share of buyers doing strictly worse)``. Equal values share a
  score (one-order buyers all get F = 1), so a score never depends on a customer id.
* **ABC**: customers ranked by spend (all orders, or the last ``value_window_days``).
  ``A`` the top ``a_share`` (5%, at least one customer), ``B`` the rest of the top
  ``b_share`` (20%), ``C`` the others, non-buyers always included. Shares are rounded
  to whole customers; customers tied on spend share the better class.
* **Lifecycle**: ``potential`` never bought; ``lost`` no order for ``lost_days``;
  ``at_risk`` none for ``at_risk_days``; ``new`` first order within ``new_days``;
  ``loyal`` recent, no open complaint, and either ``loyal_min_orders`` (3) orders over
  ``loyal_min_span_days`` (180) or ``loyal_signal_min_orders`` (2) orders plus an
  emotional signal (NPS promoter, or reposts/mentions of the brand); otherwise ``active``.
* **CLV**: average order value x orders per year (over the customer's tenure, at
  least a quarter) x ``expected_years`` x a retention weight by lifecycle stage.
* **Satisfaction**: from the latest survey: ``satisfaction_gap`` = perceived -
  expected; ``csat`` = dimension scores weighted by ``csat_weights`` (a dimension left
  blank drops out of both sums); NPS class promoter 9-10, passive 7-8, detractor 0-6.
* **Churn alert**: gap <= ``alert_gap``, or CSAT < ``alert_csat``, or a complaint open
  longer than ``alert_open_days``.
* **Consent**: the latest explicit opt-in/opt-out across channels (Mini Program,
  web shop, store, lead forms, WeChat subscription); no statement means no consent.
  A statement without a date ranks before every dated one; an opt-in and an opt-out of
  the same moment and delivery mean no consent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb

from assets.marts import facts
from assets.marts.facts import CSAT_DIMENSIONS
from assets.marts.sources import event, local_date, src
from pipelines.storage import create_table_as

# Survivorship: the source trusted most for each golden attribute, first wins;
# ties go to the most recent record, then to the most frequent value.
TRUST = {
    "phone": ("members", "miniprogram", "webshop_orders", "leads", "tmall_orders", "transactions", "tickets",
              "surveys"),
    "name": ("members", "leads", "webshop_orders", "tmall_orders"),
    "email": ("webshop_orders", "members"),
    "birthday": ("members",),
    "address": ("tmall_orders",),
    "gender": ("members", "followers", "users"),
    "place": ("tmall_orders", "followers", "users"),
}
# (record type, column holding the attribute's token, ciphertext, display, condition)
GOLDEN_SOURCES = {
    "phone": [(t, "phone_token", "phone_enc", "phone_masked", "phone_status = 'ok' AND phone_is_mobile")
              for t in TRUST["phone"]],
    "name": [(t, "name_token", "name_enc", "NULL", "name_enc IS NOT NULL") for t in TRUST["name"]],
    "email": [(t, "email_token", "email_enc", "email_masked", "email_enc IS NOT NULL") for t in TRUST["email"]],
    "birthday": [("members", "NULL", "birthday_enc", "birth_month::VARCHAR", "birthday_enc IS NOT NULL")],
    "address": [("tmall_orders", "NULL", "address_enc", "NULL", "address_enc IS NOT NULL")],
    "gender": [(t, "NULL", "NULL", "gender", "gender IS NOT NULL") for t in TRUST["gender"]],
    "place": [(t, "NULL", "NULL", "province || coalesce('|' || city, '')", "province IS NOT NULL")
              for t in TRUST["place"]],
}
@dataclass(frozen=True)
class MartConfig:
    """Analytics thresholds; every field is documented in the module docstring and the README."""

    as_of: date
    a_share: float = 0.05
    b_share: float = 0.20
    value_window_days: int | None = None  # ABC ranks spend of the last N days; None = all orders
    new_days: int = 90
    at_risk_days: int = 180
    lost_days: int = 365
    loyal_min_orders: int = 3
    loyal_min_span_days: int = 180
    loyal_signal_min_orders: int = 2
    expected_years: float = 3.0
    csat_weights: dict = field(default_factory=lambda: {"price": 0.2, "timeliness": 0.3, "quality": 0.3,
                                                        "attitude": 0.2})
    alert_gap: int = -2
    alert_csat: float = 3.0
    alert_open_days: int = 7
    preferred_window_days: int = 365


def _golden_sql(present: set[str], lineage: str = "rc") -> str:
    parts = []
    for attr, sources in GOLDEN_SOURCES.items():
        for rank, (rt, tok, enc, disp, cond) in enumerate(sources):
            if rt not in present:
                continue
            parts.append(
                f"SELECT rc.customer_id, '{attr}' AS attribute, {tok}::VARCHAR AS token, {enc}::VARCHAR AS ciphertext, "
                f"{disp}::VARCHAR AS display, '{rt}' AS source_record_type, s.record_id AS source_record_id, "
                f"{rank} AS trust_rank, s.{event(rt)}::TIMESTAMPTZ AS observed_at "
                f"{src(rt, lineage)} "
                f"WHERE {cond}"
            )
    return " UNION ALL ".join(parts)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name IN ('identity', 'mart')").fetchall()}


def touched_customers(con: duckdb.DuckDBPyConnection, tables: set[str]) -> bool:
    """True when ``mart.golden_attributes`` can be refreshed for ``identity.touched_customers`` only.

    Identity lists every customer id whose records it re-resolved since the mart last
    consumed the list (a NULL row after a full run means everyone). Golden attributes
    depend on a customer's records alone, not on the analytics date, so every other
    customer's are still right.
    """
    if not {"identity.touched_customers", "mart.golden_attributes"} <= tables:
        return False
    return not con.execute("SELECT count(*) FROM identity.touched_customers WHERE customer_id IS NULL").fetchall()[0][0]


def build_golden(con: duckdb.DuckDBPyConnection, present: set[str], incremental: bool) -> None:
    """``mart.golden_attributes``: each chosen value with the record it came from (provenance).

    With ``incremental`` (:func:`touched_customers`) only the touched customers' rows are
    rebuilt; the choice is the same as a full rebuild's.

    The winner per customer and attribute is the candidate first by trust, then recency
    (newest dated record), then frequency (how many of the customer's records carry the
    same value), then record id. It is found with two hash aggregations over narrow keys,
    not two window sorts over every wide candidate row (10.7M at 10M landing rows): the
    first counts each distinct value and keeps its best record; the second keeps the best
    value. Within one value the count is the same for every record, so the best record of
    the winning value is the winning record. The wide columns (ciphertext...) are fetched
    only for the winners, by the candidate's ``rowid``.

    Sort keys are compared field by field: a missing date sorts after every date
    (``undated``), and negated epoch microseconds put the newest first.
    """
    lineage = "rc"
    if incremental:
        lineage = "golden_rc"
        con.execute("CREATE OR REPLACE TEMP TABLE golden_rc AS SELECT * FROM rc "
                    "SEMI JOIN identity.touched_customers USING (customer_id)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE golden_candidates AS {_golden_sql(present, lineage)}")
    chosen = """
        WITH per_value AS (
            SELECT customer_id, attribute, count(*) AS n,
                   min({'trust_rank': trust_rank, 'undated': observed_at IS NULL,
                        'newest_first': coalesce(-epoch_us(observed_at), 0), 'record_id': source_record_id,
                        'row': rowid}) AS best
            FROM golden_candidates
            GROUP BY customer_id, attribute, coalesce(token, ciphertext, display)),
        chosen AS (
            SELECT arg_min(best.row, (best.trust_rank, best.undated, best.newest_first, -n, best.record_id)) AS row
            FROM per_value
            GROUP BY customer_id, attribute)
        SELECT c.customer_id, c.attribute, c.token, c.ciphertext, c.display, c.source_record_type,
               c.source_record_id, c.observed_at, 'trust=' || c.trust_rank || ', recency, frequency' AS rule
        FROM chosen JOIN golden_candidates c ON c.rowid = chosen.row
    """
    if incremental:
        con.execute("DELETE FROM mart.golden_attributes WHERE customer_id IN "
                    "(SELECT customer_id FROM identity.touched_customers)")
        con.execute(f"INSERT INTO mart.golden_attributes BY NAME {chosen}")
        con.execute("DROP TABLE golden_rc")
    else:
        create_table_as(con, "mart.golden_attributes", chosen)
    con.execute("DROP TABLE golden_candidates")


@dataclass(frozen=True)
class MartBuild:
    """How a mart build went: ``facts`` and ``golden`` say whether each was refreshed or rebuilt."""

    facts: str  # "refreshed" or "rebuilt"
    reason: str
    golden: str
    customers_refreshed: int  # every customer on a rebuild
    customers: int


def build_profile(con: duckdb.DuckDBPyConnection, present: set[str], cfg: MartConfig,
                  rebuild: bool = False) -> MartBuild:
    """Build ``mart.customer_profile`` (with ``mart.golden_attributes`` and ``mart.customer_facts``).

    Golden attributes and facts are refreshed for the customers identity re-resolved (and,
    for facts, those a move of ``as_of`` reaches), or rebuilt when that list is incomplete;
    see :mod:`assets.marts.facts`. The date pass and the profile are then computed for
    everyone from those two narrow-to-wide tables, in steps through temporary tables (scores
    per buyer, analytics per customer, then the wide profile), so that the rank windows sort
    narrow rows, never the wide profile. ``rebuild`` recomputes everything whatever the state.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS mart")
    w = cfg.csat_weights
    if set(w) != set(CSAT_DIMENSIONS) or min(w.values()) < 0 or sum(w.values()) <= 0:
        raise ValueError(f"csat_weights needs non-negative weights for {CSAT_DIMENSIONS}, not all zero: {w}")
    tables = _tables(con)
    if rebuild:
        tables -= {"mart.golden_attributes"}
    touched = touched_customers(con, tables)
    facts_plan = facts.plan(con, present, cfg, tables, touched, rebuild)
    # The lineage every step reads: only the refreshed customers' records when facts are refreshed.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE rc AS
                    SELECT * FROM identity.record_customer WHERE customer_id IS NOT NULL
                    {"AND customer_id IN (SELECT customer_id FROM facts_refresh)" if facts_plan.incremental else ""}""")
    build_golden(con, present, touched)
    facts.write(con, present, cfg, facts_plan)
    refreshed = (con.execute("SELECT count(*) FROM facts_refresh").fetchall()[0][0] if facts_plan.incremental
                 else None)
    _date_pass(con, cfg)
    _assemble(con, facts_plan.incremental and "mart.customer_profile" in tables)
    if "identity.touched_customers" in tables:
        con.execute("DELETE FROM identity.touched_customers")  # consumed: golden rows and facts match identity now
    customers = con.execute("SELECT count(*) FROM mart.customer_profile").fetchall()[0][0]
    con.execute("DROP TABLE rc")
    if facts_plan.incremental:
        con.execute("DROP TABLE facts_refresh")
    return MartBuild("refreshed" if facts_plan.incremental else "rebuilt", facts_plan.reason,
                     "refreshed" if touched else "rebuilt",
                     customers if refreshed is None else refreshed, customers)


def _date_pass(con: duckdb.DuckDBPyConnection, cfg: MartConfig) -> None:
    """TEMP ``customer_analytics``: the facts turned into day counts, ranks, stages and alerts for ``as_of``.

    RFM scores and ABC class are ranked on a narrow table (buyers and four measures);
    quintile = 1 + floor(5 x buyers strictly worse / buyers): rank() gives ties the same
    score. Non-buyers have no RFM score and are always C. Only spend above 0 can make A or
    B, and everyone ahead of such a buyer is a buyer too, so its rank among buyers is its
    rank among all customers.
    """
    as_of = f"DATE '{cfg.as_of.isoformat()}'"
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE customer_scores AS
    WITH customers AS (SELECT count(*) AS customers_total FROM mart.customer_facts),
    buyers AS (
        SELECT customer_id, orders_count, total_spent_cny, value_spent_cny,
               date_diff('day', {local_date('last_order_at')}, {as_of}) AS recency_days
        FROM mart.customer_facts WHERE orders_count > 0),
    ranked AS (
        SELECT customer_id, value_spent_cny,
            1 + 5 * (rank() OVER (ORDER BY recency_days DESC) - 1) // count(*) OVER () AS r_score,
            1 + 5 * (rank() OVER (ORDER BY orders_count) - 1) // count(*) OVER () AS f_score,
            1 + 5 * (rank() OVER (ORDER BY total_spent_cny) - 1) // count(*) OVER () AS m_score,
            rank() OVER (ORDER BY value_spent_cny DESC) AS value_rank
        FROM buyers)
    SELECT customer_id, r_score, f_score, m_score,
        CASE WHEN value_spent_cny > 0 AND value_rank <= greatest(1, round({cfg.a_share} * customers_total)) THEN 'A'
             WHEN value_spent_cny > 0 AND value_rank <= round({cfg.b_share} * customers_total) THEN 'B'
             ELSE 'C' END AS value_class
    FROM ranked, customers""")
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE customer_analytics AS
    WITH joined AS (
        SELECT f.* EXCLUDE (oldest_open_complaint_at, advocacy),
               date_diff('day', {local_date('f.last_order_at')}, {as_of}) AS recency_days,
               date_diff('day', {local_date('f.first_order_at')}, {as_of}) AS tenure_days,
               date_diff('day', {local_date('f.first_order_at')}, {local_date('f.last_order_at')}) AS order_span_days,
               date_diff('day', {local_date('f.oldest_open_complaint_at')}, {as_of}) AS oldest_open_complaint_days,
               f.advocacy, sc.r_score, sc.f_score, sc.m_score, coalesce(sc.value_class, 'C') AS value_class
        FROM mart.customer_facts f LEFT JOIN customer_scores sc USING (customer_id)),
    staged AS (
        SELECT *,
            CASE WHEN orders_count = 0 THEN 'potential'
                 WHEN recency_days > {cfg.lost_days} THEN 'lost'
                 WHEN recency_days > {cfg.at_risk_days} THEN 'at_risk'
                 WHEN tenure_days <= {cfg.new_days} THEN 'new'
                 WHEN open_complaints = 0 AND (
                      (orders_count >= {cfg.loyal_min_orders} AND order_span_days >= {cfg.loyal_min_span_days})
                   OR (orders_count >= {cfg.loyal_signal_min_orders}
                       AND (coalesce(nps_latest >= 9, FALSE) OR advocacy > 0))) THEN 'loyal'
                 ELSE 'active' END AS lifecycle_stage
        FROM joined)
    SELECT customer_id, channels, wechat_unionid_token, wechat_subscribed, weibo_uid, member_card_count,
           preferred_channel, marketing_consent,
           first_seen_at, last_seen_at, orders_count, total_spent_cny, value_spent_cny, avg_order_value_cny,
           first_order_at, last_order_at, recency_days, r_score, f_score, m_score,
           CASE WHEN r_score IS NULL THEN NULL
                WHEN r_score >= 4 AND f_score >= 4 AND m_score >= 4 THEN 'champions'
                WHEN r_score >= 3 AND f_score >= 3 THEN 'loyal_customers'
                WHEN r_score >= 4 AND f_score <= 2 THEN 'new_or_promising'
                WHEN r_score <= 2 AND f_score >= 3 THEN 'cant_lose_them'
                WHEN r_score <= 2 THEN 'hibernating'
                ELSE 'needs_attention' END AS rfm_segment,
           value_class, lifecycle_stage,
           round(coalesce(avg_order_value_cny, 0)
                 * orders_count / greatest(tenure_days / 365.25, 0.25)
                 * {cfg.expected_years}
                 * CASE lifecycle_stage WHEN 'loyal' THEN 1.0 WHEN 'active' THEN 0.8 WHEN 'new' THEN 0.6
                        WHEN 'at_risk' THEN 0.3 ELSE 0.0 END, 2) AS clv_cny,
           tickets_count, complaints_count, open_complaints, last_complaint_at,
           satisfaction_gap, csat, nps_latest,
           CASE WHEN nps_latest >= 9 THEN 'promoter' WHEN nps_latest >= 7 THEN 'passive'
                WHEN nps_latest IS NOT NULL THEN 'detractor' END AS nps_class,
           coalesce(satisfaction_gap <= {cfg.alert_gap}, FALSE) OR coalesce(csat < {cfg.alert_csat}, FALSE)
             OR coalesce(oldest_open_complaint_days > {cfg.alert_open_days}, FALSE)
             AS churn_alert,
           source_records, updated_at, {as_of} AS snapshot_date
    FROM staged""")
    con.execute("DROP TABLE customer_scores")


GOLDEN_PIVOT = """
    SELECT customer_id,
        any_value(token) FILTER (attribute = 'phone') AS phone_token,
        any_value(display) FILTER (attribute = 'phone') AS phone_masked,
        any_value(ciphertext) FILTER (attribute = 'phone') AS phone_enc,
        any_value(ciphertext) FILTER (attribute = 'name') AS name_enc,
        any_value(ciphertext) FILTER (attribute = 'email') AS email_enc,
        any_value(display) FILTER (attribute = 'email') AS email_masked,
        any_value(ciphertext) FILTER (attribute = 'birthday') AS birthday_enc,
        any_value(display) FILTER (attribute = 'birthday')::TINYINT AS birth_month,
        any_value(ciphertext) FILTER (attribute = 'address') AS address_enc,
        any_value(display) FILTER (attribute = 'gender') AS gender,
        split_part(any_value(display) FILTER (attribute = 'place'), '|', 1) AS province,
        nullif(split_part(any_value(display) FILTER (attribute = 'place'), '|', 2), '') AS city
    FROM mart.golden_attributes {where} GROUP BY customer_id"""


def _assemble(con: duckdb.DuckDBPyConnection, edit: bool) -> None:
    """``mart.customer_profile``: the golden attributes side by side, then the analytics.

    The pivot reads one row per customer and attribute, so ``any_value`` picks the only
    value (``max`` on the ciphertext strings took twice as long at 10M records).

    With ``edit`` (the facts were refreshed and a profile exists) the profile is edited, not
    written anew (rewriting every ciphertext column was most of an incremental run's mart at
    10M): the refreshed customers' rows are replaced whole, and everyone else's date-pass columns
    (the analytics columns that are not facts: recency, scores, classes, stages, alerts,
    snapshot date) are updated where they moved.
    """
    profile = """
        SELECT a.customer_id, g.phone_masked, g.phone_token, g.phone_enc, g.name_enc, g.email_enc, g.email_masked,
               g.birthday_enc, g.address_enc, g.gender, g.birth_month, g.province, g.city,
               a.* EXCLUDE (customer_id)
        FROM {analytics} a LEFT JOIN ({pivot}) g USING (customer_id)"""
    if not edit:
        # in no particular order, as an edited profile is: sorting the wide rows by customer id was
        # half of writing the 10M profile (7 of 14 s), and a look-up by id scans one column either way
        create_table_as(con, "mart.customer_profile",
                        profile.format(analytics="customer_analytics", pivot=GOLDEN_PIVOT.format(where="")))
        con.execute("DROP TABLE customer_analytics")
        return
    refresh = "customer_id IN (SELECT customer_id FROM facts_refresh)"
    con.execute(f"DELETE FROM mart.customer_profile WHERE {refresh}")
    rows = profile.format(analytics=f"(SELECT * FROM customer_analytics WHERE {refresh})",
                          pivot=GOLDEN_PIVOT.format(where=f"WHERE {refresh}"))
    con.execute(f"INSERT INTO mart.customer_profile BY NAME {rows}")
    facts_columns = _columns(con, "mart.customer_facts")
    moved = [c for c in _columns(con, "customer_analytics") if c not in facts_columns]
    con.execute(f"""
        UPDATE mart.customer_profile p SET {", ".join(f"{c} = a.{c}" for c in moved)}
        FROM customer_analytics a
        WHERE p.customer_id = a.customer_id AND a.customer_id NOT IN (SELECT customer_id FROM facts_refresh)
          AND ({" OR ".join(f"p.{c} IS DISTINCT FROM a.{c}" for c in moved)})""")
    con.execute("DROP TABLE customer_analytics")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
