"""Pairwise accuracy of the identity graph against a ground-truth file.

Truth CSV: ``record_type,record_id,person_id[,keys]``. Precision is over every pair
of records the pipeline put in one customer: the share that are truly one
person. Recall is over true pairs the data makes linkable: with a ``keys``
column (``kind:value|...``, the true identifiers a record carries), two records of
one person count only if a chain of shared true identifiers joins them; without
it, every pair of one person's records counts. Records of person ``ANON`` (or
empty) belong to nobody.

Given the warehouse's identity schema, :func:`evaluate` also asks of every wrong pair
(two people in one customer) whether anything on their records tells them apart: a
kind of identifier or attribute (name, gender, unionid, card, email, Weibo uid, buyer
nick) that both carry with no value in common. A guard can only split people on such
evidence, so ``precision_ceiling`` (the precision with every evidenced wrong pair
split off) bounds what tuning the guards can reach. The phone that joined them is
shared by definition, and openids are left out: one person has a different openid in
every WeChat app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from identity.graph import connected_components


@dataclass
class Accuracy:
    precision: float
    recall: float
    f1: float
    predicted_pairs: int
    true_pairs: int
    customers: int
    singletons: int
    largest_cluster: int
    records: int
    unmatched_truth: int
    wrong_pairs: int | None = None  # pairs of two named people in one customer
    wrong_pairs_with_evidence: int | None = None  # ... whose records disagree on some identifier or attribute
    precision_ceiling: float | None = None

    def lines(self) -> list[str]:
        evidence = [] if self.wrong_pairs is None else [
            f"wrong pairs          {self.wrong_pairs:>12,}",
            f"  with evidence      {self.wrong_pairs_with_evidence:>12,}",
            f"precision ceiling    {self.precision_ceiling:>12.5f}",
        ]
        return [
            f"records evaluated    {self.records:>12,}",
            f"customers            {self.customers:>12,}",
            f"singletons           {self.singletons:>12,}",
            f"largest cluster      {self.largest_cluster:>12,}",
            f"predicted pairs      {self.predicted_pairs:>12,}",
            f"linkable true pairs  {self.true_pairs:>12,}",
            f"pairwise precision   {self.precision:>12.5f}",
            f"pairwise recall      {self.recall:>12.5f}",
            f"F1                   {self.f1:>12.5f}",
            *evidence,
        ]


def evaluate(con: duckdb.DuckDBPyConnection, truth: Path, lineage: str = "identity.record_customer",
             identity: str | None = None) -> Accuracy:
    """Compare ``lineage`` (record_type, record_id, customer_id) with the truth file.

    ``identity`` names the schema holding the graph's ``records``, ``record_identifiers``
    and ``identifier_tokens`` (``identity``, or ``wh.identity`` for an attached warehouse):
    with it, the wrong pairs are split by evidence (module docstring).
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ev_truth AS
        SELECT row_number() OVER (ORDER BY record_type, record_id) AS rk, *
        FROM (SELECT DISTINCT ON (record_type, record_id) * FROM read_csv('{truth.as_posix()}', all_varchar = true))
    """)
    has_keys = "keys" in {r[0] for r in con.execute("DESCRIBE ev_truth").fetchall()}
    key_expr = "unnest(string_split(keys, '|'))" if has_keys else "'person'"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ev_keys AS
            SELECT rk, person_id || '#' || {key_expr} AS k FROM ev_truth
            WHERE person_id IS NOT NULL AND person_id <> 'ANON'
              {"AND keys IS NOT NULL AND keys <> ''" if has_keys else ""};
        CREATE OR REPLACE TEMP TABLE ev_links AS
            SELECT rk, dense_rank() OVER (ORDER BY k) AS iid FROM ev_keys WHERE k <> '';
    """)
    # scratch tables of this connection only: a warehouse connection keeps its own identity tables
    connected_components(con, links="ev_links", out="ev_components")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ev AS
        SELECT t.rk, t.person_id, c.comp AS true_group, l.customer_id
        FROM ev_truth t
        LEFT JOIN ev_components c USING (rk)
        LEFT JOIN {lineage} l USING (record_type, record_id)
    """)
    pairs = "sum(n * (n - 1) / 2)::BIGINT"
    q = con.execute(f"""
        SELECT
          (SELECT coalesce({pairs}, 0) FROM (SELECT count(*) n FROM ev WHERE customer_id IS NOT NULL
                                             GROUP BY customer_id)),
          (SELECT coalesce({pairs}, 0) FROM (SELECT count(*) n FROM ev WHERE customer_id IS NOT NULL
                                             AND person_id <> 'ANON' GROUP BY customer_id, person_id)),
          (SELECT coalesce({pairs}, 0) FROM (SELECT count(*) n FROM ev WHERE true_group IS NOT NULL
                                             GROUP BY true_group)),
          (SELECT coalesce({pairs}, 0) FROM (SELECT count(*) n FROM ev WHERE true_group IS NOT NULL
                                             AND customer_id IS NOT NULL GROUP BY true_group, customer_id)),
          (SELECT count(DISTINCT customer_id) FROM ev),
          (SELECT count(*) FROM (SELECT customer_id FROM ev WHERE customer_id IS NOT NULL GROUP BY customer_id
                                 HAVING count(*) = 1)),
          (SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM ev WHERE customer_id IS NOT NULL
                                            GROUP BY customer_id)),
          (SELECT count(*) FROM ev),
          (SELECT count(*) FROM ev_truth t ANTI JOIN {lineage} l USING (record_type, record_id))
    """).fetchall()[0]
    predicted, tp_p, true_pairs, tp_r, customers, singletons, largest, records, unmatched = q
    precision = tp_p / predicted if predicted else 1.0
    recall = tp_r / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    acc = Accuracy(precision, recall, f1, predicted, true_pairs, customers, singletons, largest, records, unmatched)
    if identity is not None:
        try:
            wrong, evidenced = wrong_pair_evidence(con, identity)
        except duckdb.CatalogException:  # a warehouse from before identifier_tokens: not asked
            return acc
        acc.wrong_pairs, acc.wrong_pairs_with_evidence = wrong, evidenced
        acc.precision_ceiling = tp_p / (predicted - evidenced) if predicted - evidenced else 1.0
    return acc


def wrong_pair_evidence(con: duckdb.DuckDBPyConnection, identity: str) -> tuple[int, int]:
    """(wrong pairs between named people, those whose records disagree on some kind), from :func:`evaluate`'s ``ev``."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ev_people AS
            SELECT customer_id, person_id, count(*) AS n FROM ev
            WHERE customer_id IS NOT NULL AND person_id IS NOT NULL AND person_id <> 'ANON' GROUP BY ALL;
        CREATE OR REPLACE TEMP TABLE ev_mixed AS
            SELECT customer_id FROM ev_people GROUP BY customer_id HAVING count(*) > 1;
        -- each person's values of each kind, on their records in a mixed customer
        CREATE OR REPLACE TEMP TABLE ev_values AS
            SELECT e.customer_id, e.person_id, k.kind, list(DISTINCT k.iid) AS vals
            FROM ev e SEMI JOIN ev_mixed USING (customer_id)
            JOIN ev_truth t USING (rk)
            JOIN {identity}.records r ON r.record_type = t.record_type AND r.record_id = t.record_id
            JOIN {identity}.record_identifiers i ON i.rk = r.rk
            JOIN {identity}.identifier_tokens k ON k.iid = i.iid
            WHERE k.kind NOT IN ('phone', 'openid') AND e.person_id <> 'ANON'
            GROUP BY ALL""")
    return con.execute("""
        WITH pairs AS (
            SELECT a.customer_id, a.person_id AS pa, b.person_id AS pb, a.n * b.n AS wrong
            FROM ev_people a JOIN ev_people b ON a.customer_id = b.customer_id AND a.person_id < b.person_id),
        evidence AS (
            SELECT x.customer_id, x.person_id AS pa, y.person_id AS pb
            FROM ev_values x JOIN ev_values y
              ON x.customer_id = y.customer_id AND x.kind = y.kind AND x.person_id < y.person_id
            WHERE NOT list_has_any(x.vals, y.vals)
            GROUP BY ALL)
        SELECT coalesce(sum(wrong), 0)::BIGINT,
               coalesce(sum(wrong) FILTER (e.pa IS NOT NULL), 0)::BIGINT
        FROM pairs p LEFT JOIN evidence e USING (customer_id, pa, pb)""").fetchall()[0]
