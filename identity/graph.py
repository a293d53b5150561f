"""The identity graph, set-based in DuckDB SQL.

Records carry identifiers (phone token, unionid token, email token, member card,
Weibo uid, buyer nick token, openid). Identifiers that pass the guards become
links; connected components of records over those links are customers. Every
step is a SQL statement over whole tables, so the same logic ports to Spark SQL,
and the only Python loop is the fixed-point loop of label propagation.

Steps (each a table in schema ``identity``):

1. ``records``: every current staging record, numbered (``rk``).
2. ``identifiers``: (rk, kind, value); names ride along as guard-only attributes.
3. ``rejected_identifiers``: blocklisted values (placeholders) and identifiers over
   a cardinality limit, with the reason. They link nothing.
4. ``components``: min-label propagation with pointer jumping; components that
   stopped changing are set aside so late iterations touch only the few that
   still move.
5. Stable ids: ``customer_registry`` + ``customer_id_history``. The oldest id
   survives a merge; on a split the part holding most of an id's records keeps it.
6. ``record_customer``: the lineage table of outputs.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from identity.config import IdentityConfig


@dataclass(frozen=True)
class Source:
    """One staging relation and the identifiers its columns carry."""

    record_type: str
    channel: str
    relation: str
    identifiers: tuple[tuple[str, str], ...]  # (kind, column)
    event_column: str | None = None
    name_column: str | None = None
    gender_column: str | None = None


@dataclass
class ResolveStats:
    records: int = 0
    linked_records: int = 0
    customers: int = 0
    iterations: int = 0
    rejected: int = 0
    new_ids: int = 0
    merges: int = 0
    splits: int = 0
    extra: dict = field(default_factory=dict)


DDL = """
CREATE SCHEMA IF NOT EXISTS identity;
CREATE TABLE IF NOT EXISTS identity.customer_registry (
    customer_id VARCHAR PRIMARY KEY, seq BIGINT, created_run VARCHAR, created_at TIMESTAMPTZ,
    status VARCHAR, merged_into VARCHAR);
CREATE TABLE IF NOT EXISTS identity.customer_id_history (
    old_id VARCHAR, new_id VARCHAR, run_id VARCHAR, reason VARCHAR, changed_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS identity.record_customer (
    channel VARCHAR, record_type VARCHAR, record_id VARCHAR, customer_id VARCHAR, matched_by VARCHAR);
"""


def _phone_condition(column: str, cfg: IdentityConfig) -> str:
    mobile = "" if cfg.match_landlines else " AND phone_is_mobile"
    return f"phone_status = 'ok'{mobile}" if column == "phone_token" else "TRUE"


def build_identifiers(con: duckdb.DuckDBPyConnection, sources: list[Source], cfg: IdentityConfig) -> None:
    """Steps 1-2: number the records and list their identifiers."""
    records = " UNION ALL ".join(
        f"SELECT '{s.record_type}' AS record_type, record_id, '{s.channel}' AS channel, "
        f"{s.event_column or 'NULL'}::TIMESTAMPTZ AS event_at FROM {s.relation}"
        for s in sources
    )
    con.execute(f"""
        CREATE OR REPLACE TABLE identity.records AS
        SELECT row_number() OVER (ORDER BY record_type, record_id) AS rk, *
        FROM ({records})""")
    parts = []
    for s in sources:
        for kind, column in s.identifiers:
            cond = _phone_condition(column, cfg) if kind == "phone" else "TRUE"
            strength = cfg.strength(s.record_type, kind)
            parts.append(
                f"SELECT '{s.record_type}' AS record_type, record_id, '{kind}' AS kind, {column}::VARCHAR AS value, "
                f"TRUE AS links, {strength} AS strength FROM {s.relation} WHERE {column} IS NOT NULL AND {cond}"
            )
            if kind == "phone":  # placeholders carry a token so the audit can count them
                parts.append(
                    f"SELECT '{s.record_type}', record_id, 'phone', {column}, FALSE, 0 FROM {s.relation} "
                    f"WHERE {column} IS NOT NULL AND phone_status = 'placeholder'"
                )
        if s.gender_column and s.record_type in cfg.gender_sources:
            parts.append(
                f"SELECT '{s.record_type}', record_id, 'gender', {s.gender_column}, FALSE, 0 FROM {s.relation} "
                f"WHERE {s.gender_column} IS NOT NULL"
            )
        if s.name_column and s.record_type in cfg.name_sources:
            parts.append(
                f"SELECT '{s.record_type}', record_id, 'name', {s.name_column}, FALSE, 0 FROM {s.relation} "
                f"WHERE {s.name_column} IS NOT NULL"
            )
    con.execute(f"""
        CREATE OR REPLACE TABLE identity.identifiers AS
        SELECT DISTINCT r.rk, i.kind, i.value, i.links, i.strength
        FROM ({' UNION ALL '.join(parts)}) i
        JOIN identity.records r USING (record_type, record_id)""")


def apply_guards(con: duckdb.DuckDBPyConnection, cfg: IdentityConfig) -> None:
    """Step 3: blocklist and cardinality limits -> ``rejected_identifiers``, ``dropped_links``, ``links``.

    For each identifier and each kind it has a limit on (a phone may sit beside at
    most one unionid, two member cards, one member name...), count the distinct
    values beside it and how many records support each. Over the limit, two cases:

    * one or a few values clearly dominate (the top ``limit`` values hold at least
      ``cfg.dominance`` of the support and the first is seen at least twice): the
      identifier is sound, and values beyond the limit or seen only once are noise
      (a phone typo on one receipt).
      Only the weakest link of each outlying record is dropped: its link to the
      outlying value, or, when that value is the stronger evidence (a member card
      against a typed phone, a name), its link to this identifier. Audited in
      ``identity.dropped_links``.
    * no value dominates (a store's own number on fifty member cards, a family
      phone with two unionids): the identifier is shared and links nothing.
      Audited in ``identity.rejected_identifiers``.
    """
    limit_rows = [(k, o, n) for k, others in cfg.limits.items() for o, n in others.items()]
    values = ", ".join(f"('{k}', '{o}', {n})" for k, o, n in limit_rows) or "(NULL, NULL, NULL)"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE g_lim(kind VARCHAR, other_kind VARCHAR, max_distinct INT);
        INSERT INTO g_lim VALUES {values};
        CREATE OR REPLACE TEMP TABLE g_cooc AS
            SELECT a.kind, a.value, b.kind AS other_kind, b.value AS other_value, l.max_distinct,
                   count(DISTINCT a.rk) AS support
            FROM identity.identifiers a
            JOIN identity.identifiers b ON a.rk = b.rk AND a.kind <> b.kind
            JOIN g_lim l ON l.kind = a.kind AND l.other_kind = b.kind
            WHERE a.links
            GROUP BY ALL;
        CREATE OR REPLACE TEMP TABLE g_ranked AS
            SELECT *, row_number() OVER (PARTITION BY kind, value, other_kind
                                         ORDER BY support DESC, other_value) AS rank_in_kind,
                      count(*) OVER (PARTITION BY kind, value, other_kind) AS n_distinct
            FROM g_cooc;
        CREATE OR REPLACE TEMP TABLE g_over AS
            SELECT kind, value, other_kind, any_value(max_distinct) AS max_distinct, any_value(n_distinct) AS n,
                   sum(support) AS total, sum(support) FILTER (rank_in_kind <= max_distinct) AS top,
                   max(support) AS top1
            FROM g_ranked WHERE n_distinct > max_distinct GROUP BY ALL;
        CREATE OR REPLACE TEMP TABLE g_shared AS
            SELECT kind, value, string_agg(n || ' distinct ' || other_kind || ' (limit ' || max_distinct || ')', '; '
                                           ORDER BY other_kind) AS detail
            FROM g_over WHERE NOT (top1 >= 2 AND top >= {cfg.dominance} * total) GROUP BY ALL;
    """)
    con.execute("""
        CREATE OR REPLACE TABLE identity.rejected_identifiers AS
        SELECT kind, value, 'placeholder or blocklisted number' AS reason, count(*) AS records, NULL::VARCHAR AS detail
        FROM identity.identifiers WHERE kind = 'phone' AND NOT links GROUP BY ALL
        UNION ALL
        SELECT s.kind, s.value, 'shared identifier over cardinality limit',
               (SELECT count(DISTINCT rk) FROM identity.identifiers i WHERE i.kind = s.kind AND i.value = s.value),
               s.detail
        FROM g_shared s""")
    con.execute("""
        CREATE OR REPLACE TABLE identity.dropped_links AS
        WITH outliers AS (
            SELECT r.kind, r.value, r.other_kind, r.other_value
            FROM g_ranked r JOIN g_over o USING (kind, value, other_kind)
            ANTI JOIN g_shared s USING (kind, value)
            WHERE r.rank_in_kind > r.max_distinct OR r.support = 1),
        records AS (
            SELECT a.rk, o.*, a.strength AS own_strength, b.strength AS other_strength, b.links AS other_links
            FROM outliers o
            JOIN identity.identifiers a ON a.kind = o.kind AND a.value = o.value
            JOIN identity.identifiers b ON b.rk = a.rk AND b.kind = o.other_kind AND b.value = o.other_value)
        SELECT DISTINCT rk,
               CASE WHEN other_links AND other_strength <= own_strength THEN other_kind ELSE kind END AS kind,
               CASE WHEN other_links AND other_strength <= own_strength THEN other_value ELSE value END AS value,
               'outlying ' || other_kind || ' beside ' || kind || ' over its limit' AS reason
        FROM records""")
    con.execute("""
        CREATE OR REPLACE TABLE identity.links AS
        SELECT i.rk, dense_rank() OVER (ORDER BY i.kind, i.value) AS iid, i.kind, i.value
        FROM identity.identifiers i
        ANTI JOIN identity.rejected_identifiers r USING (kind, value)
        ANTI JOIN identity.dropped_links d USING (rk, kind, value)
        WHERE i.links""")


def apply_household_guard(con: duckdb.DuckDBPyConnection, cfg: IdentityConfig) -> int:
    """Step 3b: a phone that joins people who look different elsewhere is shared.

    The record-level limits see a family phone only when both names sit on records
    that carry the phone. Here the graph is first built without phone links; each
    part ("anchor") gathers the names and genders its records carry through cards,
    unionids, emails, Weibo uids. A phone whose records fall into anchors with more
    than one distinct name, or more than one gender, is judged like any over-limit
    identifier: one clearly dominant value keeps the phone and only the outlying
    anchors' phone links drop; otherwise the phone is rejected. Returns how many
    phones were touched.
    """
    kinds = [k for k in cfg.household_attributes]
    if not kinds:
        return 0
    connected_components(con, links="(SELECT * FROM identity.links WHERE kind <> 'phone')", out="hh_anchor")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE hh_rec AS
            SELECT l.rk, l.value AS phone, coalesce(a.comp, -l.rk) AS anchor
            FROM identity.links l LEFT JOIN hh_anchor a USING (rk) WHERE l.kind = 'phone';""")
    touched = 0
    for kind in kinds:
        con.execute(f"""
            -- anchors carrying one value only: an anchor that is itself inconsistent says nothing
            CREATE OR REPLACE TEMP TABLE hh_anchor_value AS
                SELECT coalesce(a.comp, -i.rk) AS anchor, any_value(i.value) AS value
                FROM identity.identifiers i LEFT JOIN hh_anchor a USING (rk) WHERE i.kind = '{kind}'
                GROUP BY 1 HAVING count(DISTINCT i.value) = 1;
            CREATE OR REPLACE TEMP TABLE hh_phone AS
                SELECT r.phone, n.value, count(DISTINCT r.anchor) AS support
                FROM (SELECT DISTINCT phone, anchor FROM hh_rec) r JOIN hh_anchor_value n USING (anchor)
                GROUP BY ALL;
            CREATE OR REPLACE TEMP TABLE hh_over AS
                SELECT phone, count(*) AS n, sum(support) AS total, max(support) AS top1,
                       arg_max(value, support) AS top_value
                FROM hh_phone GROUP BY phone HAVING count(*) > 1;
            CREATE OR REPLACE TEMP TABLE hh_over AS
                SELECT * FROM hh_over o
                WHERE NOT EXISTS (SELECT 1 FROM identity.rejected_identifiers r
                                  WHERE r.kind = 'phone' AND r.value = o.phone);
        """)
        con.execute(f"""
            INSERT INTO identity.rejected_identifiers
            SELECT 'phone', phone, 'shared identifier: joins people with different {kind}s',
                   (SELECT count(*) FROM hh_rec r WHERE r.phone = o.phone),
                   o.n || ' distinct {kind}s across linked records'
            FROM hh_over o WHERE NOT (top1 >= 2 AND top1 >= {cfg.dominance} * total)""")
        con.execute(f"""
            INSERT INTO identity.dropped_links
            SELECT DISTINCT r.rk, 'phone', r.phone, 'phone shared with a person of another {kind} elsewhere'
            FROM hh_over o JOIN hh_rec r USING (phone) JOIN hh_anchor_value n USING (anchor)
            WHERE top1 >= 2 AND top1 >= {cfg.dominance} * total AND n.value <> o.top_value
              AND NOT EXISTS (SELECT 1 FROM identity.dropped_links d
                              WHERE d.rk = r.rk AND d.kind = 'phone' AND d.value = r.phone)""")
        touched += con.execute("SELECT count(*) FROM hh_over").fetchall()[0][0]
    con.execute("""
        DELETE FROM identity.links l USING identity.rejected_identifiers r
        WHERE l.kind = r.kind AND l.value = r.value;
        DELETE FROM identity.links l USING identity.dropped_links d
        WHERE l.rk = d.rk AND l.kind = d.kind AND l.value = d.value;""")
    return touched


def connected_components(con: duckdb.DuckDBPyConnection, max_iterations: int = 200,
                         links: str = "identity.links", out: str = "identity.components") -> int:
    """Step 4: min-label propagation over record <-> identifier links.

    Each round an identifier takes the smallest label of its records, then each
    record the smallest label of its identifiers, then jumps to its label's label.
    A label whose identifiers all carry that single label is a finished component:
    its records move to ``lp_done`` and leave the working set, so rounds shrink.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lp_m AS SELECT rk, iid FROM {links};
        CREATE OR REPLACE TEMP TABLE lp_label AS SELECT DISTINCT rk, rk AS label FROM lp_m;
        CREATE OR REPLACE TEMP TABLE lp_done (rk BIGINT, label BIGINT);
    """)
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - the count is the result
        con.execute("""
            CREATE OR REPLACE TEMP TABLE lp_il AS
                SELECT m.iid, min(l.label) AS label FROM lp_m m JOIN lp_label l USING (rk) GROUP BY m.iid;
            CREATE OR REPLACE TEMP TABLE lp_step AS
                SELECT m.rk, min(il.label) AS label FROM lp_m m JOIN lp_il il USING (iid) GROUP BY m.rk;
            CREATE OR REPLACE TEMP TABLE lp_next AS
                SELECT a.rk, least(a.label, coalesce(b.label, a.label)) AS label
                FROM lp_step a LEFT JOIN lp_step b ON b.rk = a.label;
            CREATE OR REPLACE TEMP TABLE lp_open AS
                SELECT DISTINCT n.label FROM lp_m m JOIN lp_next n USING (rk)
                JOIN (SELECT m.iid FROM lp_m m JOIN lp_next n USING (rk)
                      GROUP BY m.iid HAVING min(n.label) <> max(n.label)) u USING (iid);
        """)
        # A label whose every identifier already carries that one label is a closed,
        # complete component: set its records aside so later rounds touch only the rest.
        con.execute("""
            INSERT INTO lp_done SELECT * FROM lp_next ANTI JOIN lp_open USING (label);
            CREATE OR REPLACE TEMP TABLE lp_label AS SELECT * FROM lp_next SEMI JOIN lp_open USING (label);
            CREATE OR REPLACE TEMP TABLE lp_m AS SELECT * FROM lp_m SEMI JOIN lp_label USING (rk);
        """)
        if con.execute("SELECT count(*) FROM lp_label").fetchall()[0][0] == 0:
            break
    else:
        raise RuntimeError(f"label propagation did not converge in {max_iterations} rounds")
    temp = "" if "." in out else "TEMP "  # unqualified names are scratch tables of this connection
    con.execute(f"CREATE OR REPLACE {temp}TABLE {out} AS SELECT rk, label AS comp FROM lp_done")
    return iterations


def assign_stable_ids(con: duckdb.DuckDBPyConnection, cfg: IdentityConfig, run_id: str, now: datetime) -> dict:
    """Step 5: carry customer ids over from the previous lineage table."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE sid_cur AS
            SELECT r.record_type, r.record_id, r.event_at, c.comp
            FROM identity.records r JOIN identity.components c USING (rk);
        CREATE OR REPLACE TEMP TABLE sid_claims AS
            SELECT c.comp, p.customer_id AS old_id, count(*) AS n, min(c.event_at) AS first_seen
            FROM sid_cur c JOIN identity.record_customer p USING (record_type, record_id)
            WHERE p.customer_id IS NOT NULL GROUP BY c.comp, p.customer_id;
        -- an old id goes to the part holding most of its records (then the longest history)
        CREATE OR REPLACE TEMP TABLE sid_won AS
            SELECT old_id, comp FROM sid_claims
            QUALIFY row_number() OVER (PARTITION BY old_id ORDER BY n DESC, first_seen NULLS LAST, comp) = 1;
        CREATE OR REPLACE TEMP TABLE sid_kept AS
            SELECT w.comp, w.old_id AS customer_id FROM sid_won w
            JOIN identity.customer_registry g ON g.customer_id = w.old_id
            QUALIFY row_number() OVER (PARTITION BY w.comp ORDER BY g.seq) = 1;
    """)
    base = con.execute("SELECT coalesce(max(seq), 0) FROM identity.customer_registry").fetchall()[0][0]
    prefix = cfg.id_prefix
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE sid_new AS
            SELECT comp, {base} + row_number() OVER (ORDER BY comp) AS seq
            FROM (SELECT DISTINCT comp FROM identity.components) ANTI JOIN sid_kept USING (comp);
        CREATE OR REPLACE TEMP TABLE sid_map AS
            SELECT comp, customer_id FROM sid_kept
            UNION ALL SELECT comp, '{prefix}' || lpad(seq::VARCHAR, 9, '0') FROM sid_new;
        CREATE OR REPLACE TEMP TABLE sid_hist AS
            SELECT w.old_id, m.customer_id AS new_id, 'merge' AS reason
            FROM sid_won w JOIN sid_map m USING (comp) WHERE w.old_id <> m.customer_id
            UNION ALL
            SELECT c.old_id, m.customer_id, 'split'
            FROM sid_claims c JOIN sid_won w USING (old_id) JOIN sid_map m ON m.comp = c.comp
            WHERE c.comp <> w.comp;
        UPDATE identity.customer_registry g SET status = 'merged', merged_into = h.new_id
            FROM sid_hist h WHERE h.reason = 'merge' AND g.customer_id = h.old_id;
    """)
    con.execute(f"""INSERT INTO identity.customer_registry
                    SELECT '{prefix}' || lpad(seq::VARCHAR, 9, '0'), seq, ?, ?, 'active', NULL FROM sid_new""",
                [run_id, now])
    con.execute("INSERT INTO identity.customer_id_history SELECT old_id, new_id, ?, reason, ? FROM sid_hist",
                [run_id, now])
    counts = dict(con.execute("SELECT reason, count(*) FROM sid_hist GROUP BY ALL").fetchall())
    new_ids = con.execute("SELECT count(*) FROM sid_new").fetchall()[0][0]
    return {"new_ids": new_ids, "merges": counts.get("merge", 0), "splits": counts.get("split", 0)}


def write_lineage(con: duckdb.DuckDBPyConnection, cfg: IdentityConfig) -> None:
    """Step 6: one row per current record, with the key that tied it in."""
    rank = "CASE kind " + " ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(cfg.priority)) + " ELSE 99 END"
    con.execute(f"""
        CREATE OR REPLACE TABLE identity.record_customer AS
        WITH deg AS (SELECT iid, count(*) AS d FROM identity.links GROUP BY iid),
        best AS (
            SELECT l.rk, arg_min(l.kind, (CASE WHEN d.d > 1 THEN 0 ELSE 100 END) + {rank}) AS matched_by
            FROM identity.links l JOIN deg d USING (iid) GROUP BY l.rk)
        SELECT r.channel, r.record_type, r.record_id, m.customer_id, b.matched_by
        FROM identity.records r
        LEFT JOIN identity.components c USING (rk)
        LEFT JOIN sid_map m USING (comp)
        LEFT JOIN best b USING (rk)
        ORDER BY r.record_type, r.record_id""")


EXPLAIN_VIEW = """
CREATE OR REPLACE VIEW identity.customer_explain AS
SELECT rc.customer_id, rc.record_type, rc.record_id, rc.channel, rc.matched_by, r.event_at, i.kind,
       left(i.value, 12) AS value_prefix,
       CASE WHEN NOT i.links AND i.kind IN ('name', 'gender') THEN 'guard attribute'
            WHEN rj.reason IS NOT NULL THEN 'rejected: ' || rj.reason || coalesce(' (' || rj.detail || ')', '')
            WHEN d.reason IS NOT NULL THEN 'dropped: ' || d.reason
            ELSE 'links ' || (SELECT count(*) FROM identity.links l2 WHERE l2.kind = i.kind AND l2.value = i.value)
                 || ' records' END AS status
FROM identity.record_customer rc
JOIN identity.records r USING (record_type, record_id)
LEFT JOIN identity.identifiers i USING (rk)
LEFT JOIN identity.rejected_identifiers rj ON rj.kind = i.kind AND rj.value = i.value
LEFT JOIN identity.dropped_links d ON d.rk = r.rk AND d.kind = i.kind AND d.value = i.value
"""


def resolve(con: duckdb.DuckDBPyConnection, sources: list[Source], cfg: IdentityConfig, run_id: str,
            now: datetime) -> ResolveStats:
    """Run every step; the previous ``record_customer`` (if any) seeds stable ids."""
    con.execute(DDL)
    build_identifiers(con, sources, cfg)
    apply_guards(con, cfg)
    apply_household_guard(con, cfg)
    iterations = connected_components(con)
    ids = assign_stable_ids(con, cfg, run_id, now)
    write_lineage(con, cfg)
    con.execute(EXPLAIN_VIEW)
    q = con.execute("""
        SELECT (SELECT count(*) FROM identity.records),
               (SELECT count(*) FROM identity.record_customer WHERE customer_id IS NOT NULL),
               (SELECT count(DISTINCT customer_id) FROM identity.record_customer),
               (SELECT count(*) FROM identity.rejected_identifiers)""").fetchall()[0]
    return ResolveStats(q[0], q[1], q[2], iterations, q[3], ids["new_ids"], ids["merges"], ids["splits"])
