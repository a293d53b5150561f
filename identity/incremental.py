"""Incremental identity: re-resolve only the part of the graph that new deliveries touch.

A nightly delivery changes a few percent of the records, yet every guard, component
and stable id of a full ``resolve`` is recomputed for all of them. This module finds
the smallest set of records whose results can change and lets ``resolve`` run its
usual steps on that set alone, then merges the results into the persisted tables.

Why that is exact. Every decision of the graph is local to a *region*: a connected
component of records over every linking identifier before any guard (rejected and
dropped ones included; placeholders and name/gender attributes excluded, they never
link). A cardinality guard on identifier X looks only at the records carrying X; the
household guard on phone P looks at the guard-filtered components of P's records,
each inside P's region; customers are components of a subset of the region's links;
an old customer lies inside one old region. So if ``A`` is a union of regions of the
new graph, resolving ``A`` alone gives, for ``A``, exactly what a full run gives, and
every record outside ``A`` keeps its previous result. ``A`` is built as:

* the changed records: current rows whose (record_id, version) the last run did not
  see (new records and new deliveries of old ones). Versions grow, so these are the
  rows above the highest version the last run saw;
* every record of the old regions that hold a record no longer current (re-delivered,
  erased, withdrawn), or that link through an identifier a changed or gone record carries.

Placeholders are the one value-wide rule (a blocklisted number is rejected wherever it
appears), and it needs no region: ``phone_status`` is a function of the number, so a
token is a placeholder on every record or on none, and never links.

A new region is a changed record plus the old regions it touches, so ``A`` is a union
of new regions. Taking a region too many is always safe (it is recomputed
unchanged); the planner errs that way, never the other.

Two choices depend on an order: new customer ids are issued in the order of their
component's smallest record number (``rk``), and split ties are broken on it. The
planner numbers ``A``'s records after every number in the warehouse, in the same
(record_type, record_id) order a full run uses, so within ``A`` the order is the
same and so are the ids. ``rk`` itself is an internal key: after incremental runs it
no longer equals a full run's numbering, and nothing outside the graph relies on it.

A full run is taken instead when there is no previous state, the identity settings
or a source's columns changed (``fingerprint``, ``source_specs``), a source has no version column, identifier
numbers are not the hashed ones, or the touched set is over ``max_share`` of the
records (``IdentityConfig.incremental_max_share``: a full run is cheaper then).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import duckdb

from identity.config import IdentityConfig

STATE_DDL = """
CREATE TABLE IF NOT EXISTS identity.resolve_state (
    fingerprint VARCHAR, hashed_ids BOOLEAN, sources VARCHAR, mode VARCHAR, records_resolved BIGINT,
    run_id VARCHAR, resolved_at TIMESTAMPTZ)"""

@dataclass
class Plan:
    """What an incremental run re-resolves: ``sources`` restricted to the touched records."""

    sources: list
    changed: int  # current records new or re-delivered since the last run
    gone: int  # records of the last run no longer current
    records: int  # records re-resolved (the touched regions plus the changed records)

    @property
    def unchanged(self) -> bool:
        return self.changed == 0 and self.gone == 0


def fingerprint(cfg: IdentityConfig, identifier_hash: str) -> str:
    """A digest of the settings and the identifier numbering: a change in either means a full run."""
    return hashlib.sha256(repr((cfg, identifier_hash)).encode()).hexdigest()


def source_specs(sources: list) -> str:
    """Each source's digest, ``type=digest;...``: a source whose columns changed means a full run.

    A source that appears is not a change of settings (its records are all new), nor
    one that disappears (its records are all gone).
    """
    digests = (f"{s.record_type}=" + hashlib.sha256(repr(
        (s.channel, s.relation, s.identifiers, s.event_column, s.name_column, s.gender_column, s.version_column,
         s.row_key)
    ).encode()).hexdigest()[:16] for s in sorted(sources, key=lambda s: s.record_type))
    return ";".join(digests)


def _specs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(";") if item)


def _exists(con: duckdb.DuckDBPyConnection, table: str, column: str | None = None) -> bool:
    q = ("SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
         "AND schema_name = 'identity' AND table_name = ?")
    args = [table]
    if column:
        q += " AND column_name = ?"
        args.append(column)
    return con.execute(q, args).fetchall()[0][0] > 0


def previous_state(con: duckdb.DuckDBPyConnection) -> tuple[str, bool, str] | None:
    """(fingerprint, hashed_ids, source specs) of the last run, or None where it cannot seed an
    incremental run."""
    needed = [("resolve_state", "sources"), ("records", "region"), ("records", "version"),
              ("record_identifiers", None), ("identifier_tokens", "records"), ("record_customer", None),
              ("rejected_identifiers", None), ("dropped_links", None), ("record_links", None)]
    if not all(_exists(con, t, c) for t, c in needed):
        return None
    row = con.execute("SELECT fingerprint, hashed_ids, sources FROM identity.resolve_state").fetchall()
    return (row[0][0], bool(row[0][1]), row[0][2] or "") if len(row) == 1 else None


def plan(con: duckdb.DuckDBPyConnection, sources: list, cfg: IdentityConfig, identifier_parts,
         identifier_hash: str) -> Plan | None:
    """The touched records (TEMP ``inc_keys``, ``inc_old``) and the restricted sources, or None for a full run.

    ``identifier_parts`` is ``identity.graph._identifier_parts``: the changed records'
    identifiers are listed by the same code that lists them in a run.
    """
    if not sources or any(s.version_column is None for s in sources):
        return None
    state = previous_state(con)
    if state is None or state[:2] != (fingerprint(cfg, identifier_hash), True):
        return None
    before, now = _specs(state[2]), _specs(source_specs(sources))
    if any(before.get(t, spec) != spec for t, spec in now.items()):
        return None
    types = ", ".join(f"'{s.record_type}'" for s in sources)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE inc_changed (record_type VARCHAR, record_id VARCHAR);
        CREATE OR REPLACE TEMP TABLE inc_gone (rk BIGINT);
        CREATE OR REPLACE TEMP TABLE inc_iids (iid BIGINT);""")
    con.execute(f"INSERT INTO inc_gone SELECT rk FROM identity.records WHERE record_type NOT IN ({types})")
    seen = {rt: (n, top) for rt, n, top in con.execute(
        "SELECT record_type, count(*), max(version) FROM identity.records GROUP BY record_type").fetchall()}
    newer = {}  # per source, the filter that selects its changed rows
    for s in sources:
        n_before, top = seen.get(s.record_type, (0, None))
        newer[s.record_type] = f"WHERE {s.version_column} > {top}" if top is not None else ""
        _changed_and_gone(con, s, newer[s.record_type], n_before)
    changed = con.execute("SELECT count(*) FROM inc_changed").fetchall()[0][0]
    gone = con.execute("SELECT count(*) FROM inc_gone").fetchall()[0][0]
    before_count = sum(n for n, _ in seen.values())
    if changed == 0 and gone == 0:
        return Plan(sources, 0, 0, 0)
    total = before_count - gone + changed  # the current records: the last run's still current, plus the changed

    # every identifier whose carriers changed: the changed records' (numbered as a run numbers
    # them) and the gone records'.
    for s in sources:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE inc_src AS
            SELECT 0::BIGINT AS rk, * FROM {s.relation} {newer[s.record_type]}""")
        parts = identifier_parts(s, "inc_src", cfg)
        if parts:
            con.execute(f"INSERT INTO inc_iids SELECT DISTINCT {identifier_hash} FROM ({' UNION ALL '.join(parts)})")
    con.execute("INSERT INTO inc_iids SELECT DISTINCT iid FROM identity.record_identifiers "
                "SEMI JOIN inc_gone USING (rk)")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE inc_regions AS
            SELECT DISTINCT r.region FROM identity.records r
            SEMI JOIN (SELECT rk FROM identity.record_identifiers i SEMI JOIN inc_iids USING (iid) WHERE i.links)
                USING (rk)
            UNION SELECT region FROM identity.records SEMI JOIN inc_gone USING (rk);
        -- every record of the last run that is re-resolved (and so removed from the persisted tables first)
        CREATE OR REPLACE TEMP TABLE inc_old AS
            SELECT rk, record_type, record_id FROM identity.records SEMI JOIN inc_regions USING (region);
        CREATE OR REPLACE TEMP TABLE inc_keys AS
            SELECT record_type, record_id FROM inc_old ANTI JOIN inc_gone USING (rk)
            UNION SELECT record_type, record_id FROM inc_changed;
        DROP TABLE inc_src; DROP TABLE inc_iids; DROP TABLE inc_regions;""")
    records = con.execute("SELECT count(*) FROM inc_keys").fetchall()[0][0]
    if records > cfg.incremental_max_share * total:
        return None
    # each source's touched rows, materialised: the run reads a source once per identifier kind
    restricted = []
    for i, s in enumerate(sources):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE inc_rows_{i} AS
            SELECT * FROM {s.relation}
            SEMI JOIN (SELECT record_id FROM inc_keys WHERE record_type = '{s.record_type}') USING (record_id)""")
        restricted.append(replace(s, relation=f"inc_rows_{i}"))
    return Plan(restricted, changed, gone, records)


def tokens_agree(con: duckdb.DuckDBPyConnection) -> bool:
    """True when no identifier number of this run stands for another token in the warehouse.

    A full run checks its numbers against each other (``number_identifiers``); an
    incremental run must also check them against the numbers it merges into.
    """
    clashes = con.execute("""
        SELECT count(*) FROM id_tokens n JOIN identity.identifier_tokens t USING (iid)
        WHERE t.kind <> n.kind OR t.value <> n.value""").fetchall()
    return clashes[0][0] == 0


# Persisted per-record tables, keyed by rk: what replaces the touched records' old rows.
RK_TABLES = ("records", "record_identifiers", "record_links", "dropped_links")


def merge(con: duckdb.DuckDBPyConnection, queries: dict[str, str], run_id: str) -> None:
    """Replace the touched records' rows in the persisted tables with this run's (``queries``: table -> SELECT).

    The old rows to remove are those of the records in ``inc_old``; rejected
    identifiers and tokens carry no record number, so they are matched through the
    identifiers those records carried. A placeholder's record count spans every
    region, so placeholder rows are counted again over the whole table. The customers
    the touched records belonged to, before and after, go to ``identity.touched_customers``
    for the mart.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE inc_lineage AS {queries['record_customer']}")
    con.execute("""
        INSERT INTO identity.touched_customers
        SELECT DISTINCT customer_id, ? FROM (
            SELECT customer_id FROM identity.record_customer SEMI JOIN inc_old USING (record_type, record_id)
            UNION ALL SELECT customer_id FROM inc_lineage)
        WHERE customer_id IS NOT NULL""", [run_id])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE inc_old_iid AS
            SELECT DISTINCT iid FROM identity.record_identifiers SEMI JOIN inc_old USING (rk);
        DELETE FROM identity.rejected_identifiers r USING (
            SELECT kind, value FROM identity.identifier_tokens SEMI JOIN inc_old_iid USING (iid)) o
            WHERE r.kind = o.kind AND r.value = o.value;
        DELETE FROM identity.rejected_identifiers WHERE reason = 'placeholder or blocklisted number';
        DELETE FROM identity.record_customer r USING inc_old o
            WHERE r.record_type = o.record_type AND r.record_id = o.record_id;""")
    for table in RK_TABLES:
        con.execute(f"DELETE FROM identity.{table} WHERE rk IN (SELECT rk FROM inc_old)")
    for table in RK_TABLES:
        con.execute(f"INSERT INTO identity.{table} BY NAME {queries[table]}")
    con.execute("INSERT INTO identity.record_customer BY NAME SELECT * FROM inc_lineage")
    con.execute(f"""
        INSERT INTO identity.rejected_identifiers BY NAME
            SELECT * FROM ({queries['rejected_identifiers']}) WHERE reason <> 'placeholder or blocklisted number';
        INSERT INTO identity.identifier_tokens BY NAME
            SELECT * FROM ({queries['identifier_tokens']}) ANTI JOIN identity.identifier_tokens USING (iid);
        DELETE FROM identity.identifier_tokens
            WHERE iid IN (SELECT iid FROM inc_old_iid ANTI JOIN identity.record_identifiers USING (iid));
        -- an identifier's links all lie in its region, so the touched ones are counted in full by this run
        UPDATE identity.identifier_tokens t SET records = coalesce(d.records, 0)
            FROM (SELECT iid FROM inc_old_iid UNION SELECT iid FROM id_tokens) x LEFT JOIN id_degree d USING (iid)
            WHERE t.iid = x.iid AND t.records IS DISTINCT FROM coalesce(d.records, 0);
        INSERT INTO identity.rejected_identifiers BY NAME
            SELECT t.kind, t.value, 'placeholder or blocklisted number' AS reason, count(*) AS records,
                   NULL::VARCHAR AS detail
            FROM identity.record_identifiers i JOIN identity.identifier_tokens t USING (iid)
            WHERE t.kind = 'phone' AND NOT i.links GROUP BY t.kind, t.value;
        DROP TABLE inc_old_iid;""")


def _changed_and_gone(con: duckdb.DuckDBPyConnection, s, newer: str, n_before: int) -> None:
    """Add one source's changed records to ``inc_changed`` and its gone records to ``inc_gone``.

    Versions grow (a delivery's ``delivery_seq`` exceeds every earlier one), so the changed
    records are the current rows above the highest version the last run saw (``newer``): a
    filter that skips all but the newest row groups, instead of a join of every current row
    against every record. Of the last run's records, those a changed record replaced are gone;
    any other (erased, withdrawn) shows in the counts: the current rows are the last run's
    still current plus the changed, so ``gone = before - current + changed``. Only when that
    exceeds the replaced (an erasure) are the two sides compared row by row.
    """
    rt, version = s.record_type, s.version_column
    changed = con.execute(f"INSERT INTO inc_changed SELECT '{rt}', record_id FROM {s.relation} {newer}"
                          ).fetchall()[0][0]
    replaced = con.execute(f"""
        INSERT INTO inc_gone
        SELECT rk FROM identity.records r SEMI JOIN (SELECT record_id FROM inc_changed WHERE record_type = '{rt}')
            USING (record_id) WHERE r.record_type = '{rt}'""").fetchall()[0][0]
    current = con.execute(f"SELECT count(*) FROM {s.relation}").fetchall()[0][0]
    if n_before - current + changed > replaced:
        con.execute(f"""
            INSERT INTO inc_gone
            SELECT rk FROM (SELECT rk, record_id, version FROM identity.records WHERE record_type = '{rt}')
            ANTI JOIN (SELECT record_id, {version}::BIGINT AS version FROM {s.relation}) USING (record_id, version)
            ANTI JOIN (SELECT record_id FROM inc_changed WHERE record_type = '{rt}') USING (record_id)""")
