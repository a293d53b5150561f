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
EVENT_COLUMN = {"followers": "subscribed_at", "miniprogram": "authorized_at", "users": "weibo_created_at"}
# ``as_of`` is a Shanghai calendar date (see pipelines.resources.as_of_date); timestamps are stored in UTC.
LOCAL_TZ = "Asia/Shanghai"
CSAT_DIMENSIONS = ("price", "timeliness", "quality", "attitude")


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


def event(record_type: str) -> str:
    return EVENT_COLUMN.get(record_type, "event_at")


def local_date(expr: str) -> str:
    """SQL for the Shanghai calendar date of a TIMESTAMPTZ.

    A bare ``::DATE`` uses the session time zone (the server's), which would shift
    recency and day counts by one for anything between 16:00 and 24:00 UTC.
    """
    return f"timezone('{LOCAL_TZ}', {expr})::DATE"


def src(record_type: str, lineage: str = "rc") -> str:
    """``FROM`` clause: current staging rows of one type joined to their customer (alias ``s`` and ``rc``)."""
    return (f"FROM staging.{record_type}_current s "
            f"JOIN {lineage} rc ON rc.record_type = '{record_type}' AND rc.record_id = s.record_id")


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


def build_golden(con: duckdb.DuckDBPyConnection, present: set[str]) -> None:
    """``mart.golden_attributes``: each chosen value with the record it came from (provenance).

    After an incremental identity run only the touched customers' rows are rebuilt
    (:func:`touched_customers`); the choice is the same as a full rebuild's.

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
    tables = _tables(con)
    incremental = touched_customers(con, tables)
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
        con.execute(f"CREATE OR REPLACE TABLE mart.golden_attributes AS {chosen}")
    con.execute("DROP TABLE golden_candidates")
    if "identity.touched_customers" in tables:
        con.execute("DELETE FROM identity.touched_customers")  # consumed: the golden rows match identity now


def _orders_sql(present: set[str]) -> str:
    parts = []
    if "tmall_orders" in present:
        parts.append(f"""SELECT rc.customer_id, 'ecommerce' AS channel, coalesce(paid_at, event_at) AS ts, amount_cny
            {src("tmall_orders")}
            WHERE (order_status = '交易成功' OR order_status LIKE '卖家已发货%') AND amount_cny > 0""")
    if "webshop_orders" in present:
        parts.append(f"""SELECT rc.customer_id, 'ecommerce', event_at, amount_cny
            {src("webshop_orders")}
            WHERE lower(order_status) = 'paid' AND amount_cny > 0""")
    if "transactions" in present:
        parts.append(f"""SELECT rc.customer_id, 'store', event_at, amount_cny
            {src("transactions")}
            WHERE amount_cny > 0""")
    none = "SELECT NULL::VARCHAR, NULL::VARCHAR, NULL::TIMESTAMPTZ, NULL::DOUBLE WHERE FALSE"
    return " UNION ALL ".join(parts) or none


def _consent_sql(present: set[str]) -> str:
    ts = {"miniprogram": "authorized_at", "webshop_orders": "event_at", "leads": "event_at",
          "members": "greatest(event_at, batch_date::TIMESTAMPTZ)",
          "followers": "greatest(subscribed_at, batch_date::TIMESTAMPTZ)"}
    col = {"followers": "subscribed"}
    parts = [
        f"SELECT rc.customer_id, {col.get(rt, 'marketing_opt_in')} AS opt_in, "
        f"coalesce({ts[rt]}, '-infinity'::TIMESTAMPTZ) AS ts, delivery_seq "
        f"{src(rt)} "
        f"WHERE {col.get(rt, 'marketing_opt_in')} IS NOT NULL"
        for rt in ts if rt in present
    ]
    return " UNION ALL ".join(parts) or ("SELECT NULL::VARCHAR AS customer_id, NULL::BOOLEAN AS opt_in, "
                                         "NULL::TIMESTAMPTZ AS ts, 0 AS delivery_seq WHERE FALSE")


def _activity_sql(present: set[str]) -> str:
    return " UNION ALL ".join(
        f"SELECT rc.customer_id, rc.channel, s.{event(rt)}::TIMESTAMPTZ AS ts, s.loaded_at "
        f"FROM staging.{rt}_current s JOIN rc ON rc.record_type = '{rt}' AND rc.record_id = s.record_id"
        for rt in sorted(present)
    )


def build_profile(con: duckdb.DuckDBPyConnection, present: set[str], cfg: MartConfig) -> None:
    """Rebuild ``mart.customer_profile`` (and ``mart.golden_attributes``) from staging + identity.

    Built in steps through temporary tables (activity per customer and channel, orders per
    buyer, scores per buyer, the narrow analytics per customer, then the wide profile) so
    that few large operators are live at once and the rank windows sort narrow rows, never
    the wide profile: at 10M landing rows the four ranks over the wide rows took most of the
    mart's time and memory.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS mart")
    con.execute("""CREATE OR REPLACE TEMP TABLE rc AS
                   SELECT * FROM identity.record_customer WHERE customer_id IS NOT NULL""")
    w = cfg.csat_weights
    if set(w) != set(CSAT_DIMENSIONS) or min(w.values()) < 0 or sum(w.values()) <= 0:
        raise ValueError(f"csat_weights needs non-negative weights for {CSAT_DIMENSIONS}, not all zero: {w}")
    build_golden(con, present)
    # A blank dimension drops out of both the weighted sum and the sum of weights.
    csat_num = " + ".join(f"coalesce({w[d]} * score_{d}, 0)" for d in CSAT_DIMENSIONS)
    csat_den = " + ".join(f"CASE WHEN score_{d} IS NOT NULL THEN {w[d]} ELSE 0 END" for d in CSAT_DIMENSIONS)
    as_of = f"DATE '{cfg.as_of.isoformat()}'"
    in_window = ("TRUE" if cfg.value_window_days is None
                 else f"{local_date('ts')} > {as_of} - INTERVAL {int(cfg.value_window_days)} DAY")
    tickets = "tickets" in present
    surveys = "surveys" in present
    interactions = "interactions" in present
    # Step 1: every record's event, counted once per customer and channel. The customer's
    # reach (channels, first/last seen) and preferred channel both read this small table.
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE customer_channel AS
    SELECT customer_id, channel, count(*) AS n,
           count(*) FILTER ({local_date('ts')} > {as_of} - INTERVAL {cfg.preferred_window_days} DAY) AS recent,
           min(ts) AS first_at, max(ts) AS last_at, max(loaded_at) AS loaded_at
    FROM ({_activity_sql(present)})
    GROUP BY customer_id, channel""")
    # Step 2: paid orders up to as_of, one row per buyer. Only customers with an activity row get
    # a profile, so only they count as buyers in the ranks below.
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE customer_orders AS
    WITH orders AS (SELECT * FROM ({_orders_sql(present)}) o(customer_id, channel, ts, amount_cny)
                    WHERE {local_date('ts')} <= {as_of})
    SELECT customer_id, count(*) AS orders_count, round(sum(amount_cny), 2) AS total_spent_cny,
           coalesce(round(sum(amount_cny) FILTER ({in_window}), 2), 0) AS value_spent_cny,
           min(ts) AS first_order_at, max(ts) AS last_order_at,
           date_diff('day', {local_date('max(ts)')}, {as_of}) AS recency_days
    FROM orders
    WHERE customer_id IN (SELECT customer_id FROM customer_channel)
    GROUP BY customer_id""")
    # Step 3: RFM scores and ABC class, ranked on a narrow table (buyers and four measures)
    # rather than on the wide profile: the sorts then move a few bytes per customer.
    # quintile = 1 + floor(5 x buyers strictly worse / buyers): rank() gives ties the same score.
    # Non-buyers have no RFM score and are always C. Only spend above 0 can make A or B, and
    # everyone ahead of such a buyer is a buyer too, so its rank among buyers is its rank
    # among all customers.
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE customer_scores AS
    WITH customers AS (SELECT count(DISTINCT customer_id) AS customers_total FROM customer_channel),
    ranked AS (
        SELECT customer_id, value_spent_cny,
            1 + 5 * (rank() OVER (ORDER BY recency_days DESC) - 1) // count(*) OVER () AS r_score,
            1 + 5 * (rank() OVER (ORDER BY orders_count) - 1) // count(*) OVER () AS f_score,
            1 + 5 * (rank() OVER (ORDER BY total_spent_cny) - 1) // count(*) OVER () AS m_score,
            rank() OVER (ORDER BY value_spent_cny DESC) AS value_rank
        FROM customer_orders)
    SELECT customer_id, r_score, f_score, m_score,
        CASE WHEN value_spent_cny > 0 AND value_rank <= greatest(1, round({cfg.a_share} * customers_total)) THEN 'A'
             WHEN value_spent_cny > 0 AND value_rank <= round({cfg.b_share} * customers_total) THEN 'B'
             ELSE 'C' END AS value_class
    FROM ranked, customers""")
    # Step 4: the analytics, one row per customer, joining the narrow per-customer pieces.
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE customer_analytics AS
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
        FROM (
            SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS unionid_token, NULL::BOOLEAN AS subscribed,
                   NULL::TIMESTAMPTZ AS ts WHERE FALSE
            {"UNION ALL SELECT rc.customer_id, unionid_token, subscribed, "
             "greatest(subscribed_at, batch_date::TIMESTAMPTZ) " + src("followers") if "followers" in present else ""}
            {"UNION ALL SELECT rc.customer_id, unionid_token, NULL, authorized_at " + src("miniprogram")
             if "miniprogram" in present else ""})
        GROUP BY customer_id),
    wb AS (
        SELECT customer_id, arg_max(weibo_uid, ts) AS weibo_uid_any FROM (
            {" UNION ALL ".join(
                f"SELECT rc.customer_id, weibo_uid, event_at AS ts {src(rt)} WHERE weibo_uid IS NOT NULL"
                for rt in ("interactions", "leads") if rt in present)
             or "SELECT NULL::VARCHAR customer_id, NULL::VARCHAR weibo_uid, NULL::TIMESTAMPTZ ts WHERE FALSE"})
        GROUP BY customer_id),
    consent AS (
        SELECT customer_id, arg_max(opt_in, (ts, delivery_seq, NOT opt_in)) AS marketing_consent
        FROM ({_consent_sql(present)}) GROUP BY customer_id),
    svc AS (
        {f'''SELECT rc.customer_id, count(*) AS tickets_count,
               count(*) FILTER (category = 'complaint') AS complaints_count,
               count(*) FILTER (category = 'complaint' AND coalesce(ticket_status, 'open') = 'open'
                                AND resolved_at IS NULL) AS open_complaints,
               min(event_at) FILTER (category = 'complaint' AND coalesce(ticket_status, 'open') = 'open'
                                     AND resolved_at IS NULL) AS oldest_open_complaint_at,
               max(event_at) FILTER (category = 'complaint') AS last_complaint_at
        {src("tickets")}
        WHERE {local_date('event_at')} <= {as_of}
        GROUP BY rc.customer_id''' if tickets else
        "SELECT NULL::VARCHAR customer_id, 0 tickets_count, 0 complaints_count, 0 open_complaints, "
        "NULL::TIMESTAMPTZ oldest_open_complaint_at, NULL::TIMESTAMPTZ last_complaint_at WHERE FALSE"}),
    srv AS (
        {f'''SELECT rc.customer_id,
               perceived_score - expected_score AS satisfaction_gap,
               round(({csat_num}) / nullif({csat_den}, 0), 2) AS csat,
               nps AS nps_latest
        {src("surveys")}
        WHERE {local_date('event_at')} <= {as_of}
        QUALIFY row_number() OVER (PARTITION BY rc.customer_id ORDER BY event_at DESC, s.record_id DESC) = 1'''
        if surveys else "SELECT NULL::VARCHAR customer_id, NULL::INT satisfaction_gap, NULL::DOUBLE csat, "
        "NULL::INT nps_latest WHERE FALSE"}),
    adv AS (
        {f'''SELECT rc.customer_id, count(*) FILTER (interaction_type IN ('repost', 'mention')) AS advocacy
        {src("interactions")}
        GROUP BY rc.customer_id''' if interactions else
        "SELECT NULL::VARCHAR customer_id, 0 advocacy WHERE FALSE"}),
    joined AS (
        SELECT b.customer_id, b.channels, wx.wechat_unionid_token, wx.wechat_subscribed,
               coalesce(r.weibo_uid_user, wb.weibo_uid_any) AS weibo_uid, r.member_card_count,
               p.preferred_channel, coalesce(c.marketing_consent, FALSE) AS marketing_consent,
               b.first_seen_at, b.last_seen_at,
               coalesce(o.orders_count, 0) AS orders_count, coalesce(o.total_spent_cny, 0) AS total_spent_cny,
               coalesce(o.value_spent_cny, 0) AS value_spent_cny,
               round(o.total_spent_cny / o.orders_count, 2) AS avg_order_value_cny,
               o.first_order_at, o.last_order_at,
               o.recency_days,
               date_diff('day', {local_date('o.first_order_at')}, {as_of}) AS tenure_days,
               date_diff('day', {local_date('o.first_order_at')}, {local_date('o.last_order_at')}) AS order_span_days,
               coalesce(s.tickets_count, 0) AS tickets_count, coalesce(s.complaints_count, 0) AS complaints_count,
               coalesce(s.open_complaints, 0) AS open_complaints, s.last_complaint_at,
               date_diff('day', {local_date('s.oldest_open_complaint_at')}, {as_of}) AS oldest_open_complaint_days,
               v.satisfaction_gap, v.csat, v.nps_latest, coalesce(a.advocacy, 0) AS advocacy,
               sc.r_score, sc.f_score, sc.m_score, coalesce(sc.value_class, 'C') AS value_class,
               b.source_records, b.updated_at
        FROM base b LEFT JOIN pref p USING (customer_id)
        LEFT JOIN reach r USING (customer_id) LEFT JOIN wx USING (customer_id) LEFT JOIN wb USING (customer_id)
        LEFT JOIN consent c USING (customer_id) LEFT JOIN customer_orders o USING (customer_id)
        LEFT JOIN customer_scores sc USING (customer_id)
        LEFT JOIN svc s USING (customer_id) LEFT JOIN srv v USING (customer_id) LEFT JOIN adv a USING (customer_id)),
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
    # Step 5: the profile: the golden attributes side by side, then the analytics. The wide
    # columns (ciphertext, tokens) are joined and sorted in a statement of their own.
    con.execute("""
    CREATE OR REPLACE TABLE mart.customer_profile AS
    WITH g AS (
        SELECT customer_id,
            max(token) FILTER (attribute = 'phone') AS phone_token,
            max(display) FILTER (attribute = 'phone') AS phone_masked,
            max(ciphertext) FILTER (attribute = 'phone') AS phone_enc,
            max(ciphertext) FILTER (attribute = 'name') AS name_enc,
            max(ciphertext) FILTER (attribute = 'email') AS email_enc,
            max(display) FILTER (attribute = 'email') AS email_masked,
            max(ciphertext) FILTER (attribute = 'birthday') AS birthday_enc,
            max(display) FILTER (attribute = 'birthday')::TINYINT AS birth_month,
            max(ciphertext) FILTER (attribute = 'address') AS address_enc,
            max(display) FILTER (attribute = 'gender') AS gender,
            split_part(max(display) FILTER (attribute = 'place'), '|', 1) AS province,
            nullif(split_part(max(display) FILTER (attribute = 'place'), '|', 2), '') AS city
        FROM mart.golden_attributes GROUP BY customer_id)
    SELECT a.customer_id, g.phone_masked, g.phone_token, g.phone_enc, g.name_enc, g.email_enc, g.email_masked,
           g.birthday_enc, g.address_enc, g.gender, g.birth_month, g.province, g.city,
           a.* EXCLUDE (customer_id)
    FROM customer_analytics a LEFT JOIN g USING (customer_id)
    ORDER BY customer_id
    """)
    con.execute("DROP TABLE customer_channel; DROP TABLE customer_orders; DROP TABLE customer_scores; "
                "DROP TABLE customer_analytics")
