"""Automation: the landing-folder sensor and the nightly schedule.

Neither ever opens DuckDB: a tick must stay cheap (it runs every minute in the
daemon) and must never take a file handle on a warehouse a run is about to swap.
What is actually new is decided by the run itself (the file ledger).
"""


import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from assets.landing.formats import FORMATS
from pipelines.warehouse import Layout, scv_home

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A file modified this recently may still be being copied in: wait for it to settle
# rather than start a run that loads half a file.
SETTLE_SECONDS = 30


@dataclass(frozen=True)
class LandingState:
    digest: str  # names, sizes and mtimes of every landing file a format reads
    files: int
    unsettled: int  # files modified within SETTLE_SECONDS


def landing_state(layout: Layout, now: float | None = None, settle_seconds: float = SETTLE_SECONDS) -> LandingState:
    """Fingerprint the landing folder from file metadata only (no file is opened)."""
    now = time.time() if now is None else now
    h = hashlib.sha256()
    files = unsettled = 0
    for fmt in FORMATS:
        for path in sorted(layout.landing.glob(fmt.glob)):
            st = path.stat()
            h.update(f"{path.relative_to(layout.landing)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            files += 1
            unsettled += now - st.st_mtime < settle_seconds
    return LandingState(h.hexdigest()[:16], files, unsettled)


def landing_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(name="scv_landing_sensor", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Starts a refresh when files are added to or changed in $SCV_HOME/landing (once they "
                           f"have not changed for {SETTLE_SECONDS} s). Reads file metadata only, never DuckDB.")
    def _sensor(context: dg.SensorEvaluationContext):
        state = landing_state(Layout(scv_home()))
        if state.files == 0:
            return dg.SkipReason("landing folder is empty")
        if state.digest == context.cursor:
            return dg.SkipReason(f"no change in {state.files} landing files")
        if state.unsettled:
            return dg.SkipReason(f"{state.unsettled} landing file(s) changed in the last {SETTLE_SECONDS} s: "
                                 "waiting for the delivery to finish")
        context.update_cursor(state.digest)
        return dg.RunRequest(run_key=f"landing-{state.digest}",
                             tags={"scv/trigger": "landing_sensor", "scv/landing_files": str(state.files)})

    return _sensor


def nightly_schedule(job) -> dg.ScheduleDefinition:
    @dg.schedule(name="scv_nightly", job=job, cron_schedule="0 2 * * *", execution_timezone="Asia/Shanghai",
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Nightly refresh at 02:00 Shanghai time, after the channels' overnight exports. "
                             "One run per night: the run key is the night's date.")
    def _schedule(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time or datetime.now(SHANGHAI)
        night = when.astimezone(SHANGHAI).date().isoformat()
        return dg.RunRequest(run_key=f"nightly-{night}",
                             tags={"scv/trigger": "schedule", "scv/scheduled_for": night})

    return _schedule
