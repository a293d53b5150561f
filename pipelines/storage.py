"""How warehouse tables store their columns: ciphertext, tokens and ids uncompressed, the rest as DuckDB likes.

AES-GCM output is random bytes, so DuckDB's string compression (dictionary + FSST) wins
little on it, and analysing every segment to find that out is expensive. Measured at 10M
landing records: writing a staging delivery took 40% less CPU with the ``*_enc`` columns
stored uncompressed, and copying the profile and the golden attributes 30% less, for
about 12% more bytes on disk.

Record and customer ids (``record_id``, ``customer_id``, ``source_record_id``) and HMAC tokens
(``*_token``) are the same trade: mostly distinct strings (a token is 64 hex characters of a
keyed hash), which compress to about half but cost more to analyse than to write. Writing the
10M-row ``identity.record_customer`` took 8.9 -> 4.5 CPU-s with its two id columns uncompressed
(153 -> 350 MB), and reading them back is faster too; writing the eleven staging tables at 10M
took 27.3 -> 18.9 CPU-s with their tokens uncompressed as well (1.25 -> 1.55 GB).

Tables holding such columns are therefore created with their columns declared, not by
``CREATE TABLE ... AS``, which cannot say how a column is stored.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

ID_COLUMNS = frozenset({"record_id", "customer_id", "source_record_id"})


def stored_uncompressed(column: str) -> bool:
    """Ciphertext (``phone_enc``..., the golden attributes' ``ciphertext``), tokens and the id columns."""
    return column.endswith(("_enc", "_token")) or column == "ciphertext" or column in ID_COLUMNS


def column_definitions(columns: Iterable[tuple[str, str]]) -> str:
    """``"name" TYPE`` for each (name, type); :func:`stored_uncompressed` ones ``USING COMPRESSION uncompressed``."""
    return ", ".join(f'"{name}" {sql_type}' + (" USING COMPRESSION uncompressed" if stored_uncompressed(name) else "")
                     for name, sql_type in columns)


def create_table_as(con: duckdb.DuckDBPyConnection, table: str, select: str, params: dict | None = None) -> None:
    """``CREATE OR REPLACE TABLE table AS select`` (with named ``params``), storing columns as above."""
    columns = [(row[0], row[1]) for row in con.execute(f"DESCRIBE {select}", params).fetchall()]
    con.execute(f"CREATE OR REPLACE TABLE {table} ({column_definitions(columns)})")
    con.execute(f"INSERT INTO {table} {select}", params)
