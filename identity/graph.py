"""The identity graph, set-based in DuckDB SQL.

Records carry identifiers (phone token, unionid token, email token, member card,
Weibo uid, buyer nick token, openid). Identifiers that pass the guards become
links; connected components of records over those links are customers. Every
step is a SQL statement over whole tables, so the same logic ports to Spark SQL,
and the only Python loop is the fixed-point loop of label propagation.

Steps:

1. records: every current staging record, numbered (``rk``: its staging row key).
2. identifiers: (rk, kind, value), numbered (``iid``); names and genders ride along
   as guard-only attributes.
3. guards: blocklisted values (placeholders) and identifiers over a cardinality
   limit are rejected, with the reason; outlying links are dropped. They link nothing.
4. components: min-label propagation with pointer jumping; components that
   stopped changing are set aside so late iterations touch only the few that
   still move. The customers are found over the parts the household guard
   already joined without phones, each contracted to one node.
5. Stable ids: ``customer_registry`` + ``customer_id_history``. The oldest id
   survives a merge; on a split the part holding most of an id's records keeps it.
6. ``record_customer``: the lineage table of outputs.md.

Steps 1-4 work on TEMP tables (``id_*``) joined on integer keys (``rk``, ``iid``):
they are scratch state of one run, and writing them compressed into the warehouse
file, or joining on (record_type, record_id) and 64-character tokens, cost more
than the matching itself. What users and checks read is written once, at the end
(``persist_tables``): ``identity.records``, ``identifier_tokens`` (each token once,
by ``iid``), ``record_identifiers`` and ``record_links`` (integer keys only, with the
views ``identifiers`` and ``links`` joining the tokens back), ``rejected_identifiers``
and ``dropped_links`` (the explain view, ``scv explain``, erasure and the quality
checks read them), beside the stable-id tables and the lineage table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from identity import incremental as incremental_mod
from identity.config import IdentityConfig
from pipelines.storage import column_definitions, create_table_as


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
    # A column that changes whenever a record is delivered again (``delivery_seq``):
    # it lets a run re-resolve only the records that changed (``identity.incremental``).
    version_column: str | None = None
    # SQL for the record's number (``rk``): a BIGINT unique across every source and fixed while
    # the row is current. Staging's is (delivery, line): the file ledger numbers deliveries across
    # all types, and a delivery holds each line once.
    row_key: str = field(kw_only=True)


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
    seconds: dict[str, float] = field(default_factory=dict)  # by RESOLVE_PHASES


# What ``resolve`` times, in order: planning an incremental run; numbering records and identifiers
# (what Splink's deterministic link does, as pairs); the guards; the components (Splink's clustering);
# the regions an incremental run starts from; stable ids; writing the tables; the run's summary.
RESOLVE_PHASES = ("plan", "identifiers", "guards", "components", "regions", "stable ids", "write", "summary")


class _PhaseClock:
    """Wall seconds by phase: each ``lap`` charges the time since the previous one to its phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


# The registry has no key constraint: ids are issued as max(seq) + row number, so they are
# unique by construction (the blocking check ``customer_ids_issued_once`` says so after every
# run), and maintaining an index over 2.8M ids cost 3 of the 4 seconds of writing them at 10M.
REGISTRY_COLUMNS = column_definitions([
    ("customer_id", "VARCHAR"), ("seq", "BIGINT"), ("created_run", "VARCHAR"), ("created_at", "TIMESTAMPTZ"),
    ("status", "VARCHAR"), ("merged_into", "VARCHAR")])

DDL = f"""
CREATE SCHEMA IF NOT EXISTS identity;
CREATE TABLE IF NOT EXISTS identity.customer_registry ({REGISTRY_COLUMNS});
CREATE TABLE IF NOT EXISTS identity.customer_id_history (
    old_id VARCHAR, new_id VARCHAR, run_id VARCHAR, reason VARCHAR, changed_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS identity.record_customer (
    channel VARCHAR, record_type VARCHAR, record_id VARCHAR, customer_id VARCHAR, matched_by VARCHAR);
-- customer ids re-resolved since the mart last refreshed (NULL: every customer, after a full run)
CREATE TABLE IF NOT EXISTS identity.touched_customers (customer_id VARCHAR, run_id VARCHAR);
"""


# Identifier numbers: a 64-bit hash of (kind, value), so no step sorts, groups or
# joins on 64-character tokens. Two identifiers sharing a number would merge
# strangers, so ``number_identifiers`` checks every number and falls back to an
# exact numbering when any is shared.
IDENTIFIER_HASH = "(hash(kind, value) >> 1)::BIGINT"


# Guard attributes (names, genders) link nothing and carry strength 0; a receiver name
# (``receiver_name_sources``) carries this instead: the record-level limits skip it, and only
# the household guard reads it, as the name an account ships to on most of its orders.
RECEIVER_STRENGTH = -1


def _phone_condition(column: str, cfg: IdentityConfig) -> str:
    mobile = "" if cfg.match_landlines else " AND phone_is_mobile"
    return f"phone_status = 'ok'{mobile}" if column == "phone_token" else "TRUE"


def _identifier_parts(s: Source, table: str, cfg: IdentityConfig) -> list[str]:
    """SELECTs of (rk, kind, value, links, strength) over ``table``: the source's rows with their number ``rk``."""
    parts = []
    for kind, column in s.identifiers:
        cond = _phone_condition(column, cfg) if kind == "phone" else "TRUE"
        strength = cfg.strength(s.record_type, kind)
        parts.append(f"SELECT rk, '{kind}' AS kind, {column}::VARCHAR AS value, TRUE AS links, {strength} AS strength "
                     f"FROM {table} WHERE {column} IS NOT NULL AND {cond}")
        if kind == "phone":  # placeholders carry a token so the audit can count them
            parts.append(f"SELECT rk, 'phone', {column}, FALSE, 0 FROM {table} "
                         f"WHERE {column} IS NOT NULL AND phone_status = 'placeholder'")
    if s.gender_column and s.record_type in cfg.gender_sources:
        parts.append(f"SELECT rk, 'gender', {s.gender_column}, FALSE, 0 FROM {table} "
                     f"WHERE {s.gender_column} IS NOT NULL")
    if s.name_column and s.record_type in cfg.name_sources:
        parts.append(f"SELECT rk, 'name', {s.name_column}, FALSE, 0 FROM {table} WHERE {s.name_column} IS NOT NULL")
    elif s.name_column and s.record_type in cfg.receiver_name_sources:
        parts.append(f"SELECT rk, 'name', {s.name_column}, FALSE, {RECEIVER_STRENGTH} FROM {table} "
                     f"WHERE {s.name_column} IS NOT NULL")
    return parts


def build_identifiers(con: duckdb.DuckDBPyConnection, sources: list[Source], cfg: IdentityConfig) -> None:
    """Steps 1-2: number the records (``id_records``) and list their identifiers (``id_identifiers``).

    A record's number ``rk`` is its source's row key (:attr:`Source.row_key`), so it needs
    no sort: numbering each source by record id was a window sort of every record with its
    identifier columns (5-6 s of a 10M-record run). A record keeps its number while its row
    is current, in full and incremental runs alike, and the smallest number of a customer,
    the label the components carry, is its earliest delivered record. With the number an
    expression of the row, each identifier kind is read straight from its source, without
    a join on (record_type, record_id) strings or a numbered copy of the source.
    The identifier numbers are hashes until the caller checks them (:func:`number_identifiers`).
    """
    records, identifiers = [], []
    for s in sorted(sources, key=lambda s: s.record_type):
        numbered = f"(SELECT ({s.row_key})::BIGINT AS rk, * FROM {s.relation})"
        records.append(f"SELECT rk, '{s.record_type}' AS record_type, record_id, '{s.channel}' AS channel, "
                       f"{s.event_column or 'NULL'}::TIMESTAMPTZ AS event_at, "
                       f"{s.version_column or 'NULL'}::BIGINT AS version FROM {numbered}")
        identifiers += _identifier_parts(s, numbered, cfg)
    records = records or ["SELECT NULL::BIGINT AS rk, NULL::VARCHAR AS record_type, NULL::VARCHAR AS record_id, "
                          "NULL::VARCHAR AS channel, NULL::TIMESTAMPTZ AS event_at, NULL::BIGINT AS version "
                          "WHERE FALSE"]
    identifiers = identifiers or ["SELECT NULL::BIGINT AS rk, NULL::VARCHAR AS kind, NULL::VARCHAR AS value, "
                                  "NULL::BOOLEAN AS links, NULL::INTEGER AS strength WHERE FALSE"]
    con.execute(f"CREATE OR REPLACE TEMP TABLE id_records AS {' UNION ALL '.join(records)}")
    # A record carries an identifier twice only where its source names a kind twice (two phone
    # columns): only then are the rows made distinct, a grouping of every identifier row.
    repeated = any(len({kind for kind, _ in s.identifiers}) < len(s.identifiers) for s in sources)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE id_identifiers AS
        SELECT rk, kind, value, links, strength, {IDENTIFIER_HASH} AS iid
        FROM (SELECT {'DISTINCT ' if repeated else ''}* FROM ({' UNION ALL '.join(identifiers)}))""")


def number_identifiers(con: duckdb.DuckDBPyConnection) -> bool:
    """Make ``id_identifiers.iid`` exact and list each number's token in ``id_tokens``;
    returns False when the hash had to be replaced.

    Every later join and grouping uses (kind, iid) in place of the token. A hash
    shared by two identifiers would tie their records together, so each number is
    checked against the (kind, value) it stands for; if any is shared, all are
    replaced by a row number over the distinct identifiers (exact, but it groups the
    tokens themselves). The check and the token list come from one grouping of the
    identifier rows by (iid, kind, value): a number standing for two identifiers has two
    rows. Grouping by number alone with the smallest and largest token of each (a string
    comparison per row) took twice as long at 10M records.
    """
    tokens = "CREATE OR REPLACE TEMP TABLE id_tokens AS SELECT iid, kind, value FROM id_identifiers GROUP BY ALL"
    con.execute(tokens)
    shared = con.execute("SELECT count(*) - count(DISTINCT iid) FROM id_tokens").fetchall()[0][0]
    if shared:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE id_identifiers AS
            SELECT i.rk, i.kind, i.value, i.links, i.strength, n.iid
            FROM id_identifiers i
            JOIN (SELECT kind, value, row_number() OVER () AS iid FROM id_identifiers GROUP BY kind, value) n
              USING (kind, value)""")
        con.execute(tokens)
    return shared == 0


def apply_guards(con: duckdb.DuckDBPyConnection, cfg: IdentityConfig) -> None:
    """Step 3: blocklist and cardinality limits -> ``id_rejected``, ``id_dropped``, ``id_links``.

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

    Co-occurrences are counted on (kind, iid); the tokens themselves are looked up
    only for the few identifiers over a limit (to break ties in a stable order).
    """
    limit_rows = [(k, o, n) for k, others in cfg.limits.items() for o, n in others.items()]
    values = ", ".join(f"('{k}', '{o}', {n})" for k, o, n in limit_rows) or "(NULL, NULL, NULL)"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE g_lim(kind VARCHAR, other_kind VARCHAR, max_distinct INT);
        INSERT INTO g_lim VALUES {values};
        CREATE OR REPLACE TEMP TABLE g_cooc AS
            SELECT a.kind, a.iid, b.kind AS other_kind, b.iid AS other_iid, l.max_distinct,
                   count(DISTINCT a.rk) AS support
            FROM (SELECT * FROM id_identifiers WHERE links AND kind IN (SELECT kind FROM g_lim)) a
            JOIN (SELECT * FROM id_identifiers
                  WHERE kind IN (SELECT other_kind FROM g_lim) AND strength <> {RECEIVER_STRENGTH}) b
              ON a.rk = b.rk AND a.kind <> b.kind
            JOIN g_lim l ON l.kind = a.kind AND l.other_kind = b.kind
            GROUP BY ALL;
        -- identifiers over a limit, with their co-occurring values ranked (ties: by token)
        CREATE OR REPLACE TEMP TABLE g_ranked AS
            WITH over AS (
                SELECT kind, iid, other_kind, count(*) AS n_distinct FROM g_cooc
                GROUP BY ALL HAVING count(*) > any_value(max_distinct)),
            tokens AS (
                SELECT DISTINCT kind AS other_kind, iid AS other_iid, value AS other_value FROM id_identifiers
                SEMI JOIN (SELECT other_kind AS kind, other_iid AS iid FROM g_cooc SEMI JOIN over
                           USING (kind, iid, other_kind)) USING (kind, iid))
            SELECT c.*, t.other_value, o.n_distinct,
                   row_number() OVER (PARTITION BY c.kind, c.iid, c.other_kind
                                      ORDER BY c.support DESC, t.other_value) AS rank_in_kind
            FROM g_cooc c JOIN over o USING (kind, iid, other_kind) JOIN tokens t USING (other_kind, other_iid);
        CREATE OR REPLACE TEMP TABLE g_over AS
            SELECT kind, iid, other_kind, any_value(max_distinct) AS max_distinct, any_value(n_distinct) AS n,
                   sum(support) AS total, sum(support) FILTER (rank_in_kind <= max_distinct) AS top,
                   max(support) AS top1
            FROM g_ranked GROUP BY ALL;
        CREATE OR REPLACE TEMP TABLE g_shared AS
            SELECT kind, iid, string_agg(n || ' distinct ' || other_kind || ' (limit ' || max_distinct || ')', '; '
                                         ORDER BY other_kind) AS detail
            FROM g_over WHERE NOT (top1 >= 2 AND top >= {cfg.dominance} * total) GROUP BY ALL;
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE id_rejected AS
        SELECT kind, iid, any_value(value) AS value, 'placeholder or blocklisted number' AS reason,
               count(*) AS records, NULL::VARCHAR AS detail
        FROM id_identifiers WHERE kind = 'phone' AND NOT links GROUP BY kind, iid
        UNION ALL
        SELECT s.kind, s.iid, any_value(i.value), 'shared identifier over cardinality limit',
               count(DISTINCT i.rk), any_value(s.detail)
        FROM g_shared s JOIN id_identifiers i USING (kind, iid) GROUP BY s.kind, s.iid""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE id_dropped AS
        WITH outliers AS (
            SELECT r.kind, r.iid, r.other_kind, r.other_iid
            FROM g_ranked r ANTI JOIN g_shared s USING (kind, iid)
            WHERE r.rank_in_kind > r.max_distinct OR r.support = 1),
        evidence AS (
            SELECT a.rk, o.*, a.value, b.value AS other_value, a.strength AS own_strength,
                   b.strength AS other_strength, b.links AS other_links
            FROM outliers o
            JOIN id_identifiers a ON a.kind = o.kind AND a.iid = o.iid
            JOIN id_identifiers b ON b.rk = a.rk AND b.kind = o.other_kind AND b.iid = o.other_iid),
        weakest AS (
            SELECT *, other_links AND other_strength <= own_strength AS drop_other FROM evidence)
        SELECT DISTINCT rk,
               CASE WHEN drop_other THEN other_kind ELSE kind END AS kind,
               CASE WHEN drop_other THEN other_iid ELSE iid END AS iid,
               CASE WHEN drop_other THEN other_value ELSE value END AS value,
               'outlying ' || other_kind || ' beside ' || kind || ' over its limit' AS reason
        FROM weakest""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE id_links AS
        SELECT i.rk, i.iid, i.kind, i.value
        FROM id_identifiers i
        ANTI JOIN id_rejected r USING (kind, iid)
        ANTI JOIN id_dropped d USING (rk, kind, iid)
        WHERE i.links""")


def apply_household_guard(con: duckdb.DuckDBPyConnection, cfg: IdentityConfig) -> str | None:
    """Step 3b: a phone that joins people who look different elsewhere is shared.

    The record-level limits see a family phone only when both names sit on records
    that carry the phone. Here the graph is first built without phone links; each
    part ("anchor") gathers the names, genders and accounts its records carry through
    cards, unionids, emails, Weibo uids, buyer nicks. A phone whose records fall into anchors with more
    than one distinct name, gender or platform account, is judged like any
    over-limit identifier: one clearly dominant value keeps the phone and only the
    outlying anchors' phone links drop; otherwise the phone is rejected. Evidence is
    counted in records that carry the phone, not in anchors: one person reaches
    their own phone from several unconnected parts (a card, a WeChat, a Tmall
    account), a stranger's typo usually from one record. Returns the table of those
    parts (``hh_anchor``, which :func:`customer_components` reuses), or None when no
    household attribute is configured and the guard does not run.
    """
    kinds = [k for k in cfg.household_attributes]
    if not kinds:
        return None
    connected_components(con, links="(SELECT rk, iid FROM id_links WHERE kind <> 'phone')", out="hh_anchor")
    order = ", ".join(f"('{k}', {i})" for i, k in enumerate(kinds))
    dominant = f"top1 >= 2 AND top1 >= {cfg.dominance} * total"
    # All kinds are judged in one pass; config order only decides which kind a phone answers to:
    # the first kind that rejects it names the reason and later kinds do not judge it, and a
    # dropped phone link is reported under the first kind that dropped it.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hh_kind(kind VARCHAR, ord INT);
        INSERT INTO hh_kind VALUES {order};
        CREATE OR REPLACE TEMP TABLE hh_rec AS
            SELECT l.rk, l.iid AS phone, coalesce(a.comp, -l.rk) AS anchor
            FROM id_links l LEFT JOIN hh_anchor a USING (rk) WHERE l.kind = 'phone';
        -- an anchor's value of a kind is the one on most of its records (a Tmall account's receiver
        -- name beside the odd gift); an anchor without a dominant value says nothing. Grouped on
        -- the kind's number, not its name: 8.7M identifier rows at 10M records, 40% faster.
        CREATE OR REPLACE TEMP TABLE hh_anchor_value AS
            SELECT k.kind, v.anchor, v.value FROM (
                SELECT ord, anchor, arg_max(value, n) AS value FROM (
                    SELECT k.ord, coalesce(a.comp, -i.rk) AS anchor, i.iid AS value, count(*) AS n
                    FROM id_identifiers i JOIN hh_kind k USING (kind) LEFT JOIN hh_anchor a USING (rk)
                    GROUP BY 1, 2, 3)
                GROUP BY 1, 2 HAVING max(n) >= {cfg.dominance} * sum(n)) v
            JOIN hh_kind k USING (ord);
        CREATE OR REPLACE TEMP TABLE hh_phone AS
            SELECT n.kind, r.phone, n.value, count(*) AS support
            FROM hh_rec r JOIN hh_anchor_value n USING (anchor)
            GROUP BY ALL;
        -- phones beside more than one value of a kind; those the record-level guards rejected are judged there
        CREATE OR REPLACE TEMP TABLE hh_over AS
            SELECT p.kind, any_value(k.ord) AS ord, p.phone, count(*) AS n, sum(p.support) AS total,
                   max(p.support) AS top1, arg_max(p.value, p.support) AS top_value
            FROM hh_phone p JOIN hh_kind k USING (kind)
            WHERE NOT EXISTS (SELECT 1 FROM id_rejected r WHERE r.kind = 'phone' AND r.iid = p.phone)
            GROUP BY p.kind, p.phone HAVING count(*) > 1;
        -- the first kind (in config order) where no value dominates rejects the phone
        CREATE OR REPLACE TEMP TABLE hh_reject AS
            SELECT phone, arg_min(kind, ord) AS kind, min(ord) AS ord, arg_min(n, ord) AS n
            FROM hh_over WHERE NOT ({dominant}) GROUP BY phone;
        -- kinds after that one never judge the phone
        CREATE OR REPLACE TEMP TABLE hh_over AS
            SELECT o.* FROM hh_over o LEFT JOIN hh_reject j USING (phone) WHERE j.ord IS NULL OR o.ord <= j.ord;
    """)
    # The phones' tokens are looked up for the few judged ones only: carried on every phone
    # link (hh_rec, 7M rows at 10M records) they cost a second of the guard.
    con.execute("""
        INSERT INTO id_rejected
        SELECT 'phone', x.phone, t.value, 'shared identifier: joins people with different ' || x.kind || 's',
               x.records, x.n || ' distinct ' || x.kind || 's across linked records'
        FROM (SELECT j.phone, j.kind, count(*) AS records, any_value(j.n) AS n
              FROM hh_reject j JOIN hh_rec r USING (phone) GROUP BY j.phone, j.kind) x
        JOIN id_tokens t ON t.iid = x.phone""")
    con.execute(f"""
        INSERT INTO id_dropped
        SELECT x.rk, 'phone', x.phone, t.value, 'phone shared with a person of another ' || x.kind || ' elsewhere'
        FROM (SELECT r.rk, r.phone, arg_min(o.kind, o.ord) AS kind
              FROM hh_over o JOIN hh_rec r USING (phone) JOIN hh_anchor_value n USING (kind, anchor)
              WHERE {dominant} AND n.value <> o.top_value
                AND NOT EXISTS (SELECT 1 FROM id_dropped d
                                WHERE d.rk = r.rk AND d.kind = 'phone' AND d.iid = r.phone)
              GROUP BY r.rk, r.phone) x
        JOIN id_tokens t ON t.iid = x.phone""")
    con.execute("""
        DELETE FROM id_links l USING id_rejected r WHERE l.kind = r.kind AND l.iid = r.iid;
        DELETE FROM id_links l USING id_dropped d WHERE l.rk = d.rk AND l.kind = d.kind AND l.iid = d.iid;""")
    return "hh_anchor"


def connected_components(con: duckdb.DuckDBPyConnection, max_iterations: int = 200,
                         links: str = "identity.links", out: str = "identity.components") -> int:
    """Step 4: min-label propagation over record <-> identifier links; ``out`` gets (rk, comp).

    Each round an identifier takes the smallest label of its records, then each
    record the smallest label of its identifiers, then jumps to its label's label.
    A label whose identifiers all carry that single label is a finished component:
    its records move to ``lp_done`` and leave the working set, so rounds shrink.
    A component's label is its smallest ``rk`` whatever the order of the rounds.

    Two shortcuts keep the rounds small: an identifier on a single record joins
    nothing, so it never enters the working set (a record with no other link is its
    own component at once); and the per-identifier labels that decide which
    components are finished are the ones the next round starts from.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lp_all AS SELECT rk, iid FROM {links};
        CREATE OR REPLACE TEMP TABLE lp_m AS
            SELECT rk, iid FROM lp_all
            SEMI JOIN (SELECT iid FROM lp_all GROUP BY iid HAVING count(*) > 1) USING (iid);
        CREATE OR REPLACE TEMP TABLE lp_done AS
            SELECT DISTINCT rk, rk AS label FROM lp_all ANTI JOIN lp_m USING (rk);
        -- the first round's labels are the records' own numbers
        CREATE OR REPLACE TEMP TABLE lp_il AS SELECT iid, min(rk) AS label FROM lp_m GROUP BY iid;
    """)
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - the count is the result
        con.execute("""
            CREATE OR REPLACE TEMP TABLE lp_step AS
                SELECT m.rk, min(il.label) AS label FROM lp_m m JOIN lp_il il USING (iid) GROUP BY m.rk;
            CREATE OR REPLACE TEMP TABLE lp_next AS
                SELECT a.rk, least(a.label, coalesce(b.label, a.label)) AS label
                FROM lp_step a LEFT JOIN lp_step b ON b.rk = a.label;
            CREATE OR REPLACE TEMP TABLE lp_mn AS
                SELECT m.rk, m.iid, n.label FROM lp_m m JOIN lp_next n USING (rk);
            CREATE OR REPLACE TEMP TABLE lp_il AS
                SELECT iid, min(label) AS label, min(label) <> max(label) AS open FROM lp_mn GROUP BY iid;
            CREATE OR REPLACE TEMP TABLE lp_open AS
                SELECT DISTINCT label FROM lp_mn SEMI JOIN (SELECT iid FROM lp_il WHERE open) USING (iid);
        """)
        # A label whose every identifier already carries that one label is a closed,
        # complete component: set its records aside so later rounds touch only the rest.
        con.execute("""
            INSERT INTO lp_done SELECT rk, label FROM lp_next ANTI JOIN lp_open USING (label);
            CREATE OR REPLACE TEMP TABLE lp_m AS SELECT rk, iid FROM lp_mn SEMI JOIN lp_open USING (label);
        """)
        if con.execute("SELECT count(*) FROM lp_m").fetchall()[0][0] == 0:
            break
    else:
        raise RuntimeError(f"label propagation did not converge in {max_iterations} rounds")
    temp = "" if "." in out else "TEMP "  # unqualified names are scratch tables of this connection
    con.execute(f"CREATE OR REPLACE {temp}TABLE {out} AS SELECT rk, label AS comp FROM lp_done")
    return iterations


def customer_components(con: duckdb.DuckDBPyConnection, parts: str | None) -> int:
    """Step 4: ``id_components`` (rk, comp), the customers: components over the guarded links.

    ``parts`` (what :func:`apply_household_guard` returns) holds the parts the links other
    than phones join; the household guard removes phone links only, so those parts are still
    whole. Each is contracted to one node (its label, the part's smallest ``rk``) and only the
    phone links are propagated between the nodes: the same components, with the same labels,
    as over every link. Without ``parts`` (no household guard) they are found over every link.
    Returns the label propagation's rounds.
    """
    if parts is None:
        return connected_components(con, links="id_links", out="id_components")
    con.execute(f"""
        -- every linked record's node: its part, or itself when only phones link it
        CREATE OR REPLACE TEMP TABLE id_nodes AS
            SELECT rk, comp AS node FROM {parts}
            UNION ALL SELECT DISTINCT rk, rk FROM id_links ANTI JOIN {parts} USING (rk);
        CREATE OR REPLACE TEMP TABLE id_node_links AS
            SELECT DISTINCT n.node AS rk, l.iid FROM id_links l JOIN id_nodes n USING (rk) WHERE l.kind = 'phone'""")
    iterations = connected_components(con, links="id_node_links", out="id_node_components")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE id_components AS
            SELECT n.rk, coalesce(c.comp, n.node) AS comp
            FROM id_nodes n LEFT JOIN id_node_components c ON c.rk = n.node""")
    return iterations


def compute_regions(con: duckdb.DuckDBPyConnection) -> None:
    """Step 4b: the regions, the components before any guard (``identity.incremental``).

    A region is a component over every linking identifier, the rejected and dropped
    links included. It is found from the customers rather than from scratch: each
    component is contracted to one node (its label, a record number), and only the
    identifiers that lost a link to a guard (a few per thousand) are propagated over
    those nodes, with their removed and their kept links. What is left is ``id_node_regions``
    (node, region) for those nodes; each record's region is read off in the query that writes
    ``identity.records`` (:data:`RECORDS_WITH_REGIONS`), so no step joins every record for it twice.
    """
    con.execute("""
        CREATE OR REPLACE TEMP TABLE id_removed AS
            SELECT i.rk, i.iid FROM id_identifiers i SEMI JOIN id_rejected r USING (kind, iid) WHERE i.links
            UNION SELECT rk, iid FROM id_dropped;
        -- each removed link, and each kept link of an identifier that lost one, between contracted nodes
        CREATE OR REPLACE TEMP TABLE id_removed AS
            SELECT coalesce(c.comp, x.rk) AS rk, x.iid FROM (
                SELECT rk, iid FROM id_removed
                UNION SELECT rk, iid FROM id_links SEMI JOIN (SELECT DISTINCT iid FROM id_removed) USING (iid)) x
            LEFT JOIN id_components c USING (rk)""")
    connected_components(con, links="id_removed", out="id_node_regions")


# A record's region: that of its node (its customer's label, or itself when unlinked) where a
# guard removed a link inside it, else its customer, else the record alone.
RECORDS_WITH_REGIONS = """
    SELECT r.rk, r.record_type, r.record_id, r.channel, r.event_at, r.version,
           coalesce(n.comp, c.comp, r.rk) AS region
    FROM id_records r LEFT JOIN id_components c USING (rk)
    LEFT JOIN id_node_regions n ON n.rk = coalesce(c.comp, r.rk)"""


def assign_stable_ids(con: duckdb.DuckDBPyConnection, cfg: IdentityConfig, run_id: str, now: datetime) -> dict:
    """Step 5: carry customer ids over from the previous lineage table."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE sid_claims AS
            SELECT c.comp, p.customer_id AS old_id, count(*) AS n, min(r.event_at) AS first_seen
            FROM identity.record_customer p
            JOIN id_records r USING (record_type, record_id)
            JOIN id_components c USING (rk)
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
            FROM (SELECT DISTINCT comp FROM id_components) ANTI JOIN sid_kept USING (comp);
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


def lineage_query(cfg: IdentityConfig) -> str:
    """Step 6: one row per current record, with the key that tied it in.

    Written in no particular order: sorting millions of rows by ``rk`` cost a fifth
    of the step, and no reader depends on it (the export keeps the table's order;
    everything else joins or groups).
    """
    rank = "CASE kind " + " ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(cfg.priority)) + " ELSE 99 END"
    return f"""
        WITH best AS (
            SELECT l.rk, arg_min(l.kind, (CASE WHEN d.records > 1 THEN 0 ELSE 100 END) + {rank}) AS matched_by
            FROM id_links l JOIN id_degree d USING (iid) GROUP BY l.rk)
        SELECT r.channel, r.record_type, r.record_id, m.customer_id, b.matched_by
        FROM id_records r
        LEFT JOIN id_components c USING (rk)
        LEFT JOIN sid_map m USING (comp)
        LEFT JOIN best b USING (rk)"""


def persisted_queries(cfg: IdentityConfig) -> dict[str, str]:
    """What the run writes to ``identity.<table>``: the graph's audit tables and the lineage.

    Each token is stored once, in ``identity.identifier_tokens`` (iid, kind, value, and the
    number of records linking through it: what the diagnostics rank and ``scv explain`` shows,
    kept here so neither groups the 12M links of a 10M-record graph);
    the per-record tables carry only integer keys: ``identity.record_identifiers``
    (rk, iid, links, strength) and ``identity.record_links`` (rk, iid). Writing the
    64-character token again on every identifier row and every link row cost more
    than any other step of the run. ``identity.identifiers`` and ``identity.links``
    stay readable with their old columns, as views joining the tokens back.
    ``identity.records`` keeps each record's version and region, which the next run
    needs to re-resolve only what changed (``identity.incremental``).
    """
    return {
        "records": RECORDS_WITH_REGIONS,
        # each exact number once (number_identifiers), with the records linking through it
        "identifier_tokens": "SELECT t.iid, t.kind, t.value, coalesce(d.records, 0)::BIGINT AS records "
                             "FROM id_tokens t LEFT JOIN id_degree d USING (iid)",
        "record_identifiers": "SELECT rk, iid, links, strength FROM id_identifiers",
        "record_links": "SELECT rk, iid FROM id_links",
        "rejected_identifiers": "SELECT kind, value, reason, records, detail FROM id_rejected",
        "dropped_links": "SELECT rk, kind, value, reason FROM id_dropped",
        "record_customer": lineage_query(cfg),
    }


def persist_tables(con: duckdb.DuckDBPyConnection, queries: dict[str, str]) -> None:
    """A full run replaces every persisted table (``identity.components`` is no longer kept; an old
    copy is dropped so it cannot be mistaken for this run's)."""
    for table, query in queries.items():
        create_table_as(con, f"identity.{table}", query)
    for view, query in TOKEN_VIEWS.items():
        _drop_table(con, "identity", view)  # a table of that name, from a warehouse written before the views
        con.execute(f"CREATE OR REPLACE VIEW identity.{view} AS {query}")
    con.execute("DROP TABLE IF EXISTS identity.components")


# The per-record identifier and link tables with their tokens, as readers have always seen them.
TOKEN_VIEWS = {
    "identifiers": """
        SELECT i.rk, t.kind, t.value, i.links, i.strength
        FROM identity.record_identifiers i JOIN identity.identifier_tokens t USING (iid)""",
    "links": """
        SELECT l.rk, l.iid, t.kind, t.value
        FROM identity.record_links l JOIN identity.identifier_tokens t USING (iid)""",
}


def _drop_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> None:
    """Drop ``schema.name`` if it is a base table (``DROP TABLE IF EXISTS`` fails on a view)."""
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                   "AND schema_name = ? AND table_name = ?", [schema, name]).fetchall()[0][0]:
        con.execute(f'DROP TABLE "{schema}"."{name}"')


SCRATCH_PREFIXES = ("id_", "g_", "hh_", "lp_", "sid_", "inc_")


def drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    """Drop this connection's working tables: an operator command goes on to build the marts on the
    same connection, and hundreds of MB of finished temp tables would compete with them for memory."""
    names = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    for (name,) in names:
        if name.startswith(SCRATCH_PREFIXES):
            con.execute(f'DROP TABLE IF EXISTS temp."{name}"')


# How many records each identifier links is read from ``identifier_tokens.records``, written by the run:
# counted in the view (a correlated subquery, then a grouped join of every link), it cost 11.4 s, then
# 0.7-1.7 s, for one customer at 10M records.
EXPLAIN_VIEW = """
CREATE OR REPLACE VIEW identity.customer_explain AS
SELECT rc.customer_id, rc.record_type, rc.record_id, rc.channel, rc.matched_by, r.event_at, t.kind,
       left(t.value, 12) AS value_prefix,
       CASE WHEN NOT i.links AND t.kind IN ('name', 'gender') THEN 'guard attribute'
            WHEN rj.reason IS NOT NULL THEN 'rejected: ' || rj.reason || coalesce(' (' || rj.detail || ')', '')
            WHEN d.reason IS NOT NULL THEN 'dropped: ' || d.reason
            ELSE 'links ' || coalesce(t.records, 0) || ' records' END AS status
FROM identity.record_customer rc
JOIN identity.records r USING (record_type, record_id)
LEFT JOIN identity.record_identifiers i USING (rk)
LEFT JOIN identity.identifier_tokens t USING (iid)
LEFT JOIN identity.rejected_identifiers rj ON rj.kind = t.kind AND rj.value = t.value
LEFT JOIN identity.dropped_links d ON d.rk = r.rk AND d.kind = t.kind AND d.value = t.value
"""


def _drop_registry_key(con: duckdb.DuckDBPyConnection) -> None:
    """A warehouse written before the registry lost its primary key gets the table rebuilt without it (once)."""
    keyed = con.execute("""SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database()
                           AND schema_name = 'identity' AND table_name = 'customer_registry'
                           AND constraint_type = 'PRIMARY KEY'""").fetchall()[0][0]
    if keyed:
        con.execute("CREATE TEMP TABLE registry_copy AS SELECT * FROM identity.customer_registry")
        create_table_as(con, "identity.customer_registry", "SELECT * FROM registry_copy")
        con.execute("DROP TABLE registry_copy")


def resolve(con: duckdb.DuckDBPyConnection, sources: list[Source], cfg: IdentityConfig, run_id: str,
            now: datetime, incremental: bool = True) -> ResolveStats:
    """Run every step; the previous ``record_customer`` (if any) seeds stable ids.

    With ``incremental`` (the default) and a previous run's state, only the regions
    of the graph that changed records touch are resolved and merged in
    (``identity.incremental``); the result is the same as a full run's.
    """
    clock = _PhaseClock()
    con.execute(DDL)
    _drop_registry_key(con)
    con.execute(incremental_mod.STATE_DDL)
    plan = incremental_mod.plan(con, sources, cfg, _identifier_parts, IDENTIFIER_HASH) if incremental else None
    clock.lap("plan")
    extra = {"mode": "full", "records_resolved": None}
    iterations = 0
    if plan is not None and plan.unchanged:
        extra = {"mode": "unchanged", "records_resolved": 0}
        ids = {"new_ids": 0, "merges": 0, "splits": 0}
    else:
        if plan is not None:
            build_identifiers(con, plan.sources, cfg)
            if not number_identifiers(con) or not incremental_mod.tokens_agree(con):
                drop_scratch(con)  # a number shared with another token: only a full run numbers them exactly
                plan = None
        if plan is None:
            build_identifiers(con, sources, cfg)
            hashed = number_identifiers(con)
            extra["records_resolved"] = con.execute("SELECT count(*) FROM id_records").fetchall()[0][0]
        else:
            hashed = True
            extra = {"mode": "incremental", "records_resolved": plan.records}
        clock.lap("identifiers")
        apply_guards(con, cfg)
        parts = apply_household_guard(con, cfg)
        clock.lap("guards")
        iterations = customer_components(con, parts)
        clock.lap("components")
        compute_regions(con)
        clock.lap("regions")
        ids = assign_stable_ids(con, cfg, run_id, now)
        clock.lap("stable ids")
        # records linking through each identifier: exact in an incremental run too, since every
        # link of an identifier lies in its region
        con.execute("CREATE OR REPLACE TEMP TABLE id_degree AS "
                    "SELECT iid, count(*) AS records FROM id_links GROUP BY iid")
        queries = persisted_queries(cfg)
        if plan is None:
            persist_tables(con, queries)
            con.execute("INSERT INTO identity.touched_customers VALUES (NULL, ?)", [run_id])
        else:
            incremental_mod.merge(con, queries, run_id)
        con.execute("DELETE FROM identity.resolve_state")
        con.execute("INSERT INTO identity.resolve_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [incremental_mod.fingerprint(cfg, IDENTIFIER_HASH), hashed, incremental_mod.source_specs(sources),
                     extra["mode"], extra["records_resolved"], run_id, now])
    drop_scratch(con)
    con.execute(EXPLAIN_VIEW)
    clock.lap("write")
    q = con.execute("""
        SELECT (SELECT count(*) FROM identity.records),
               (SELECT count(*) FROM identity.record_customer WHERE customer_id IS NOT NULL),
               (SELECT count(DISTINCT customer_id) FROM identity.record_customer),
               (SELECT count(*) FROM identity.rejected_identifiers)""").fetchall()[0]
    clock.lap("summary")
    return ResolveStats(q[0], q[1], q[2], iterations, q[3], ids["new_ids"], ids["merges"], ids["splits"], extra,
                        clock.seconds)
