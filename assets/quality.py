"""Great Expectations suites as code, and the small frames they judge.

Why GX is driven by hand: dagster-ge does not support GX 1.x, so each asset check
validates a pandas frame against a suite built by a function in this module, in an
ephemeral GX context (no project folder, nothing written, no network), and turns
the result into an ``AssetCheckResult``. The suites are the rules; reviewing them
is reviewing this file.

Why small frames: GX cannot read Polars, its DuckDB (SQLAlchemy) path is broken in
1.24.1, and pulling a 10M-row table into pandas would take longer than building
it. DuckDB therefore reduces every table first, in one of two ways:

* a **probe** (:func:`probe_frame`): a random sample plus the rows most likely to
  break a rule, found by exact scans: the smallest and largest value of every
  ranged column, one row per distinct value of every categorical column, and one
  row per *shape* (null, or length and character classes) of every patterned
  column; ends and shapes per value of the columns that condition the rules. A range, set or
  not-null rule thus sees its worst row however big the table is; a pattern rule
  sees every kind of value the column holds (a plaintext number in a masked column
  has no ``*``, a bad token has the wrong length or letters). Rules about the
  position of characters, and free-text rules, see the sample and one row per
  shape only. :func:`probe_for` derives the probe from the suite, so a new rule
  is probed without anyone remembering to. Append-only staging tables are probed
  exactly on the rows the current run loaded (older rows passed the gate of the
  run that loaded them, or were never published) plus a sample of history.
* **facts** frames: aggregates (counts, duplicates, sizes) computed in DuckDB,
  one row per group, judged by GX. Uniqueness and completeness are decided here,
  never on a probe.

Nothing a suite reports carries data values: metadata holds expectation names,
columns and counts, so a failing check cannot leak personal data into the UI.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb

from assets.landing.formats import FileFormat
from assets.landing.stage import staging_schema

if TYPE_CHECKING:  # GX (imported inside functions) takes ~3 s to import: only checks that run pay for it
    import pandas as pd

# --- the rules' vocabulary -------------------------------------------------------------------------------------

HEX64 = r"^[0-9a-f]{64}$"  # an HMAC-SHA256 token
MASKED_PHONE = r"^(?:\d{3}|\+\d{2})\*{4}\d{4}$"  # 138****5678, or +44****3456 outside mainland China
MASKED_EMAIL = r"^[^@\s]\*{3}@[^@\s]+$"  # w***@example.com
# An 11-digit mainland mobile or an e-mail address inside a free-text value.
PLAINTEXT_PII = r"(?:^|\D)1[3-9]\d{9}(?:$|\D)|[^@\s]+@[^@\s]+\.[a-z]"
PHONE_STATUSES = ("ok", "empty", "masked", "virtual", "mangled", "placeholder", "invalid")
VALUE_CLASSES = ("A", "B", "C")
LIFECYCLE_STAGES = ("potential", "new", "active", "loyal", "at_risk", "lost")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before any channel the brand uses existed
CLOCK_SKEW = timedelta(days=1)  # a channel's clock may run ahead; later than this is a parsing error

# A column named like personal data must be one of its safe forms (token, ciphertext, masked, derived).
PII_WORDS = ("phone", "name", "email", "address", "birthday")
SAFE_SUFFIXES = ("_token", "_enc", "_masked", "_status", "_is_mobile", "_month")
SAFE_NAMES = ("file_name",)
PII_COLUMN_NAME = (
    rf"^(?!(?:{'|'.join(SAFE_NAMES)})$)(?!.*(?:{'|'.join(SAFE_SUFFIXES)})$).*(?:{'|'.join(PII_WORDS)})"
)
CIPHERTEXT_COLUMN = r"_enc$"


# --- running GX ------------------------------------------------------------------------------------------------

_preload: threading.Thread | None = None


def preload_gx() -> None:
    """Import Great Expectations in a background thread, once per process.

    GX takes about 3 s to import, nearly all of it Python bytecode, and the first asset
    check of every run paid it: a tenth of a nightly run at 10M records. The staging step
    calls this before it copies the warehouse (a file copy that releases the GIL) and
    writes the delivery (DuckDB, which releases it too), so the import happens while the
    step waits on I/O. A check that needs GX before the import is done waits for it on
    Python's module lock; an import error surfaces there, as it would without this.
    """
    global _preload
    if _preload is None and "great_expectations" not in sys.modules:
        _preload = threading.Thread(target=_import_quietly, args=("great_expectations",), name="gx-preload",
                                    daemon=True)
        _preload.start()


def _import_quietly(module: str) -> None:
    with contextlib.suppress(Exception):  # the check that imports it for real reports the error
        importlib.import_module(module)


@functools.cache
def _gx_datasource():
    """One ephemeral context and pandas data source per process (creating them costs more than validating).

    In-memory stores, no Data Docs site, no progress bars, no analytics: GX writes nothing and calls nobody.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                               progress_bars=ProgressBarsConfig(globally=False), analytics_enabled=False)
    context = gx.get_context(mode="ephemeral", project_config=config)
    return context.data_sources.add_pandas("scv_quality")


@functools.cache
def _batch_definition(name: str):
    return _gx_datasource().add_dataframe_asset(name).add_batch_definition_whole_dataframe("frame")


def suite(name: str, expectations: Iterable[Any]):
    """A named ``ExpectationSuite`` (kept out of any GX project: suites live in this module)."""
    import great_expectations as gx

    return gx.ExpectationSuite(name=name, expectations=list(expectations))


@dataclass
class Verdict:
    """What one or more GX validations found, in a form safe to show (no data values)."""

    rows: list[dict] = field(default_factory=list)
    frames: dict[str, Any] = field(default_factory=dict)  # suite -> size of the frame it judged

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.rows)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if not r["passed"]]

    def __add__(self, other: Verdict) -> Verdict:
        return Verdict(self.rows + other.rows, {**self.frames, **other.frames})

    def metadata(self) -> dict:
        import dagster as dg

        table = "| suite | expectation | column | passed | rows judged | unexpected |\n|---|---|---|---|---|---|\n"
        table += "".join(f"| {r['suite']} | {r['expectation']} | {r['column']} | {'yes' if r['passed'] else '**NO**'} "
                         f"| {r['judged']} | {r['unexpected']} |\n" for r in self.rows)
        return {
            "expectations": len(self.rows),
            "failed_expectations": len(self.failed),
            "failed": ", ".join(f"{r['expectation']}({r['column']})" for r in self.failed) or "none",
            "frames": dg.MetadataValue.json(self.frames),
            "results": dg.MetadataValue.md(table),
        }


def validate(frame: pd.DataFrame, expectation_suite, sizes: dict | None = None) -> Verdict:
    """Validate ``frame`` against ``expectation_suite``; an expectation that errors counts as failed.

    ``sizes`` (from :func:`probe_frame`) is reported as the frame's size; default its row count.
    """
    result = _batch_definition(expectation_suite.name).get_batch(
        batch_parameters={"dataframe": frame}).validate(expectation_suite)
    rows = []
    for r in result.results:
        kwargs = r.expectation_config.kwargs
        column = kwargs.get("column") or "=".join(filter(None, (kwargs.get("column_A"), kwargs.get("column_B"))))
        errored = bool(r.exception_info and (r.exception_info.get("raised_exception") or any(
            isinstance(v, dict) and v.get("raised_exception") for v in r.exception_info.values())))
        rows.append({
            "suite": expectation_suite.name,
            "expectation": r.expectation_config.type.removeprefix("expect_"),
            "column": column or "(table)",
            "passed": bool(r.success) and not errored,
            "judged": r.result.get("element_count", len(frame)),
            "unexpected": "error" if errored else r.result.get("unexpected_count", "" if r.success else "-"),
        })
    return Verdict(rows, {expectation_suite.name: sizes or {"frame_rows": len(frame)}})


# --- probes: small frames that still hold every table's worst rows -------------------------------------------

RANGE_RULES = {"expect_column_values_to_be_between", "expect_column_min_to_be_between",
               "expect_column_max_to_be_between"}
SET_RULES = {"expect_column_values_to_be_in_set", "expect_column_distinct_values_to_be_in_set",
             "expect_column_values_to_not_be_in_set"}
SHAPE_RULES = {"expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
               "expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
               "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal"}
SCHEMA_RULES = {"expect_column_to_exist", "expect_column_values_to_be_of_type",
                "expect_column_values_to_be_in_type_list"}


@dataclass(frozen=True)
class Probe:
    """Which columns a probe must cover, and how."""

    ranges: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    within: tuple[str, ...] = ()  # low-cardinality columns row conditions use: ends and shapes are picked per value
    sample_rows: int = 2000

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys((*self.within, *self.categories, *self.ranges, *self.shapes)))


def probe_for(expectation_suite, within: Iterable[str] = (), sample_rows: int = 2000) -> Probe:
    """The probe that gives every expectation of ``expectation_suite`` its worst cases.

    Refuses expectations a probe cannot decide (uniqueness, table row counts...):
    those belong on a facts frame.
    """
    ranges, categories, shapes = [], [], []
    for exp in expectation_suite.expectations:
        kind, column = exp.expectation_type, getattr(exp, "column", None)
        if kind in RANGE_RULES:
            ranges.append(column)
        elif kind in SET_RULES:
            categories.append(column)
        elif kind in SHAPE_RULES:
            shapes.append(column)
        elif kind not in SCHEMA_RULES:
            raise ValueError(f"{kind} cannot be decided on a probe; compute it as a facts frame")
    within = tuple(within)
    return Probe(tuple(dict.fromkeys(ranges)), tuple(dict.fromkeys(c for c in categories if c not in within)),
                 tuple(dict.fromkeys(shapes)), within, sample_rows)


def _ident(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def shape_sql(column: str) -> str:
    """A value's shape: null, or its length and a few cheap facts about its characters.

    Few distinct shapes exist in a real column (every token has the same one), and the
    facts are the ones pattern rules turn on: a character outside ``[0-9a-f]`` (not a
    token), outside ``[0-9*+]`` (not a masked phone), a ``*`` (masked), an ``@``
    (an e-mail), a run of 7+ digits (a phone number in clear).

    A struct, not a list: DuckDB groups by a struct of scalars a third faster than by a list
    (10M-record staging probes).
    """
    v = f"{_ident(column)}::VARCHAR"
    return (f"{{'length': length({v}), 'not_hex': regexp_matches({v}, '[^0-9a-f]'), "
            f"'not_mask': regexp_matches({v}, '[^0-9*+]'), 'star': contains({v}, '*'), "
            f"'at': contains({v}, '@'), 'digits7': regexp_matches({v}, '[0-9]{{7}}')}}")


def probe_frame(con: duckdb.DuckDBPyConnection, table: str, probe: Probe, *, focus: str | None = None,
                key: str = "rowid", seed: int = 7) -> tuple[pd.DataFrame, dict[str, int]]:
    """``(frame, sizes)``: the probe's rows of ``table``, as pandas.

    The random sample is drawn from the whole table; the exact picks (range ends,
    categories, shapes) come from the rows matching ``focus`` (a SQL predicate, e.g.
    the rows this run loaded into an append-only table), or from every row.
    ``key`` identifies rows (a table's ``rowid``, a parquet scan's ``file_row_number``).
    """
    scope = f"(SELECT {key} AS _k, * FROM {table} WHERE {focus or 'TRUE'})"
    picks = [f"SELECT {key} AS k FROM {table} USING SAMPLE reservoir({probe.sample_rows} ROWS) REPEATABLE ({seed})"]
    within = "".join(f"{_ident(c)}, " for c in probe.within)
    if probe.ranges:
        ends = ", ".join(f"arg_min(_k, {_ident(c)}), arg_max(_k, {_ident(c)})" for c in probe.ranges)
        per_group = f" GROUP BY {within.rstrip(', ')}" if within else ""
        picks.append(f"SELECT unnest([{ends}]) AS k FROM {scope}{per_group}")
    picks += [f"SELECT min(_k) AS k FROM {scope} GROUP BY {_ident(c)}" for c in probe.categories]
    picks += [f"SELECT min(_k) AS k FROM {scope} GROUP BY {within}{shape_sql(c)}" for c in probe.shapes]
    if probe.within and not probe.shapes:
        picks.append(f"SELECT min(_k) AS k FROM {scope} GROUP BY {within.rstrip(', ')}")
    columns = ", ".join(_ident(c) for c in probe.columns) or key
    frame = con.sql(f"""
        WITH picked AS ({' UNION '.join(picks)})
        SELECT {columns} FROM {table} WHERE {key} IN (SELECT k FROM picked WHERE k IS NOT NULL)
        ORDER BY {key}""").df()
    rows, in_focus = con.execute(
        f"SELECT count(*), count(*) FILTER ({focus or 'TRUE'}) FROM {table}").fetchall()[0]
    return frame, {"table_rows": rows, "rows_in_focus": in_focus, "frame_rows": len(frame)}


def columns_frame(con: duckdb.DuckDBPyConnection, where: str, params: list | None = None) -> pd.DataFrame:
    """``information_schema.columns`` rows matching ``where``: what schema rules judge."""
    return con.execute(f"""SELECT table_schema || '.' || table_name AS table_name, column_name, data_type
                           FROM information_schema.columns WHERE {where} ORDER BY ALL""", params or []).df()


# --- the suites ------------------------------------------------------------------------------------------------

def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def column_names_suite(name: str, *, forbid_ciphertext: bool = False):
    """Schema rules for a frame of column names: no column looks like plaintext personal data."""
    gxe = _gxe()
    rules = [gxe.ExpectColumnValuesToNotMatchRegex(column="column_name", regex=PII_COLUMN_NAME)]
    if forbid_ciphertext:
        rules.append(gxe.ExpectColumnValuesToNotMatchRegex(column="column_name", regex=CIPHERTEXT_COLUMN))
    return suite(name, rules)


def staging_suite(fmt: FileFormat, now: datetime):
    """Row rules for ``staging.<record_type>``, derived from the format's column roles.

    Tokens are 64 hex characters and present for every usable phone; masked forms are
    masks; timestamps fall between :data:`EARLIEST` and ``now`` plus clock skew; amounts
    are not negative; free-text columns hold no phone number or e-mail address.
    """
    gxe = _gxe()
    schema = staging_schema(fmt)
    ok = {"row_condition": 'phone_status=="ok"', "condition_parser": "pandas"}
    rules: list = [gxe.ExpectColumnValuesToNotBeNull(column="record_id")]
    identifier_columns = {column for _, column in fmt.identifiers}
    for fld in fmt.fields:
        if fld.role == "timestamp":
            rules.append(gxe.ExpectColumnValuesToBeBetween(column=fld.out, min_value=EARLIEST,
                                                           max_value=now + CLOCK_SKEW))
        elif fld.role == "amount":
            rules.append(gxe.ExpectColumnValuesToBeBetween(column=fld.out, min_value=0))
        elif fld.role == "text" and fld.out not in identifier_columns:
            rules.append(gxe.ExpectColumnValuesToNotMatchRegex(column=fld.out, regex=PLAINTEXT_PII))
    rules.append(gxe.ExpectColumnValuesToBeBetween(column="loaded_at", min_value=EARLIEST,
                                                   max_value=now + CLOCK_SKEW))
    if "phone_status" in schema:
        rules += [
            gxe.ExpectColumnValuesToBeInSet(column="phone_status", value_set=list(PHONE_STATUSES)),
            gxe.ExpectColumnValuesToNotBeNull(column="phone_token", **ok),
            gxe.ExpectColumnValuesToMatchRegex(column="phone_token", regex=HEX64, **ok),
            gxe.ExpectColumnValuesToNotBeNull(column="phone_enc", **ok),
            gxe.ExpectColumnValuesToNotBeNull(column="phone_masked", **ok),
            gxe.ExpectColumnValuesToMatchRegex(column="phone_masked", regex=MASKED_PHONE),
        ]
    for column in schema:
        if column.endswith("_token") and column != "phone_token":
            rules.append(gxe.ExpectColumnValuesToMatchRegex(column=column, regex=HEX64))
    if "email_masked" in schema:
        rules.append(gxe.ExpectColumnValuesToMatchRegex(column="email_masked", regex=MASKED_EMAIL))
    return suite(f"staging_{fmt.record_type}", rules)


def staging_within(fmt: FileFormat) -> tuple[str, ...]:
    """Columns the staging suite's row conditions use."""
    return ("phone_status",) if "phone_status" in staging_schema(fmt) else ()


def lineage_facts_sql() -> str:
    """Per record type: current records, lineage rows, distinct lineage keys, records missing, lineage orphans.

    One full join of the records with the lineage keys (rows per key counted first) yields
    all five: 20% faster at 10M records than separate distinct counts and anti joins.
    """
    return """
        WITH j AS (
            SELECT coalesce(r.record_type, l.record_type) AS record_type, r.record_type IS NOT NULL AS in_records,
                   l.record_type IS NOT NULL AS in_lineage, l.n
            FROM (SELECT record_type, record_id FROM identity.records) r
            FULL JOIN (SELECT record_type, record_id, count(*) AS n FROM identity.record_customer GROUP BY ALL) l
                USING (record_type, record_id))
        SELECT record_type, count(*) FILTER (in_records) AS records,
               coalesce(sum(n), 0)::BIGINT AS lineage_rows, count(*) FILTER (in_lineage) AS lineage_keys,
               count(*) FILTER (NOT in_lineage) AS missing, count(*) FILTER (NOT in_records) AS orphans
        FROM j GROUP BY 1 ORDER BY 1"""


def lineage_suite():
    gxe = _gxe()
    return suite("identity_lineage", [
        gxe.ExpectColumnPairValuesToBeEqual(column_A="records", column_B="lineage_rows"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="lineage_rows", column_B="lineage_keys"),
        gxe.ExpectColumnValuesToBeBetween(column="missing", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="orphans", min_value=0, max_value=0),
    ])


CLUSTER_FACTS_SQL = """
    SELECT customer_id, count(*) AS records FROM identity.record_customer WHERE customer_id IS NOT NULL
    GROUP BY 1 ORDER BY records DESC, customer_id LIMIT 20"""


def cluster_suite(max_records: int):
    """The largest customers (exact: the top 20 by records) stay within the configured size."""
    gxe = _gxe()
    return suite("identity_clusters", [
        gxe.ExpectColumnValuesToBeBetween(column="records", min_value=1, max_value=max_records),
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id"),
    ])


# Links are stored by identifier number (identity.record_links); a rejected (kind, value)
# finds its number in identity.identifier_tokens, so only the rejected identifiers' links are read.
REJECTED_LINK_FACTS_SQL = """
    SELECT r.kind, count(DISTINCT r.value) AS rejected_identifiers, count(l.rk) AS accepted_links
    FROM identity.rejected_identifiers r
    LEFT JOIN identity.identifier_tokens t USING (kind, value)
    LEFT JOIN identity.record_links l USING (iid)
    GROUP BY 1 ORDER BY 1"""


def rejected_link_suite():
    """No accepted link (``identity.record_links``) goes through an identifier the guards rejected."""
    gxe = _gxe()
    return suite("identity_rejected", [
        gxe.ExpectColumnValuesToBeBetween(column="accepted_links", min_value=0, max_value=0),
    ])


# identity.customer_registry has no key constraint (ids are unique by construction): this says so.
REGISTRY_FACTS_SQL = """
    SELECT count(*) - count(DISTINCT customer_id) AS ids_issued_twice, count(*) AS ids
    FROM identity.customer_registry"""


def registry_suite():
    """No customer id was issued twice."""
    gxe = _gxe()
    return suite("identity_registry", [
        gxe.ExpectColumnValuesToBeBetween(column="ids_issued_twice", min_value=0, max_value=0),
    ])


def profile_suite(id_prefix: str = "C"):
    """Row rules for ``mart.customer_profile``: classes, stages, consent, id and display forms."""
    gxe = _gxe()
    return suite("mart_customer_profile", [
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="customer_id", regex=rf"^{re.escape(id_prefix)}\d{{9}}$"),
        gxe.ExpectColumnValuesToBeInSet(column="value_class", value_set=list(VALUE_CLASSES)),
        gxe.ExpectColumnValuesToNotBeNull(column="value_class"),
        gxe.ExpectColumnValuesToBeInSet(column="lifecycle_stage", value_set=list(LIFECYCLE_STAGES)),
        gxe.ExpectColumnValuesToNotBeNull(column="lifecycle_stage"),
        gxe.ExpectColumnValuesToBeInSet(column="marketing_consent", value_set=[True, False]),
        gxe.ExpectColumnValuesToNotBeNull(column="marketing_consent"),
        gxe.ExpectColumnValuesToMatchRegex(column="phone_masked", regex=MASKED_PHONE),
        gxe.ExpectColumnValuesToMatchRegex(column="phone_token", regex=HEX64),
        gxe.ExpectColumnValuesToBeBetween(column="total_spent_cny", min_value=0),
    ])


def profile_facts_suite(tolerance: float = 0.001):
    """Whole-table facts of the profile: ids unique, class shares add up, every customer staged."""
    gxe = _gxe()
    return suite("mart_profile_facts", [
        gxe.ExpectColumnPairValuesToBeEqual(column_A="customers", column_B="distinct_customer_ids"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="customers", column_B="lifecycle_total"),
        gxe.ExpectColumnValuesToBeBetween(column="class_customer_share_sum", min_value=1 - tolerance,
                                          max_value=1 + tolerance),
        gxe.ExpectColumnValuesToBeBetween(column="class_revenue_share_sum", min_value=1 - tolerance,
                                          max_value=1 + tolerance),
        gxe.ExpectColumnValuesToBeInSet(column="abc_cut_on_target", value_set=[True]),
    ])


def export_suite():
    """The marketer export: consent is a real yes/no for every customer."""
    gxe = _gxe()
    return suite("export_customer_profile", [
        gxe.ExpectColumnToExist(column="marketing_consent"),
        gxe.ExpectColumnValuesToBeOfType(column="marketing_consent", type_="bool"),
        gxe.ExpectColumnValuesToNotBeNull(column="marketing_consent"),
        gxe.ExpectColumnValuesToBeInSet(column="marketing_consent", value_set=[True, False]),
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id"),
    ])


def export_facts_suite():
    """The export holds exactly the mart's customers, each with the mart's consent."""
    gxe = _gxe()
    return suite("export_facts", [
        gxe.ExpectColumnPairValuesToBeEqual(column_A="export_rows", column_B="mart_rows"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="export_rows", column_B="distinct_customer_ids"),
        gxe.ExpectColumnValuesToBeBetween(column="consent_mismatches", min_value=0, max_value=0),
    ])


def stability_suite():
    """Customer ids of the last published profile survive, or their merge/split is on record."""
    gxe = _gxe()
    return suite("mart_id_stability", [
        gxe.ExpectColumnValuesToBeBetween(column="vanished_without_history", min_value=0, max_value=0),
    ])


def sql_string(value: str) -> str:
    """A SQL string literal (a quote in SCV_HOME must not end it)."""
    return "'" + value.replace("'", "''") + "'"
