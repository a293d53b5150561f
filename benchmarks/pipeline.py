"""One pass of the real pipeline, stage by stage, with the time each stage took.

The stages call the same library functions the Dagster assets call, in the same
order (staging of every file type, identity, mart + views, exports, publish; see
``assets/staging.py``, ``assets/identity_graph.py``, ``assets/profile.py``), so the
numbers are the pipeline's, minus Dagster's own run overhead and the asset checks
(a few COUNT queries). ``--dagster`` in ``benchmarks.run`` times the real job too.

Ingest is split by what :func:`~assets.landing.load.ingest_types` records per file:
seconds reading and staging it, with staging's parts (phones, the other fields,
tokens, encryption: ``assets.landing.stage.STAGE_PARTS``), wherever the file was
prepared (a worker process or here), and the writer's seconds waiting for it and
writing it (of which merging its rows into ``_latest``). With workers the preparing
overlaps the writer, so the parts do not add up to the ingest's wall time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from assets.downstream import identity_sources, present_types
from assets.landing.formats import FORMATS
from assets.landing.load import TIMED_PARTS, check_token_key, ingest_types
from assets.landing.stage import STAGE_PARTS
from assets.marts.exports import write_exports
from assets.marts.profile import MartConfig, build_profile
from assets.marts.views import create_views
from benchmarks.measure import RssSampler, cpu_seconds
from identity.config import IdentityConfig
from identity.graph import resolve
from pipelines.resources import as_of_date
from pipelines.warehouse import Layout, open_build, publish
from privacy.audit import create_privacy_views
from privacy.keys import Keyring


@dataclass
class IngestType:
    record_type: str
    files: int = 0
    rows: int = 0  # rows delivered in new files
    loaded: int = 0
    quarantined: int = 0
    seconds: float = 0.0  # the writer's: waiting for the files to be prepared, and writing them
    in_workers: int = 0  # files prepared in worker processes
    parts: dict[str, float] = field(default_factory=dict)


class StageFailed(RuntimeError):
    """A pipeline stage raised: carries the stages measured so far, for the report."""

    def __init__(self, result: PassResult, stage: str, error: BaseException) -> None:
        first_line = (str(error).splitlines() or [""])[0]
        super().__init__(f"stage {stage!r} failed: {type(error).__name__}: {first_line}")
        self.result, self.stage, self.error = result, stage, error


@dataclass
class PassResult:
    """Seconds per stage of one pass, and the sizes that make rows/s meaningful.

    ``cpu`` is the CPU time (user + system, this process and its reaped workers)
    per stage: on a machine shared with other users it moves much less than wall
    time, so it helps tell the pipeline's cost from the neighbours' load.
    """

    run_id: str
    stages: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    ingest: list[IngestType] = field(default_factory=list)
    ingest_parts: dict[str, float] = field(default_factory=dict)
    landing_rows: int = 0  # rows delivered in the files this pass ingested
    records: int = 0  # current staging records resolved by identity
    customers: int = 0
    export_rows: dict[str, int] = field(default_factory=dict)
    label_rounds: int = 0
    identity: dict = field(default_factory=dict)  # how identity resolved: mode, records re-resolved
    identity_phases: dict[str, float] = field(default_factory=dict)  # wall seconds by RESOLVE_PHASES
    mart: dict = field(default_factory=dict)  # how the facts were written: refreshed or rebuilt, customers refreshed
    peak_rss: dict[str, int] = field(default_factory=dict)  # per stage, when a sampler is given
    sampler: RssSampler | None = field(default=None, repr=False)

    @property
    def total(self) -> float:
        return sum(self.stages.values())

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with ExitStack() as stack:
            peak = stack.enter_context(self.sampler.track()) if self.sampler else None
            start, cpu = time.perf_counter(), cpu_seconds()
            try:
                yield
            except Exception as exc:
                raise StageFailed(self, name, exc) from exc
            finally:
                self.stages[name] = time.perf_counter() - start
                self.cpu[name] = cpu_seconds() - cpu
                if peak is not None:
                    self.peak_rss[name] = peak.rss


def run_pass(home: Path, keyring: Keyring, run_id: str, now: datetime | None = None,
             sampler: RssSampler | None = None, duckdb_settings: dict[str, str] | None = None) -> PassResult:
    """Ingest new files, resolve identities, build the mart, export and publish, timing each stage.

    ``duckdb_settings`` are what-ifs (``{"memory_limit": "6GB"}``) applied to the build
    connection, on top of the pipeline's own (``pipelines.warehouse.duckdb_config``: memory
    capped at half the RAM unless ``SCV_DUCKDB_MEMORY`` says otherwise).
    """
    layout = Layout(home)
    now = now or datetime.now(UTC).replace(microsecond=0)
    result = PassResult(run_id, sampler=sampler)

    with result.stage("open build copy"):
        con = open_build(layout, run_id)  # copies the published warehouse on an incremental run
        for name, value in (duckdb_settings or {}).items():
            con.execute(f"SET {name} = '{value}'")

    with result.stage("ingest"):
        check_token_key(con, keyring)
        by_type = ingest_types(con, layout.landing, FORMATS, keyring, run_id, now)
    for fmt in FORMATS:
        reports = by_type[fmt.record_type]
        item = IngestType(fmt.record_type, len(reports), sum(r.delivered for r in reports),
                          sum(r.loaded for r in reports), sum(r.quarantined for r in reports),
                          sum(r.writer_seconds for r in reports),
                          sum(r.prepared_in_worker for r in reports))
        item.parts = {k: sum(r.seconds.get(k, 0.0) for r in reports) for k in TIMED_PARTS}
        result.ingest.append(item)
    result.landing_rows = sum(i.rows for i in result.ingest)
    result.ingest_parts = _split_ingest(result.ingest)

    with result.stage("identity"):
        stats = resolve(con, identity_sources(con), IdentityConfig.load(), run_id, now)
    result.records, result.customers, result.label_rounds = stats.records, stats.customers, stats.iterations
    result.identity = dict(stats.extra)
    result.identity_phases = dict(stats.seconds)

    with result.stage("mart"):
        result.mart = asdict(build_profile(con, present_types(con), MartConfig(as_of=as_of_date())))
        create_views(con)
        create_privacy_views(con, home)

    with result.stage("export"):
        result.export_rows = write_exports(con, layout.build_exports(run_id))
        con.close()

    with result.stage("publish"):
        publish(layout, run_id)
    return result


def _split_ingest(items: list[IngestType]) -> dict[str, float]:
    """Ingest as read / stage and its parts (wherever files were prepared) and the writer's wait / write."""
    def total(key: str) -> float:
        return sum(i.parts.get(key, 0.0) for i in items)

    return {"read": total("read"), "stage (normalise, tokenise, encrypt)": total("stage"),
            **{f"&nbsp;&nbsp;of which {part}": total(part) for part in STAGE_PARTS},
            "writer: waiting for (in-process: preparing) files": total("wait"),
            "writer: merge, quarantine, ledger": total("write"),
            "&nbsp;&nbsp;of which merge into _latest": total("merge")}
