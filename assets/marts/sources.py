"""SQL building blocks over customers' current staging records, shared by the facts and the profile.

Every block joins ``staging.<type>_current`` to the lineage TEMP table ``rc`` (``customer_id``
by ``record_type`` and ``record_id``): the whole ``identity.record_customer`` on a rebuild, or
only the customers a run refreshes.
"""

from __future__ import annotations

EVENT_COLUMN = {"followers": "subscribed_at", "miniprogram": "authorized_at", "users": "weibo_created_at"}
# ``as_of`` is a Shanghai calendar date (see pipelines.resources.as_of_date); timestamps are stored in UTC.
LOCAL_TZ = "Asia/Shanghai"
# Paid orders: (record type, channel, order time, which rows are paid orders).
ORDER_SOURCES = (
    ("tmall_orders", "ecommerce", "coalesce(paid_at, event_at)",
     "(order_status = '交易成功' OR order_status LIKE '卖家已发货%') AND amount_cny > 0"),
    ("webshop_orders", "ecommerce", "event_at", "lower(order_status) = 'paid' AND amount_cny > 0"),
    ("transactions", "store", "event_at", "amount_cny > 0"),
)
# Explicit marketing statements: record type -> (opt-in column, when it was said).
CONSENT_SOURCES = {
    "miniprogram": ("marketing_opt_in", "authorized_at"),
    "webshop_orders": ("marketing_opt_in", "event_at"),
    "leads": ("marketing_opt_in", "event_at"),
    "members": ("marketing_opt_in", "greatest(event_at, batch_date::TIMESTAMPTZ)"),
    "followers": ("subscribed", "greatest(subscribed_at, batch_date::TIMESTAMPTZ)"),
}


def event(record_type: str) -> str:
    """The column holding when a record of this type happened."""
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


def orders_sql(present: set[str]) -> str:
    """Paid orders of every type present: ``customer_id, channel, ts, amount_cny``."""
    parts = [f"SELECT rc.customer_id, '{channel}' AS channel, {ts} AS ts, amount_cny {src(rt)} WHERE {paid}"
             for rt, channel, ts, paid in ORDER_SOURCES if rt in present]
    none = "SELECT NULL::VARCHAR, NULL::VARCHAR, NULL::TIMESTAMPTZ, NULL::DOUBLE WHERE FALSE"
    return " UNION ALL ".join(parts) or none


def consent_sql(present: set[str]) -> str:
    """Every explicit opt-in or opt-out: ``customer_id, opt_in, ts, delivery_seq`` (undated = -infinity)."""
    parts = [
        f"SELECT rc.customer_id, {col} AS opt_in, coalesce({ts}, '-infinity'::TIMESTAMPTZ) AS ts, delivery_seq "
        f"{src(rt)} WHERE {col} IS NOT NULL"
        for rt, (col, ts) in CONSENT_SOURCES.items() if rt in present
    ]
    return " UNION ALL ".join(parts) or ("SELECT NULL::VARCHAR AS customer_id, NULL::BOOLEAN AS opt_in, "
                                         "NULL::TIMESTAMPTZ AS ts, 0 AS delivery_seq WHERE FALSE")


def activity_sql(present: set[str]) -> str:
    """Every record's event: ``customer_id, channel, ts, loaded_at``."""
    return " UNION ALL ".join(
        f"SELECT rc.customer_id, rc.channel, s.{event(rt)}::TIMESTAMPTZ AS ts, s.loaded_at {src(rt)}"
        for rt in sorted(present)
    )


def dated_columns(record_type: str) -> list[str]:
    """Every timestamp a date window of the marts reads for this type (event time, Tmall payment time)."""
    return [event(record_type)] + (["paid_at"] if record_type == "tmall_orders" else [])
