"""Marketer-facing views with plain names and column comments, and the profile's self-check.

``mart.customers`` is the profile with ciphertext columns removed: what a marketer
queries. The others answer the questions asked every week. :func:`profile_consistency`
gathers the facts the profile's asset check judges (shares add up, ids unique...).
"""

from __future__ import annotations

import duckdb

from assets.marts.profile import MartConfig

COMMENTS = {
    "customer_id": "Unified customer id; stable from run to run (merges keep the oldest id)",
    "phone_masked": "Display phone, e.g. 138****5678; never the full number",
    "phone_token": "Keyed HMAC-SHA256 token of the E.164 phone: join/look-up key, not reversible",
    "phone_enc": "AES-GCM ciphertext of the phone (key id prefix); only `scv reveal` opens it",
    "name_enc": "AES-GCM ciphertext of the name", "email_enc": "AES-GCM ciphertext of the email",
    "birthday_enc": "AES-GCM ciphertext of the birthday", "address_enc": "AES-GCM ciphertext of the address",
    "email_masked": "Display email, e.g. w***@example.com",
    "gender": "male / female / NULL (unknown)", "birth_month": "1-12, for birthday offers",
    "province": "Province without suffix (浙江, 广东)", "city": "City without suffix (杭州)",
    "channels": "Channels where the customer appears: wechat, weibo, ecommerce, store, service",
    "wechat_unionid_token": "Token of the WeChat unionid", "wechat_subscribed": "Follows the Official Account now",
    "weibo_uid": "Weibo uid", "member_card_count": "Store member cards held",
    "preferred_channel": "Channel with most records in the last 365 days (ties: most records overall, then most "
                         "recent)",
    "marketing_consent": "Latest explicit marketing opt-in across channels; FALSE when never given",
    "first_seen_at": "First record of any kind (UTC)", "last_seen_at": "Latest record of any kind (UTC)",
    "orders_count": "Paid, not refunded/cancelled/closed orders: Tmall, web shop and store receipts",
    "total_spent_cny": "Sum of those orders in CNY", "avg_order_value_cny": "total_spent_cny / orders_count",
    "value_spent_cny": "Spend ranked for value_class: orders in the value window (all orders unless configured)",
    "first_order_at": "First paid order (UTC)", "last_order_at": "Latest paid order (UTC)",
    "recency_days": "Days from the last order to snapshot_date (Shanghai calendar days)",
    "r_score": "Recency quintile 1-5 among buyers (5 = most recent); 1 + floor(5 x share of buyers less recent)",
    "f_score": "Frequency quintile 1-5 among buyers; equal order counts share a score (one-order buyers: 1)",
    "m_score": "Monetary quintile 1-5 among buyers; equal spend shares a score",
    "rfm_segment": "champions, loyal_customers, new_or_promising, cant_lose_them, hibernating, needs_attention",
    "value_class": "ABC: A = top 5% by value_spent_cny, B = rest of the top 20%, C = the other 80% and non-buyers; "
                   "equal spend shares the better class",
    "lifecycle_stage": "potential, new, active, loyal, at_risk, lost (see README for thresholds)",
    "clv_cny": "Estimated lifetime value: AOV x orders/year x expected years x retention weight",
    "tickets_count": "Service tickets", "complaints_count": "Tickets with category complaint",
    "open_complaints": "Complaints not yet resolved", "last_complaint_at": "Latest complaint (UTC)",
    "satisfaction_gap": "Latest survey: perceived minus expected score (negative = disappointed)",
    "csat": "Latest survey: weighted mean of the price, timeliness, quality, attitude scores (1-5); default weights "
            "0.2 / 0.3 / 0.3 / 0.2, a blank score drops out",
    "nps_latest": "Latest would-recommend score 0-10", "nps_class": "promoter 9-10, passive 7-8, detractor 0-6",
    "churn_alert": "TRUE when the gap, CSAT or an open complaint's age crosses the configured line (defaults: "
                   "satisfaction_gap <= -2, csat < 3, complaint open more than 7 days)",
    "source_records": "Source records tied to this customer (see identity.record_customer)",
    "updated_at": "When the newest of those records was loaded", "snapshot_date": "As-of date of the analytics",
}


# mart.customer_facts columns the profile does not carry (the date pass turns them into others)
FACTS_COMMENTS = {
    "oldest_open_complaint_at": "Oldest complaint still open (UTC); its age drives churn_alert",
    "advocacy": "Reposts and mentions of the brand on Weibo (an emotional loyalty signal)",
}


def _mart_columns(con: duckdb.DuckDBPyConnection, table: str = "customer_profile") -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'mart' "
        "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()]


def _comment(con: duckdb.DuckDBPyConnection, target: str, text: str) -> None:
    con.execute(f"COMMENT ON COLUMN {target} IS '{text.replace(chr(39), chr(39) * 2)}'")


def create_complaint_views(con: duckdb.DuckDBPyConnection) -> None:
    """``mart.complaints_by_topic``: complaints per customer and topic (delay, damage, loss, price...)."""
    has_tickets = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging' "
                              "AND table_name = 'tickets_current'").fetchall()[0][0]
    body = """
        SELECT rc.customer_id, t.topic, count(*) AS complaints,
               count(*) FILTER (coalesce(t.ticket_status, 'open') = 'open' AND t.resolved_at IS NULL)
                 AS open_complaints,
               max(t.event_at) AS last_complaint_at
        FROM staging.tickets_current t
        JOIN identity.record_customer rc ON rc.record_type = 'tickets' AND rc.record_id = t.record_id
        WHERE t.category = 'complaint' AND rc.customer_id IS NOT NULL
        GROUP BY rc.customer_id, t.topic""" if has_tickets else """
        SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS topic, 0::BIGINT AS complaints,
               0::BIGINT AS open_complaints, NULL::TIMESTAMPTZ AS last_complaint_at WHERE FALSE"""
    con.execute(f"CREATE OR REPLACE VIEW mart.complaints_by_topic AS {body}")


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the marketer views over the current ``mart.customer_profile`` and comment every column.

    ``mart.customers`` drops every ``*_enc`` column found in the profile (not a fixed list),
    so a ciphertext column added later can never reach marketers or the exports.
    """
    columns = _mart_columns(con)
    missing = [c for c in columns if c not in COMMENTS]
    if missing:
        raise ValueError(f"mart.customer_profile columns without a COMMENT text: {missing}")
    ciphertext = ", ".join(c for c in columns if c.endswith("_enc"))
    con.execute(f"""
        CREATE OR REPLACE VIEW mart.customers AS
            SELECT * {f"EXCLUDE ({ciphertext})" if ciphertext else ""} FROM mart.customer_profile;
        CREATE OR REPLACE VIEW mart.churn_alerts AS
            SELECT customer_id, phone_masked, value_class, lifecycle_stage, open_complaints, last_complaint_at,
                   satisfaction_gap, csat, nps_latest, preferred_channel, total_spent_cny
            FROM mart.customer_profile WHERE churn_alert
            ORDER BY value_class, open_complaints DESC, satisfaction_gap NULLS LAST;
        CREATE OR REPLACE VIEW mart.segment_summary AS
            SELECT value_class, lifecycle_stage, count(*) AS customers,
                   sum(total_spent_cny) AS revenue_cny,
                   round(sum(total_spent_cny) / nullif(sum(sum(total_spent_cny)) OVER (), 0), 4) AS revenue_share,
                   count(*) FILTER (marketing_consent) AS consenting, count(*) FILTER (churn_alert) AS churn_alerts
            FROM mart.customer_profile GROUP BY ALL ORDER BY value_class, lifecycle_stage;
        CREATE OR REPLACE VIEW mart.channel_overlap AS
            SELECT array_to_string(channels, ' + ') AS channels, len(channels) AS channel_count,
                   count(*) AS customers
            FROM mart.customer_profile GROUP BY ALL ORDER BY customers DESC;
        CREATE OR REPLACE VIEW mart.value_class_revenue AS
            SELECT value_class, count(p.customer_id) AS customers,
                   round(count(p.customer_id) / nullif(sum(count(p.customer_id)) OVER (), 0), 4) AS customer_share,
                   coalesce(sum(p.value_spent_cny), 0) AS revenue_cny,
                   round(sum(p.value_spent_cny) / nullif(sum(sum(p.value_spent_cny)) OVER (), 0), 4) AS revenue_share
            FROM (VALUES ('A'), ('B'), ('C')) k(value_class) LEFT JOIN mart.customer_profile p USING (value_class)
            GROUP BY value_class ORDER BY value_class;
    """)
    create_complaint_views(con)
    con.execute("COMMENT ON TABLE mart.customer_profile IS "
                "'The single customer view: one row per customer. No plaintext personal data.'")
    con.execute("COMMENT ON VIEW mart.customers IS 'customer_profile without ciphertext: what marketers query'")
    for col in columns:
        _comment(con, f"mart.customer_profile.{col}", COMMENTS[col])
        if not col.endswith("_enc"):
            _comment(con, f"mart.customers.{col}", COMMENTS[col])
    facts = _mart_columns(con, "customer_facts")
    if facts:
        con.execute("COMMENT ON TABLE mart.customer_facts IS 'Per customer, what its records add up to before the "
                    "date pass; kept between runs and refreshed for the customers whose records or date windows "
                    "changed'")
        for col in facts:
            _comment(con, f"mart.customer_facts.{col}", {**COMMENTS, **FACTS_COMMENTS}[col])


def profile_consistency(con: duckdb.DuckDBPyConnection, a_share: float = MartConfig.a_share,
                        b_share: float = MartConfig.b_share, tolerance: float = 0.001) -> dict:
    """Facts an asset check needs to trust ``mart.customer_profile``, plus ``passed`` and per-rule verdicts.

    Recomputed from the profile itself (not from the views' rounded shares alone), so a
    broken view or a broken classification both show. A (and A+B) hold exactly the buyers
    spending at least as much as the one at the target rank: more than ``b_share`` only by
    customers tied with that one, fewer only when there are not enough buyers (non-buyers
    are always C).
    """
    (customers, ids, null_ids, buyers, a_customers, ab_customers, lifecycle_total, unknown_stages,
     revenue, class_revenue) = con.execute("""
        SELECT count(*), count(DISTINCT customer_id), count(*) FILTER (customer_id IS NULL),
               count(*) FILTER (value_spent_cny > 0),
               count(*) FILTER (value_class = 'A'), count(*) FILTER (value_class IN ('A', 'B')),
               count(lifecycle_stage) FILTER (lifecycle_stage IN ('potential', 'new', 'active', 'loyal', 'at_risk',
                                                                  'lost')),
               count(*) FILTER (lifecycle_stage IS NULL OR lifecycle_stage NOT IN ('potential', 'new', 'active',
                                                                                   'loyal', 'at_risk', 'lost')),
               coalesce(sum(value_spent_cny), 0),
               coalesce(sum(value_spent_cny) FILTER (value_class IN ('A', 'B', 'C')), 0)
        FROM mart.customer_profile""").fetchall()[0]
    shares = con.execute("""SELECT round(coalesce(sum(customer_share), 0), 4), round(sum(revenue_share), 4)
                            FROM mart.value_class_revenue""").fetchall()[0]
    stage_counts = dict(con.execute(
        "SELECT lifecycle_stage, count(*) FROM mart.customer_profile GROUP BY 1 ORDER BY 1").fetchall())
    # Same SQL rounding as build_profile (DECIMAL, half away from zero: 5% of 50 is 3), not Python's half-even.
    a_target, ab_target = (int(x) for x in con.execute(
        f"SELECT greatest(1, round({a_share} * ?)), round({b_share} * ?)", [customers, customers]).fetchall()[0])
    a_target = a_target if customers else 0

    def with_ties(target: int) -> int:
        """Customers a class cut at ``target`` ranks holds: ties at the cut extend it, too few buyers shrink it."""
        if target == 0 or buyers == 0:
            return 0
        cutoff = con.execute("""SELECT value_spent_cny FROM mart.customer_profile WHERE value_spent_cny > 0
                                ORDER BY value_spent_cny DESC LIMIT 1 OFFSET ?""",
                             [min(target, buyers) - 1]).fetchall()[0][0]
        return con.execute("SELECT count(*) FROM mart.customer_profile WHERE value_spent_cny >= ?",
                           [cutoff]).fetchall()[0][0]

    a_expected, ab_expected = with_ties(a_target), with_ties(ab_target)
    misordered = con.execute("""
        WITH k AS (SELECT value_class, min(value_spent_cny) AS lo, max(value_spent_cny) AS hi
                   FROM mart.customer_profile GROUP BY 1)
        SELECT count(*) FROM k better JOIN k worse ON better.value_class < worse.value_class AND better.lo < worse.hi
    """).fetchall()[0][0]
    checks = {
        "customer_id_unique": ids == customers and null_ids == 0,
        "class_customer_shares_sum_to_1": customers == 0 or abs(float(shares[0]) - 1) <= tolerance,
        "class_revenue_shares_sum_to_1": shares[1] is None or abs(float(shares[1]) - 1) <= tolerance,
        "class_revenue_adds_up": abs(float(class_revenue) - float(revenue)) <= tolerance,
        "lifecycle_counts_add_up": lifecycle_total == customers and unknown_stages == 0,
        "classes_ordered_by_value": misordered == 0,
        "a_share_near_target": a_customers == a_expected,
        "ab_share_near_target": ab_customers == ab_expected,
    }
    return {
        "customers": customers, "distinct_customer_ids": ids, "buyers": buyers,
        "class_customer_share_sum": float(shares[0]),
        "class_revenue_share_sum": None if shares[1] is None else float(shares[1]),
        "lifecycle_counts": stage_counts, "lifecycle_total": lifecycle_total,
        "a_customers": a_customers, "a_target": a_target, "a_expected_with_ties": a_expected,
        "ab_customers": ab_customers, "ab_target": ab_target, "ab_expected_with_ties": ab_expected,
        "ab_share": ab_customers / customers if customers else 0.0, "b_share": b_share,
        "checks": checks, "passed": all(checks.values()),
    }
