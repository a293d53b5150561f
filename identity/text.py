"""Standardising the other fields people type: names, emails, genders, dates, places.

All functions are Polars expressions or work on distinct values, so they run at
column speed. Traditional-to-Simplified conversion uses OpenCC (the reference
converter for Chinese variants) on distinct names only.
"""

from __future__ import annotations

from functools import lru_cache

import polars as pl

_EMAIL = r"^[a-z0-9._%+\-]+@[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}$"
CJK = r"[\u3400-\u9fff]"


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def _clean_series(s: pl.Series) -> pl.Series:
    s = s.cast(pl.String)
    # NFKC leaves ASCII as it is, so only values with a multi-byte character are normalised
    idx = (s.str.len_bytes() != s.str.len_chars()).fill_null(False).arg_true()
    if 2 * len(idx) > len(s):  # mostly Chinese (addresses, names): picking them out costs more than it saves
        s = s.str.normalize("NFKC")
    elif len(idx):
        s = s.scatter(idx, s.gather(idx).str.normalize("NFKC"))
    return s.str.strip_chars().replace("", None)


def clean_text(expr: pl.Expr) -> pl.Expr:
    """NFKC (full-width to half-width), trimmed, empty to null.

    NFKC is the dear part and most values a channel sends are ASCII, which NFKC does not
    change: normalising only the other values made a 3.1M-row id column 16x faster
    (1.1 s -> 0.07 s), and this runs on every field of every delivery.
    """
    return expr.map_batches(_clean_series, return_dtype=pl.String, is_elementwise=True)


def normalize_names(raw: pl.Series) -> pl.Series:
    """``' 陳 大文 '`` -> ``'陈大文'``; Latin names keep single spaces and get title case."""
    base = pl.DataFrame({"raw": raw.cast(pl.String)}).select(clean_text(pl.col("raw")).alias("n"))["n"]
    squeezed = (
        pl.DataFrame({"n": base})
        .select(
            pl.when(pl.col("n").str.contains(CJK))
            .then(pl.col("n").str.replace_all(r"\s+", ""))
            .otherwise(pl.col("n").str.replace_all(r"\s+", " ").str.to_titlecase())
            .alias("n")
        )["n"]
    )
    distinct = squeezed.drop_nulls().unique().to_list()
    converter = _t2s()
    lookup = pl.DataFrame(
        {"n": distinct, "s": [converter.convert(v) for v in distinct]},
        schema={"n": pl.String, "s": pl.String},
    )
    return pl.DataFrame({"n": squeezed}).join(lookup, on="n", how="left", maintain_order="left")["s"].alias(
        raw.name
    )


def normalize_email(expr: pl.Expr) -> pl.Expr:
    """Lower-cased, trimmed, syntactically plausible address, else null."""
    e = clean_text(expr).str.to_lowercase().str.replace_all(r"\s+", "")
    return pl.when(e.str.contains(_EMAIL)).then(e).otherwise(None)


def gender(expr: pl.Expr) -> pl.Expr:
    """Every channel's coding to ``male`` / ``female`` / null."""
    e = clean_text(expr).str.to_lowercase()
    return (
        pl.when(e.is_in(["1", "m", "男", "male"]))
        .then(pl.lit("male"))
        .when(e.is_in(["2", "f", "女", "female"]))
        .then(pl.lit("female"))
        .otherwise(None)
    )


def parse_date(expr: pl.Expr) -> pl.Expr:
    """``1990-05-01``, ``1990/5/1`` and ``19900501`` to a date; anything else null."""
    e = clean_text(expr)
    slashed = e.str.replace_all("/", "-").str.replace_all(".", "-", literal=True)
    parts = slashed.str.split_exact("-", 2)
    padded = (
        parts.struct.field("field_0")
        + "-"
        + parts.struct.field("field_1").str.zfill(2)
        + "-"
        + parts.struct.field("field_2").str.zfill(2)
    )
    from_parts = padded.str.to_date("%Y-%m-%d", strict=False)
    compact = e.str.to_date("%Y%m%d", strict=False)
    plausible = pl.coalesce(pl.when(e.str.contains(r"^\d{8}$")).then(compact), from_parts)
    return pl.when(plausible.dt.year().is_between(1900, 2030)).then(plausible).otherwise(None)


def split_place(expr: pl.Expr, cleaned: bool = False) -> tuple[pl.Expr, pl.Expr]:
    """``'浙江省 杭州市 西湖区 ...'`` or ``'广东 深圳'`` -> (province, city), suffixes removed.

    ``cleaned``: ``expr`` is already :func:`clean_text`'s output.
    """
    parts = (expr if cleaned else clean_text(expr)).str.split_exact(" ", 2)
    province = parts.struct.field("field_0").str.replace(r"(省|市|自治区|特别行政区)$", "")
    city = parts.struct.field("field_1").str.replace(r"市$", "")
    unknown = province.is_in(["其他", "海外", "未知"]) | province.is_null()
    return (
        pl.when(unknown).then(None).otherwise(province),
        pl.when(unknown | (city == "")).then(None).otherwise(city),
    )
