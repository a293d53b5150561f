"""Landing data for the benchmark: a generated base delivery and a ~1% next-day delta.

Why the delta is held out rather than generated separately: the generator's
record ids (order numbers, lead numbers, openids) and WeChat unionids are
functions of the person index, not of the seed, so a second small generation
with another seed would re-deliver existing record ids with unrelated content
and give existing people's unionids to strangers. Holding out a random ~1% of
every file's rows, and delivering them later as new files of the same types,
keeps one consistent population and one ground truth while the delta is still
"new files, new rows" to the pipeline, exactly as the next day's exports are.

Rows are moved byte for byte (the channel's encoding, BOM, quoting and damage
are kept), so the delta exercises the same readers as the base.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from assets.landing.formats import FORMATS, FileFormat
from pipelines.generate import generate_landing

# Landing rows per generated person, measured on the generator (20k-200k people):
# ``--records N`` asks for round(N / ROWS_PER_PERSON) people.
ROWS_PER_PERSON = 5.24
BASE_BATCH = "2026-11-21"
DELTA_BATCH = "2026-11-22"


@dataclass
class Dataset:
    """Where the benchmark's landing data and truths are, and their size."""

    home: Path  # SCV_HOME: landing/ lives here
    delta: Path  # held-out files, moved into landing/ for the incremental run
    truth: Path  # truth of every record (base + delta)
    base_truth: Path  # truth of the records delivered in the base files only
    people: int
    base_rows: int
    delta_rows: int
    rows_by_type: dict[str, int] = field(default_factory=dict)
    generate_seconds: float = 0.0

    @property
    def landing(self) -> Path:
        return self.home / "landing"


def people_for_records(records: int) -> int:
    return max(1, round(records / ROWS_PER_PERSON))


def _split_records(body: bytes, csv_quotes: bool) -> list[bytes]:
    """Split a file body into records; CSV records may span lines inside quotes."""
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not csv_quotes or b'"' not in body:
        return lines
    records, pending, quotes = [], [], 0
    for line in lines:  # a newline inside an open quote belongs to the field
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            records.append(b"\n".join(pending))
            pending, quotes = [], 0
    if pending:
        records.append(b"\n".join(pending))
    return records


def _record_ids(records: list[bytes], fmt: FileFormat, encoding: str, header: bytes) -> pl.Series:
    """The record id of each raw record (the id column of a CSV row, or the id key of a JSON line)."""
    text = pl.Series([r.decode(encoding, errors="replace") for r in records], dtype=pl.String)
    if fmt.reader == "jsonl":
        return text.str.json_path_match(f"$.{fmt.id_field.source}").str.strip_chars()
    columns = [c.strip() for c in header.decode(encoding).removeprefix("\ufeff").split(",")]
    position = columns.index(fmt.id_field.source)
    if position == 0:  # every generated type today: no need to parse the whole row
        return text.str.extract(r'^"?([^,"]*)', 1).str.strip_chars()
    return pl.Series([row[position].strip() if len(row) > position else None
                      for row in csv.reader(text.to_list())], dtype=pl.String)


def hold_out(landing: Path, delta: Path, share: float, seed: int,
             base_batch: str = BASE_BATCH, delta_batch: str = DELTA_BATCH) -> tuple[int, pl.DataFrame]:
    """Move a random ``share`` of every file's records to ``delta/`` as next-day files.

    Returns the number of rows moved and the (record_type, record_id) pairs that are
    delivered only in the delta (to exclude them from the base run's truth).
    """
    rng = np.random.default_rng(seed)
    moved = 0
    only_delta = []
    for fmt in FORMATS:
        encoding = "gb18030" if fmt.encoding == "gb18030" else "utf-8"
        base_ids, delta_ids = [], []
        for path in sorted(landing.glob(fmt.glob)):
            data = path.read_bytes()
            header, body = (b"", data) if fmt.reader == "jsonl" else data.split(b"\n", 1)
            records = _split_records(body, csv_quotes=fmt.reader == "csv")
            take = rng.random(len(records)) < share
            held = [r for r, t in zip(records, take, strict=True) if t]
            kept = [r for r, t in zip(records, take, strict=True) if not t]
            prefix = header + b"\n" if header else b""
            if held and kept:
                target = delta / path.relative_to(landing).as_posix().replace(base_batch, delta_batch)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(prefix + b"\n".join(held) + b"\n")
                path.write_bytes(prefix + b"\n".join(kept) + b"\n")
                moved += len(held)
                delta_ids.append(_record_ids(held, fmt, encoding, header))
            base_ids.append(_record_ids(kept if held and kept else records, fmt, encoding, header))
        if delta_ids:
            gone = set(pl.concat(delta_ids).to_list()) - set(pl.concat(base_ids).to_list())
            only_delta.extend((fmt.record_type, i) for i in gone if i is not None)
    frame = pl.DataFrame(only_delta, schema={"record_type": pl.String, "record_id": pl.String}, orient="row")
    return moved, frame


def prepare(work: Path, people: int, seed: int, delta_share: float = 0.01) -> Dataset:
    """Generate the landing folder under ``work/home`` and split off the delta.

    Meant to run in a child process (see ``benchmarks.run``) so that the
    generator's memory never counts towards the pipeline's peak RSS.
    """
    import time

    started = time.perf_counter()
    home = work / "home"
    landing = home / "landing"
    truth = work / "truth.csv"
    stats = generate_landing(people, seed, landing, truth, batch=BASE_BATCH)
    delta = work / "delta"
    moved, only_delta = hold_out(landing, delta, delta_share, seed + 1)
    base_truth = work / "base-truth.csv"
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("only_delta", only_delta)
    con.execute(f"""COPY (SELECT t.* FROM read_csv('{truth.as_posix()}', all_varchar = true) t
                          ANTI JOIN only_delta d USING (record_type, record_id))
                    TO '{base_truth.as_posix()}' (HEADER)""")
    con.close()
    total = stats["total_rows"]
    return Dataset(home, delta, truth, base_truth, people, total - moved, moved, stats["rows"],
                   math.floor((time.perf_counter() - started) * 100) / 100)


PATHS = ("home", "delta", "truth", "base_truth")


def prepare_or_reuse(work: Path, people: int, seed: int, delta_share: float = 0.01) -> Dataset:
    """:func:`prepare`, or the data a previous run with the same size left in ``work``.

    Generating 10M records takes minutes; when tuning one stage the same data is run
    again and again. A reused folder is reset to "base delivery only, nothing built":
    delta files copied into ``landing/`` by the last incremental run are removed, and
    everything the pipeline wrote under ``home/`` (warehouse, exports, Dagster storage)
    is deleted.
    """
    import json
    import shutil

    manifest = work / "dataset.json"
    wanted = {"people": people, "seed": seed, "delta_share": delta_share}
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("params") == wanted:
            ds = Dataset(**{k: work / v if k in PATHS else v for k, v in saved["dataset"].items()})
            for path in ds.delta.rglob("*"):
                copied = ds.landing / path.relative_to(ds.delta)
                if path.is_file() and copied.exists():
                    copied.unlink()
            for child in ds.home.iterdir():
                if child.name != "landing":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            ds.generate_seconds = 0.0
            return ds
    for child in (work / "home", work / "delta"):
        shutil.rmtree(child, ignore_errors=True)
    ds = prepare(work, people, seed, delta_share)
    # paths relative to ``work``, so a copied folder is reused where it now is
    manifest.write_text(json.dumps({"params": wanted, "dataset": {
        k: v.relative_to(work).as_posix() if k in PATHS else v for k, v in ds.__dict__.items()}}))
    return ds
