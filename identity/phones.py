"""Phone numbers to E.164, the way ``phonenumbers`` would, at Polars speed.

Every channel spells the same mobile differently (``+86 138 1234 5678``,
``0086-138...``, full-width digits, an Excel ``'`` prefix or ``1.3812345678E+10``).
:func:`reference_normalize` is the rule book, one value at a time: our pre-cleaning
rules, then ``phonenumbers`` parse + validate + format. :func:`normalize_phones`
gives exactly the same answer for a whole column: a vectorised fast path decides
the common mainland forms with the mobile pattern taken from ``phonenumbers``'
own metadata, and only the distinct residue goes through the reference.

Statuses: ``ok`` (a valid number), ``empty``, ``masked`` (``138****5678``),
``virtual`` (privacy virtual number with extension, ``17012345678-1234``),
``mangled`` (Excel rounded it: ``1.38123E+10``), ``placeholder`` (``13800138000``,
all-same digits...; keeps its E.164 when valid, for the audit), ``invalid``. Only
``ok`` numbers can become identity keys.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
import polars as pl

DEFAULT_REGION = "CN"
# Numbers store staff type for walk-in customers; never a person's key.
PLACEHOLDERS = frozenset({"13800138000", "12345678901", "13888888888", "13000000000", "18888888888",
                          "13800000000", "13900000000", "10000000000", "01234567890"})

_CN = phonenumbers.PhoneMetadata.metadata_for_region(DEFAULT_REGION)


def _ascii_digits(pattern: str) -> str:
    """A ``phonenumbers`` pattern for Polars, its ``\\d`` (any script's digit there) as ``[0-9]``."""
    return pattern.replace("\\d", "[0-9]")


_CN_MOBILE = _CN.mobile.national_number_pattern
# Polars' ``\d`` is any script's digit, and the fast path copies the digits it matched into the E.164 form;
# ``phonenumbers`` reads other scripts' digits as ASCII ones. ASCII digits only here: a number written
# partly in, say, Arabic-Indic digits goes to the reference, which spells it as phonenumbers does.
_FAST = rf"^(?:\+86|0086|86)?((?:{_ascii_digits(_CN_MOBILE)}))$"
_STRIP = r"[\s\-()]"
_SCI = re.compile(r"\+?(\d)\.(\d+)[eE]\+?(\d+)")
_VIRTUAL = re.compile(r"(?:\+?86|0086)?[\s-]*1\d{10}\s*(?:-|转|#|,|ext\.?)\s*\d{1,6}", re.IGNORECASE)
# The same two rules for the vectorised path, written with ASCII classes: whatever they match,
# the reference's Unicode-aware patterns match with the same groups, so the answer is the same;
# what only the reference matches (other scripts' digits) is left to the reference.
_SCI_FAST = r"^\+?([0-9])\.([0-9]+)[eE]\+?([0-9]{1,2})$"
_VIRTUAL_FAST = r"(?i)^(?:\+?86|0086)?[ \-]*1[0-9]{10} *(?:-|转|#|,|ext\.?) *[0-9]{1,6}$"
_MOBILE_TYPES = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}

SCHEMA = {"phone_e164": pl.String, "phone_status": pl.String, "phone_is_mobile": pl.Boolean}


def _is_placeholder(national: str) -> bool:
    return national in PLACEHOLDERS or (len(national) >= 7 and len(set(national)) == 1)


def _preclean(raw: str | None) -> str:
    if raw is None:
        return ""
    return unicodedata.normalize("NFKC", raw).strip().lstrip("'").strip()


def reference_normalize(raw: str | None) -> tuple[str | None, str, bool]:
    """One value: ``(e164 or None, status, is_mobile)``. The rule book the fast path must match."""
    s = _preclean(raw)
    if not s:
        return None, "empty", False
    if "*" in s:
        return None, "masked", False
    sci = _SCI.fullmatch(s)
    if sci:
        digits, exponent = sci.group(1) + sci.group(2), int(sci.group(3))
        # Excel keeps 15 significant digits, but a narrow column shows only ~6: a number
        # showing fewer than 10 of its 11 digits has lost them for good.
        if len(digits) < 10 or len(digits) > exponent + 1:
            return None, "mangled", False
        s = digits.ljust(exponent + 1, "0")
    if _VIRTUAL.fullmatch(s):
        return None, "virtual", False
    compact = re.sub(_STRIP, "", s)
    national = compact.removeprefix("+86").removeprefix("0086")
    try:
        number = phonenumbers.parse(compact, DEFAULT_REGION)
        valid = phonenumbers.is_valid_number(number)
    except phonenumbers.NumberParseException:
        number, valid = None, False
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if valid else None
    mobile = valid and phonenumbers.number_type(number) in _MOBILE_TYPES
    # A placeholder keeps its E.164 (when it has one) so identity can audit it; it never becomes a key.
    if _is_placeholder(national) or (e164 is not None and e164.startswith("+86") and _is_placeholder(e164[3:])):
        return e164, "placeholder", mobile
    if not valid:
        return None, "invalid", False
    return e164, "ok", mobile


def _matches(national: pl.Expr, desc) -> pl.Expr:
    """``phonenumbers``' test of a national number against a number description (its possible lengths,
    then its pattern in full), as a Polars expression over ASCII digits."""
    fits = national.str.contains(rf"^(?:{_ascii_digits(desc.national_number_pattern)})$")
    return national.str.len_chars().is_in(list(desc.possible_length)) & fits if desc.possible_length else fits


def _landline_expr(compact: pl.Expr) -> pl.Expr:
    """The national number of a mainland landline spelled with its trunk 0 (``010-12345678``), else null.

    Decided here only where ``phonenumbers`` is sure to agree: no CN national number starts with
    ``0``, so it strips the trunk ``0`` and reads the rest as the national number, which is valid when
    it fits the region's general and fixed-line descriptions. One that fits the mobile description
    too is left to the reference, as are placeholders; so are the other landline spellings
    (``+86 10 ...``, other scripts' digits). A 1.7M-row Tmall export carries about 50,000
    distinct ``0xx-xxxxxxxx`` numbers, which took ``phonenumbers`` one at a time.
    """
    national = compact.str.extract(r"^0([1-9][0-9]{6,10})$", 1)
    sure = (_matches(national, _CN.general_desc) & _matches(national, _CN.fixed_line)
            & ~_matches(national, _CN.mobile) & ~_placeholder_expr(national) & ~_placeholder_expr(compact))
    return pl.when(sure).then(national)


def _placeholder_expr(national: pl.Expr) -> pl.Expr:
    """:func:`_is_placeholder` over a column: a listed placeholder, or seven or more of one digit."""
    same = national.str.contains("^(?:" + "|".join(f"{d}+" for d in range(10)) + ")$")
    return national.is_in(list(PLACEHOLDERS)) | ((national.str.len_chars() >= 7) & same)


def normalize_phones(raw: pl.Series) -> pl.DataFrame:
    """Normalise a column of raw phone strings; returns one row per input row (see :data:`SCHEMA`)."""
    frame = pl.DataFrame({"raw": raw.cast(pl.String)})
    clean = (
        pl.col("raw").str.normalize("NFKC").str.strip_chars().str.strip_chars_start("'").str.strip_chars()
    )
    # Excel's scientific form, decided as the reference does: too few digits left is "mangled",
    # otherwise the digits, padded to the exponent, are read like any other spelling.
    sci = pl.col("clean").str.extract_groups(_SCI_FAST)
    digits = sci.struct.field("1") + sci.struct.field("2")
    width = sci.struct.field("3").cast(pl.Int64) + 1
    fast = frame.with_columns(clean.alias("clean")).with_columns(
        ((digits.str.len_chars() < 10) | (digits.str.len_chars() > width)).alias("sci_mangled"),
        pl.coalesce(digits.str.pad_end(width.fill_null(0), "0"), pl.col("clean")).alias("spelled"),
    ).with_columns(
        pl.col("spelled").str.replace_all(_STRIP, "").alias("compact")
    ).with_columns(
        pl.col("compact").str.extract(_FAST, 1).alias("mobile"),
        _landline_expr(pl.col("compact")).alias("landline"),
    )
    fast = fast.with_columns(
        pl.when(pl.col("clean").is_null() | (pl.col("clean") == ""))
        .then(pl.lit("empty"))
        .when(pl.col("clean").str.contains("*", literal=True))
        .then(pl.lit("masked"))
        .when(pl.col("sci_mangled").fill_null(False))
        .then(pl.lit("mangled"))
        .when(pl.col("spelled").str.contains(_VIRTUAL_FAST))
        .then(pl.lit("virtual"))
        .when(pl.col("mobile").is_not_null() & _placeholder_expr(pl.col("mobile")))
        .then(pl.lit("placeholder"))
        .when(pl.col("mobile").is_not_null() | pl.col("landline").is_not_null())
        .then(pl.lit("ok"))
        .otherwise(None)
        .alias("fast_status")
    )
    residue = fast.filter(pl.col("fast_status").is_null())["raw"].unique().to_list()
    decided = [reference_normalize(v) for v in residue]
    slow = pl.DataFrame(
        {
            "raw": residue,
            "slow_e164": [d[0] for d in decided],
            "slow_status": [d[1] for d in decided],
            "slow_mobile": [d[2] for d in decided],
        },
        schema={"raw": pl.String, "slow_e164": pl.String, "slow_status": pl.String, "slow_mobile": pl.Boolean},
    )
    out = fast.join(slow, on="raw", how="left", maintain_order="left", nulls_equal=True)
    ok_fast = pl.col("fast_status").is_in(["ok", "placeholder"]) & pl.col("mobile").is_not_null()
    landline = (pl.col("fast_status") == "ok") & pl.col("landline").is_not_null()
    return out.select(
        pl.when(ok_fast).then(pl.lit("+86") + pl.col("mobile"))
        .when(landline).then(pl.lit("+86") + pl.col("landline"))
        .otherwise(pl.col("slow_e164")).alias("phone_e164"),
        pl.coalesce("fast_status", "slow_status").alias("phone_status"),
        pl.when(ok_fast).then(True).when(landline).then(False)
        .otherwise(pl.col("slow_mobile").fill_null(False)).alias("phone_is_mobile"),
    )


def fast_path_share(raw: pl.Series) -> float:
    """Share of values the vectorised path decides without ``phonenumbers`` (for benchmarks)."""
    compact = raw.str.normalize("NFKC").str.strip_chars().str.strip_chars_start("'").str.replace_all(_STRIP, "")
    decided = pl.DataFrame({"compact": compact}).select(
        pl.col("compact").str.contains(_FAST) | _landline_expr(pl.col("compact")).is_not_null())
    return float(decided.to_series().mean() or 0.0)
