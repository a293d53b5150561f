"""Micro-benchmark of phone normalisation: strings/s, and agreement with the rule book.

Two inputs: every phone column of the generated landing files (the real mix:
masked, virtual, Excel-mangled, placeholders, landlines, hand-typed spellings),
and a set of the common mainland spellings only (what the vectorised fast path
is for). Agreement compares :func:`identity.phones.normalize_phones` row by row
with :func:`identity.phones.reference_normalize`, the one-value-at-a-time rule
book built on ``phonenumbers``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from assets.landing.formats import FORMATS
from assets.landing.readers import UnreadableFile, read_file
from identity.phones import fast_path_share, normalize_phones, reference_normalize

# Common spellings of one mainland mobile: plain, +86, 0086, spaced, dashed.
COMMON_FORMS = ("{n}", "+86{n}", "+86 {a} {b} {c}", "0086{n}", "86{n}", "{a} {b} {c}", "{a}-{b}-{c}",
                "+86-{a}-{b}-{c}", " {n} ", "'{n}")


@dataclass
class PhoneBench:
    name: str
    strings: int
    distinct: int
    seconds: float
    fast_path_share: float
    agreement_sample: int
    agreement: float
    disagreements: list[tuple[str, tuple, tuple]]

    @property
    def per_second(self) -> float:
        return self.strings / self.seconds if self.seconds else 0.0


def landing_phones(landing: Path) -> pl.Series:
    """Every raw value of every phone-role column in the landing folder, as delivered."""
    parts = []
    for fmt in FORMATS:
        columns = [f.source for f in fmt.fields if f.role == "phone"]
        if not columns:
            continue
        for path in sorted(landing.glob(fmt.glob)):
            try:
                frame = read_file(path, fmt).frame
            except UnreadableFile:
                continue
            parts.extend(frame[c].alias("raw") for c in columns)
    return pl.concat(parts) if parts else pl.Series("raw", [], dtype=pl.String)


def common_forms(n: int, seed: int = 5) -> pl.Series:
    """``n`` valid mainland mobiles in the spellings channels use most."""
    rng = np.random.default_rng(seed)
    prefixes = np.array([130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 155, 158, 159, 166, 177, 180,
                         181, 186, 187, 188, 189, 198, 199])
    numbers = prefixes[rng.integers(0, len(prefixes), n)] * 100_000_000 + rng.integers(0, 100_000_000, n)
    form = rng.integers(0, len(COMMON_FORMS), n)
    frame = pl.DataFrame({"n": numbers.astype(str), "form": form}).with_columns(
        a=pl.col("n").str.slice(0, 3), b=pl.col("n").str.slice(3, 4), c=pl.col("n").str.slice(7, 4))
    out = pl.lit(None, pl.String)
    for i, template in reversed(list(enumerate(COMMON_FORMS))):
        pieces = []
        for text, key in _template_pieces(template):
            pieces.append(pl.lit(text) if key is None else pl.col(key))
        out = pl.when(pl.col("form") == i).then(pl.concat_str(pieces)).otherwise(out)
    return frame.select(out.alias("raw"))["raw"]


def _template_pieces(template: str) -> list[tuple[str, str | None]]:
    pieces, rest = [], template
    while "{" in rest:
        before, _, after = rest.partition("{")
        key, _, rest = after.partition("}")
        if before:
            pieces.append((before, None))
        pieces.append(("", key))
    if rest:
        pieces.append((rest, None))
    return pieces


def bench(name: str, raw: pl.Series, sample: int = 20_000, repeats: int = 3, seed: int = 3) -> PhoneBench:
    """Best of ``repeats`` timings of :func:`normalize_phones`, then agreement on a sample."""
    raw = raw.alias("raw")
    best = float("inf")
    out = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = normalize_phones(raw)
        best = min(best, time.perf_counter() - start)
    assert out is not None and out.height == raw.len()
    distinct = raw.unique()
    picked = distinct.sample(min(sample, distinct.len()), seed=seed) if distinct.len() else distinct
    fast = normalize_phones(picked)
    wrong = []
    for value, row in zip(picked.to_list(), fast.iter_rows(), strict=True):
        expected = reference_normalize(value)
        if tuple(row) != tuple(expected):
            wrong.append((value, tuple(row), tuple(expected)))
    agreement = 1 - len(wrong) / picked.len() if picked.len() else 1.0
    return PhoneBench(name, raw.len(), distinct.len(), best, fast_path_share(raw.drop_nulls()), picked.len(),
                      agreement, wrong[:5])
