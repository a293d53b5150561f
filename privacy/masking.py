"""Masked display values: enough for a marketer to recognise, never enough to contact."""

from __future__ import annotations

import polars as pl


def mask_phone_expr(e164: pl.Expr) -> pl.Expr:
    """``+8613812345678`` -> ``138****5678``; other countries keep the country code."""
    national = (
        pl.when(e164.str.starts_with("+86")).then(e164.str.slice(3)).otherwise(e164)
    )
    n = national.str.len_chars()
    return (
        pl.when(n >= 7)
        .then(national.str.slice(0, 3) + pl.lit("****") + national.str.slice(n - 4))
        .otherwise(None)
    )


def mask_email_expr(email: pl.Expr) -> pl.Expr:
    """``wang.xiaoming@example.com`` -> ``w***@example.com``."""
    local = email.str.split_exact("@", 1).struct.field("field_0")
    domain = email.str.split_exact("@", 1).struct.field("field_1")
    return pl.when(domain.is_not_null()).then(local.str.slice(0, 1) + pl.lit("***@") + domain).otherwise(None)


def mask_phone(e164: str | None) -> str | None:
    if not e164:
        return None
    return pl.select(mask_phone_expr(pl.lit(e164))).item()
