"""Data-key rotation: re-encrypt every stored ciphertext under the new active key.

Set-based: per ciphertext column, the distinct values still under an old key are
decrypted and re-encrypted once each (in parallel for large sets) and swapped in
with one ``UPDATE ... FROM``. It runs on a private copy of the warehouse that is
published only when every column is done, so an interrupted rotation changes
nothing and simply runs again. Old keys are retired only when no value uses them.
"""

from __future__ import annotations

import duckdb
import polars as pl

from privacy.crypto import decrypt_value, encrypt_values
from privacy.keys import Keyring

ENC_SUFFIX = "_enc"


def ciphertext_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(schema, table, column) of every stored ciphertext column (base tables only)."""
    return con.execute(f"""
        SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE t.table_type = 'BASE TABLE' AND c.column_name LIKE '%{ENC_SUFFIX}' ORDER BY ALL""").fetchall()


def aad_for(column: str) -> str:
    return column.removesuffix(ENC_SUFFIX)


def key_usage(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many stored values each data key id protects."""
    usage: dict[str, int] = {}
    for schema, table, column in ciphertext_columns(con) + golden_ciphertext_columns(con):
        for kid, n in con.execute(f"""SELECT split_part("{column}", ':', 1), count(*) FROM "{schema}"."{table}"
                                       WHERE "{column}" IS NOT NULL GROUP BY 1""").fetchall():
            usage[kid] = usage.get(kid, 0) + n
    return usage


def golden_ciphertext_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """``mart.golden_attributes`` keeps ciphertext in a generic column; its AAD is the attribute."""
    return [("mart", "golden_attributes", "ciphertext")] if con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mart' "
        "AND table_name = 'golden_attributes'").fetchall()[0][0] else []


def reencrypt(con: duckdb.DuckDBPyConnection, keyring: Keyring) -> dict[str, int]:
    """Move every ciphertext to the active data key; returns values re-encrypted per column."""
    active = keyring.active_data_key
    moved: dict[str, int] = {}
    for schema, table, column in ciphertext_columns(con):
        old = con.execute(f"""SELECT DISTINCT "{column}" FROM "{schema}"."{table}"
                               WHERE "{column}" IS NOT NULL AND NOT starts_with("{column}", '{active}:')""").fetchall()
        if not old:
            continue
        olds = [r[0] for r in old]
        aad = aad_for(column)
        news = encrypt_values([decrypt_value(v, keyring, aad) for v in olds], keyring, aad)
        con.register("rotation_map", pl.DataFrame({"old": olds, "new": news}))
        con.execute(f"""UPDATE "{schema}"."{table}" t SET "{column}" = m.new FROM rotation_map m
                        WHERE t."{column}" = m.old""")
        con.unregister("rotation_map")
        moved[f"{schema}.{table}.{column}"] = len(olds)
    for schema, table, column in golden_ciphertext_columns(con):
        rows = con.execute(f"""SELECT DISTINCT attribute, "{column}" FROM "{schema}"."{table}"
                               WHERE "{column}" IS NOT NULL AND NOT starts_with("{column}", '{active}:')""").fetchall()
        if not rows:
            continue
        news = [encrypt_values([decrypt_value(v, keyring, attr)], keyring, attr)[0] for attr, v in rows]
        con.register("rotation_map", pl.DataFrame({"old": [r[1] for r in rows], "new": news}))
        con.execute(f"""UPDATE "{schema}"."{table}" t SET "{column}" = m.new FROM rotation_map m
                        WHERE t."{column}" = m.old""")
        con.unregister("rotation_map")
        moved[f"{schema}.{table}.{column}"] = len(rows)
    return moved
