"""Parquet exports for downstream tools: plain files any parquet reader opens.

Exports carry no ciphertext and no plaintext personal data: the marketer columns
(masked phone, tokens, analytics) plus ``marketing_consent``, which activation
tools must filter on (``WHERE marketing_consent``) before contacting anyone.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

# zstd's fastest level: measured at 10M records it writes the profile 15% and the lineage 30%
# faster than the default level 3, for files 2% larger (profile) and 6% smaller (lineage).
ZSTD_LEVEL = 1
# Rows are written in no particular order, as the tables hold them: sorting the 10M-record
# exports (profile by customer id, lineage by record) took 3.3 of the 8.8 s they cost, and a
# reader filtering on an id scans that one column either way.


def write_exports(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, int]:
    """Write ``customer_profile/`` and ``record_customer/`` under ``out``; return row counts."""
    counts = {}
    queries = {
        "customer_profile": "SELECT * FROM mart.customers",
        "record_customer": """SELECT rc.*, (SELECT max(snapshot_date) FROM mart.customer_profile) AS snapshot_date
                              FROM identity.record_customer rc""",
    }
    for name, query in queries.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "part-0.parquet"
        path = target.as_posix().replace("'", "''")  # a quote in SCV_HOME must not end the SQL string
        con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL})")
        counts[name] = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
    return counts
