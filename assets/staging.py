"""Staging assets: one per landing file type, generated from the format registry."""


import time
from collections import Counter

import dagster as dg

from assets import quality
from assets.landing.formats import FORMATS, FileFormat
from assets.landing.load import TIMED_PARTS, check_token_key, ingest_types
from pipelines.resources import ScvResource

OWNERS = ["team:data-engineering"]


def _metadata(reports, seconds: float, con, fmt: FileFormat) -> dict:
    loaded = sum(r.loaded for r in reports)
    quarantined = sum(r.quarantined for r in reports)
    reasons = con.execute(
        """SELECT regexp_replace(reason, '\\d+', 'N', 'g') AS reason, count(*) FROM staging.quarantine
           WHERE record_type = ? GROUP BY 1 ORDER BY 2 DESC LIMIT 5""", [fmt.record_type]).fetchall()
    def note(r) -> str:
        drift = [f"+{c}" for c in r.extra_columns] + [f"-{c}" for c in r.missing_columns]
        return (r.message or ", ".join(drift))[:120]

    table = "| file | status | delivered | loaded | quarantined | note |\n|---|---|---|---|---|---|\n" + "".join(
        f"| {r.file_name} | {r.status} | {r.delivered} | {r.loaded} | {r.quarantined} | {note(r)} |\n"
        for r in reports)
    total = con.execute(f"SELECT count(*) FROM staging.{fmt.record_type}_current").fetchall()[0][0]
    return {
        "new_files": len(reports),
        "rows_loaded": loaded,
        "rows_quarantined": quarantined,
        "unreadable_files": sum(r.status == "unreadable" for r in reports),
        "failed_files": sum(r.status == "failed" for r in reports),
        "current_records": total,
        "files": dg.MetadataValue.md(table if reports else "no new files"),
        "top_quarantine_reasons": dg.MetadataValue.md(
            "\n".join(f"- {n} x {reason}" for reason, n in reasons) or "none"),
        "schema_drift": dg.MetadataValue.json(
            {r.file_name: {"extra": r.extra_columns, "missing": r.missing_columns}
             for r in reports if r.extra_columns or r.missing_columns}),
        "seconds": round(seconds, 3),
        # where the time went (summed over the files): reading, staging and its parts, the writer
        "seconds_by_part": dg.MetadataValue.json(
            {part: round(sum(r.seconds.get(part, 0.0) for r in reports), 3) for part in TIMED_PARTS
             if any(part in r.seconds for r in reports)}),
    }


def _key(fmt: FileFormat) -> dg.AssetKey:
    return dg.AssetKey(["staging", fmt.record_type])


def _spec(fmt: FileFormat) -> dg.AssetSpec:
    return dg.AssetSpec(
        _key(fmt),
        group_name="staging",
        description=f"{fmt.description}: new `{fmt.glob}` files, standardised, PII tokenised and encrypted. "
                    f"View `staging.{fmt.record_type}_current` (table `_latest`: the latest delivery of each record) "
                    f"and view `staging.{fmt.record_type}` (every delivery; older ones in table `_superseded`).",
        kinds={"polars", "duckdb"},
        owners=OWNERS,
        code_version="1",
        tags={"channel": fmt.channel, "layer": "staging"},
    )


@dg.multi_asset(
    name="staging",
    specs=[_spec(fmt) for fmt in FORMATS],
    can_subset=True,
    pool="duckdb",
    description="Every new landing file of the selected types, loaded in one step: a large delivery is read and "
                "staged in worker processes on every core while this step writes it to DuckDB file by file.",
)
def staging(context: dg.AssetExecutionContext, scv: ScvResource):
    """One step for all file types, so that preparing one type's files overlaps writing another's.

    Each type is still its own asset (own metadata, checks and lineage); a run may select any of them.
    """
    quality.preload_gx()  # the checks after this step need GX: import it while this step waits on I/O
    selected = [fmt for fmt in FORMATS if _key(fmt) in context.selected_asset_keys]
    keyring = scv.keyring()
    con = scv.connect(context.run_id)
    try:
        check_token_key(con, keyring)
        started = time.perf_counter()
        by_type = ingest_types(con, scv.layout().landing, selected, keyring, context.run_id, scv.now())
        context.log.info(f"staging: {len(selected)} file types in {time.perf_counter() - started:.1f} s")
        for fmt in selected:
            reports = by_type[fmt.record_type]
            for rep in reports:
                if rep.status in ("unreadable", "failed"):
                    context.log.error(f"{fmt.record_type}: {rep.message}")
                elif rep.extra_columns or rep.missing_columns:
                    context.log.warning(f"{rep.file_name}: schema drift, extra {rep.extra_columns}, "
                                        f"missing {rep.missing_columns}")
            context.log.info(f"{fmt.record_type}: {dict(Counter(r.status for r in reports))}")
            seconds = sum(r.writer_seconds for r in reports)
            yield dg.MaterializeResult(asset_key=_key(fmt), metadata=_metadata(reports, seconds, con, fmt))
    finally:
        con.close()


STAGING_KEYS = [_key(fmt) for fmt in FORMATS]
