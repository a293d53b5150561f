"""Dagster resources: where the data lives and which keys to use, from the environment."""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from identity.config import IdentityConfig
from pipelines.warehouse import Layout, open_build, publish, reset_for_rebuild, scv_home
from privacy import keys

log = logging.getLogger(__name__)
REBUILD_TAG = "scv/rebuild"


def as_of_date() -> date:
    """Analytics date: ``SCV_AS_OF`` (YYYY-MM-DD) for backfills and reproducible runs, else today in Shanghai."""
    value = os.environ.get("SCV_AS_OF")
    return date.fromisoformat(value) if value else datetime.now(ZoneInfo("Asia/Shanghai")).date()


class ScvResource(dg.ConfigurableResource):
    """Paths, keys and the run's private warehouse connection.

    ``home`` defaults to ``SCV_HOME`` (else the repo's ``data/``); tests pass their own.
    """

    home: str = ""
    _rebuild: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # a run tagged scv/rebuild=true starts from an empty warehouse (ids and erasures kept)
        run = getattr(context, "dagster_run", None)
        self._rebuild = bool(run and run.tags.get(REBUILD_TAG) == "true")

    def layout(self) -> Layout:
        return Layout(Path(self.home).resolve() if self.home else scv_home())

    def keyring(self) -> keys.Keyring:
        """The brand's keys. Only an unconfigured, empty demo setup gets a fresh dev key."""
        layout = self.layout()
        if not keys.key_source_configured() and not (keys.key_dir() / keys.KEYRING_FILE).exists():
            if layout.warehouse.exists():
                raise keys.MissingKey(
                    f"the warehouse at {layout.warehouse} exists but no key is configured: set "
                    f"{keys.KEY_DIR_ENV} or {keys.MASTER_KEY_ENV} to the keys it was built with"
                )
            folder = keys.init_keys()
            log.warning("created a local development key in %s (never use it for real data)", folder)
        return keys.load_keyring()

    def connect(self, run_id: str) -> duckdb.DuckDBPyConnection:
        fresh = not self.layout().build_file(run_id).exists()
        con = open_build(self.layout(), run_id)
        if fresh and self._rebuild:
            dropped = reset_for_rebuild(con)
            log.warning("full rebuild: dropped %d tables and views; customer ids and erasures kept", len(dropped))
        return con

    def publish(self, run_id: str) -> None:
        publish(self.layout(), run_id)

    def identity_config(self) -> IdentityConfig:
        return IdentityConfig.load()

    def now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)
