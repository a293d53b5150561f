"""Everything after staging, as plain functions: used by the Dagster assets and by
operator commands (erase, key rotation) that must refresh the marts in one go."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb

from assets.landing.formats import FORMATS
from assets.landing.load import ROW_KEY
from assets.marts.exports import write_exports
from assets.marts.profile import MartBuild, MartConfig, build_profile
from assets.marts.sources import event
from assets.marts.views import create_views
from identity.config import IdentityConfig
from identity.graph import ResolveStats, Source, resolve
from privacy.audit import create_privacy_views


def present_types(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Record types that have a staging table in this warehouse."""
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging' "
                       "AND table_name LIKE '%_current'").fetchall()
    return {r[0].removesuffix("_current") for r in rows}


def identity_sources(con: duckdb.DuckDBPyConnection) -> list[Source]:
    """Identity sources for every staging table that exists, from the format registry."""
    present = present_types(con)
    return [
        Source(fmt.record_type, fmt.channel, f"staging.{fmt.record_type}_current", fmt.identifiers,
               event(fmt.record_type),
               "name_token" if any(f.role == "name" for f in fmt.fields) else None,
               "gender" if any(f.role == "gender" for f in fmt.fields) else None,
               version_column="delivery_seq", row_key=ROW_KEY)
        for fmt in FORMATS if fmt.record_type in present
    ]


def build_marts(con: duckdb.DuckDBPyConnection, home: Path, as_of: date) -> MartBuild:
    """Profile, golden attributes, marketer views and the audit views: one sequence for runs and operators."""
    done = build_profile(con, present_types(con), MartConfig(as_of=as_of))
    create_views(con)
    create_privacy_views(con, home)
    return done


def rebuild_downstream(con: duckdb.DuckDBPyConnection, home: Path, exports_dir: Path, run_id: str, now: datetime,
                       as_of: date, identity_cfg: IdentityConfig | None = None) -> ResolveStats:
    """Identity graph, profile, views and exports from the current staging tables."""
    stats = resolve(con, identity_sources(con), identity_cfg or IdentityConfig.load(), run_id, now)
    build_marts(con, home, as_of)
    write_exports(con, exports_dir)
    return stats
