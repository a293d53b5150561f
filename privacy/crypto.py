"""Field encryption (AES-GCM) and keyed tokens (HMAC-SHA256).

Ciphertext is text, ``<key id>:<base64(nonce || ciphertext || tag)>``, so it
survives parquet and CSV untouched and names the data key that opens it. The
column name is bound in as associated data: a phone ciphertext pasted into the
name column fails authentication instead of decrypting.

Both operations run on *distinct* values only; encryption of large batches is
spread over the machine's cores in worker processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from concurrent.futures import ProcessPoolExecutor

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privacy.keys import Keyring

PARALLEL_THRESHOLD = 50_000
# Worker processes for large batches (None: one per core). A process that is itself one of
# several parallel workers sets 1, so the machine is not asked for cores it has given out.
ENCRYPT_WORKERS: int | None = None


class TamperedCiphertext(ValueError):
    """The ciphertext failed authentication: altered, truncated or for another column."""


NONCE_BYTES = 12


def _seal_chunk(args: tuple[bytes, str, list[str]]) -> list[bytes]:
    """``nonce || ciphertext || tag`` of each value, each under its own fresh random nonce.

    The nonces come from one CSPRNG draw sliced into 12-byte pieces: one system call
    instead of one per value. Pure Python and ``cryptography`` only, because it runs in
    forked workers, where a Polars call can deadlock on the parent's thread pool.
    """
    key, column, values = args
    encrypt = AESGCM(key).encrypt
    aad = column.encode()
    pool = secrets.token_bytes(NONCE_BYTES * len(values))
    nonces = (pool[i : i + NONCE_BYTES] for i in range(0, len(pool), NONCE_BYTES))
    return [nonce + encrypt(nonce, value.encode(), aad) for nonce, value in zip(nonces, values, strict=True)]


def encrypt_values(values: list[str], keyring: Keyring, column: str) -> list[str]:
    """Encrypt each value with the active data key; order is kept.

    Only the AES-GCM calls run per value; base64 and the key-id prefix are column-wise.
    """
    key_id = keyring.active_data_key
    key = keyring.data_key(key_id)
    workers = ENCRYPT_WORKERS or min(os.cpu_count() or 1, 8)
    if len(values) < PARALLEL_THRESHOLD or workers == 1:
        sealed = _seal_chunk((key, column, values))
    else:
        size = -(-len(values) // workers)
        chunks = [(key, column, values[i : i + size]) for i in range(0, len(values), size)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            sealed = [c for part in pool.map(_seal_chunk, chunks) for c in part]
    return (key_id + ":" + pl.Series(sealed, dtype=pl.Binary).bin.encode("base64")).to_list()


def decrypt_value(ciphertext: str | None, keyring: Keyring, column: str) -> str | None:
    """Open one ciphertext (for reveal, rotation and tests)."""
    if ciphertext is None:
        return None
    key_id, _, b64 = ciphertext.partition(":")
    raw = base64.b64decode(b64)
    try:
        return AESGCM(keyring.data_key(key_id)).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], column.encode()).decode()
    except InvalidTag as exc:
        raise TamperedCiphertext(f"{column} ciphertext failed authentication (key {key_id})") from exc


def encrypt_series(series: pl.Series, keyring: Keyring, column: str) -> pl.Series:
    """Encrypt a column, each distinct value once; nulls stay null."""
    distinct = series.drop_nulls().unique().to_list()
    if not distinct:
        return pl.Series(series.name, [None] * len(series), dtype=pl.String)
    lookup = pl.DataFrame(
        {"v": distinct, "c": encrypt_values(distinct, keyring, column)},
        schema={"v": pl.String, "c": pl.String},
    )
    joined = pl.DataFrame({"v": series}).join(lookup, on="v", how="left", maintain_order="left")
    return joined["c"].alias(series.name)


def token(value: str, keyring: Keyring, kind: str) -> str:
    """HMAC-SHA256 token of one value (reference implementation; see :func:`token_series`, :func:`token_sql`)."""
    return hmac.new(keyring.token_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded key blocks (RFC 2104: a key over 64 bytes is hashed first)."""
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def token_series(series: pl.Series, key: bytes, kind: str) -> pl.Series:
    """The :func:`token` of every value of a column under ``key``; nulls stay null.

    HMAC(k, m) = H((k ^ opad) || H((k ^ ipad) || m)): the two padded key blocks are hashed
    once and each value continues from copies of those states, two SHA-256 blocks per value
    instead of four. 0.9 us a value in one process, against 1.3 us of CPU for the same HMAC
    as DuckDB SQL (:func:`token_sql`) and 1.9 us for ``hmac.digest``.
    """
    ipad, opad = _hmac_pads(key)
    inner, outer = hashlib.sha256(ipad), hashlib.sha256(opad)
    prefix = f"{kind}:".encode()

    def one(value: str | None) -> str | None:
        if value is None:
            return None
        i = inner.copy()
        i.update(prefix)
        i.update(value.encode())
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return pl.Series(series.name, [one(v) for v in series.to_list()], dtype=pl.String)


def token_sql(column_sql: str, keyring: Keyring, kind: str, key: bytes | None = None) -> str:
    """A DuckDB expression computing the same HMAC-SHA256 as :func:`token`, set-based.

    HMAC(k, m) = H((k ^ opad) || H((k ^ ipad) || m)); DuckDB's ``sha256`` takes
    BLOBs, so the whole computation runs vectorised at millions of values a second.
    """
    ipad, opad = _hmac_pads(key or keyring.token_key)
    msg = f"encode('{kind}:' || {column_sql})"
    return f"sha256(unhex('{opad.hex()}') || unhex(sha256(unhex('{ipad.hex()}') || {msg})))"
