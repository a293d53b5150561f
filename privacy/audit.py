"""Authorised reveal, with an audit trail that cannot be skipped.

A reveal decrypts a customer's golden attributes for a person holding the keys
and first appends who, when, which customer, why and which fields to
``SCV_HOME/audit/reveal_log.jsonl`` (append-only, mode 0600), exposed in the
warehouse as the view ``privacy.reveal_log``. The log is a file beside the
warehouse, not a table in it, so an audited reveal never has to copy or lock
the warehouse and never conflicts with readers or a running refresh.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from privacy.crypto import decrypt_value
from privacy.keys import Keyring

REVEAL_COLUMNS = {"at": "TIMESTAMPTZ", "who": "VARCHAR", "customer_id": "VARCHAR", "reason": "VARCHAR",
                  "fields": "VARCHAR[]"}


def reveal_log_path(home: Path) -> Path:
    return home / "audit" / "reveal_log.jsonl"


def create_privacy_views(con: duckdb.DuckDBPyConnection, home: Path) -> None:
    """``privacy.reveal_log`` over the audit file (created empty if needed)."""
    path = reveal_log_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    cols = ", ".join(f"'{k}': '{v}'" for k, v in REVEAL_COLUMNS.items())
    con.execute("CREATE SCHEMA IF NOT EXISTS privacy")
    con.execute(f"""CREATE OR REPLACE VIEW privacy.reveal_log AS
                    SELECT * FROM read_json('{path.as_posix()}', format = 'newline_delimited', columns = {{{cols}}})""")


def reveal(con: duckdb.DuckDBPyConnection, keyring: Keyring, home: Path, customer_id: str, reason: str,
           who: str | None = None) -> dict[str, str | None]:
    """Decrypt one customer's golden PII; the audit row is written before anything is decrypted."""
    if not reason or not reason.strip():
        raise ValueError("a reveal needs a reason (it is written to the audit log)")
    rows = con.execute("""SELECT attribute, ciphertext FROM mart.golden_attributes
                          WHERE customer_id = ? AND ciphertext IS NOT NULL ORDER BY attribute""",
                       [customer_id]).fetchall()
    if not rows:
        raise LookupError(f"no customer {customer_id} with encrypted attributes")
    entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "who": who or getpass.getuser(),
             "customer_id": customer_id, "reason": reason.strip(), "fields": [r[0] for r in rows]}
    path = reveal_log_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return {attr: decrypt_value(ct, keyring, attr) for attr, ct in rows}
