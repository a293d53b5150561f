"""A landing-folder sensor that never opens DuckDB.

The cursor is a digest of the landing folder's file names, sizes and mtimes; a
change starts one refresh run, keyed by the digest so a tick never starts the
same run twice. Which files are actually new is decided by the run (file ledger).
"""

from __future__ import annotations

import hashlib

import dagster as dg

from assets.landing.formats import FORMATS
from pipelines.warehouse import Layout, scv_home


def landing_digest(layout: Layout) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for fmt in FORMATS:
        for path in sorted(layout.landing.glob(fmt.glob)):
            st = path.stat()
            h.update(f"{path.relative_to(layout.landing)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            n += 1
    return h.hexdigest()[:16], n


def landing_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(name="scv_landing_sensor", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Starts a refresh when files are added to or changed in $SCV_HOME/landing.")
    def _sensor(context: dg.SensorEvaluationContext):
        digest, n = landing_digest(Layout(scv_home()))
        if n == 0:
            return dg.SkipReason("landing folder is empty")
        if digest == context.cursor:
            return dg.SkipReason(f"no change in {n} landing files")
        context.update_cursor(digest)
        return dg.RunRequest(run_key=f"landing-{digest}", tags={"trigger": "landing_sensor", "files": str(n)})

    return _sensor
