"""Marketer-facing views with plain names and column comments.

``mart.customers`` is the profile with ciphertext columns removed: what a marketer
queries. The others answer the questions asked every week.
"""

from __future__ import annotations

import duckdb

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
    "preferred_channel": "Channel with most interactions in the last 365 days (ties: most recent)",
    "marketing_consent": "Latest explicit marketing opt-in across channels; FALSE when never given",
    "first_seen_at": "First record of any kind (UTC)", "last_seen_at": "Latest record of any kind (UTC)",
    "orders_count": "Paid, not refunded/cancelled/closed orders: Tmall, web shop and store receipts",
    "total_spent_cny": "Sum of those orders in CNY", "avg_order_value_cny": "total_spent_cny / orders_count",
    "first_order_at": "First paid order (UTC)", "last_order_at": "Latest paid order (UTC)",
    "recency_days": "Days from the last order to snapshot_date",
    "r_score": "Recency quintile 1-5 among buyers (5 = most recent)",
    "f_score": "Frequency quintile 1-5 among buyers", "m_score": "Monetary quintile 1-5 among buyers",
    "rfm_segment": "champions, loyal_customers, new_or_promising, cant_lose_them, hibernating, needs_attention",
    "value_class": "ABC: A = top 5% by spend, B = rest of the top 20%, C = the other 80%",
    "lifecycle_stage": "potential, new, active, loyal, at_risk, lost (see README for thresholds)",
    "clv_cny": "Estimated lifetime value: AOV x orders/year x expected years x retention weight",
    "tickets_count": "Service tickets", "complaints_count": "Tickets with category complaint",
    "open_complaints": "Complaints not yet resolved", "last_complaint_at": "Latest complaint (UTC)",
    "satisfaction_gap": "Latest survey: perceived minus expected score (negative = disappointed)",
    "csat": "Latest survey: weighted mean of price, timeliness, quality, attitude scores (1-5)",
    "nps_latest": "Latest would-recommend score 0-10", "nps_class": "promoter 9-10, passive 7-8, detractor 0-6",
    "churn_alert": "TRUE when the gap, CSAT or an unresolved complaint crosses the configured line",
    "source_records": "Source records tied to this customer (see identity.record_customer)",
    "updated_at": "When the newest of those records was loaded", "snapshot_date": "As-of date of the analytics",
}


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE OR REPLACE VIEW mart.customers AS
            SELECT * EXCLUDE (phone_enc, name_enc, email_enc, birthday_enc, address_enc) FROM mart.customer_profile;
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
            SELECT value_class, count(*) AS customers, round(count(*) / sum(count(*)) OVER (), 4) AS customer_share,
                   sum(total_spent_cny) AS revenue_cny,
                   round(sum(total_spent_cny) / nullif(sum(sum(total_spent_cny)) OVER (), 0), 4) AS revenue_share
            FROM mart.customer_profile GROUP BY value_class ORDER BY value_class;
    """)
    con.execute("COMMENT ON TABLE mart.customer_profile IS "
                "'The single customer view: one row per customer. No plaintext personal data.'")
    con.execute("COMMENT ON VIEW mart.customers IS 'customer_profile without ciphertext: what marketers query'")
    cols = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema='mart' AND table_name='customer_profile'"
    ).fetchall()}
    for col, text in COMMENTS.items():
        if col in cols:
            con.execute(f"COMMENT ON COLUMN mart.customer_profile.{col} IS '{text.replace(chr(39), chr(39) * 2)}'")
