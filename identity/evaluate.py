"""Pairwise accuracy of the identity graph against a ground-truth file.

Truth CSV: ``record_type,record_id,person_id[,keys]``. Precision is over every pair
of records the pipeline put in one customer: the share that are truly one
person. Recall is over true pairs the data makes linkable: with a ``keys``
column (``kind:value|...``, the true identifiers a record carries), two records of
one person count only if a chain of shared true identifiers joins them; without
it, every pair of one person's records counts. Records of person ``ANON`` (or
empty) belong to nobody.
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

    def lines(self) -> list[str]:
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
        ]


def evaluate(con: duckdb.DuckDBPyConnection, truth: Path, lineage: str = "identity.record_customer") -> Accuracy:
    """Compare ``lineage`` (record_type, record_id, customer_id) with the truth file."""
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
    return Accuracy(precision, recall, f1, predicted, true_pairs, customers, singletons, largest, records, unmatched)
