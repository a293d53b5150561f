"""Keys, field encryption and tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import duckdb
import polars as pl
import pytest

from privacy import keys
from privacy.crypto import (
    TamperedCiphertext,
    decrypt_value,
    encrypt_series,
    encrypt_values,
    token,
    token_series,
    token_sql,
)
from privacy.masking import mask_phone


def test_key_files_are_private(key_dir):
    assert oct(os.stat(key_dir / keys.MASTER_FILE).st_mode & 0o777) == "0o600"
    assert oct(os.stat(key_dir / keys.KEYRING_FILE).st_mode & 0o777) == "0o600"


def test_round_trip_and_ciphertext_names_its_key(keyring):
    [ct] = encrypt_values(["王小明"], keyring, "name")
    assert ct.startswith("d1:")
    assert "王小明" not in ct
    assert decrypt_value(ct, keyring, "name") == "王小明"


def test_same_value_encrypts_differently_each_time(keyring):
    a, b = encrypt_values(["13900139001", "13900139001"], keyring, "phone")
    assert a != b


def test_tampered_ciphertext_fails_authentication(keyring):
    [ct] = encrypt_values(["+8613900139001"], keyring, "phone")
    kid, _, body = ct.partition(":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(TamperedCiphertext):
        decrypt_value(f"{kid}:{base64.b64encode(bytes(raw)).decode()}", keyring, "phone")


def test_ciphertext_moved_to_another_column_fails(keyring):
    [ct] = encrypt_values(["+8613900139001"], keyring, "phone")
    with pytest.raises(TamperedCiphertext):
        decrypt_value(ct, keyring, "name")


def test_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SCV_MASTER_KEY", raising=False)
    with pytest.raises(keys.MissingKey, match="scv keys init"):
        keys.load_keyring(tmp_path / "nowhere")


def test_wrong_master_key_is_refused(key_dir, monkeypatch):
    monkeypatch.setenv("SCV_MASTER_KEY", base64.b64encode(b"x" * 32).decode())
    with pytest.raises(keys.WrongKey):
        keys.load_keyring(key_dir)


def test_master_key_from_environment(tmp_path, monkeypatch):
    master = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("SCV_MASTER_KEY", master)
    keys.init_keys(tmp_path / "k")
    assert not (tmp_path / "k" / keys.MASTER_FILE).exists()
    assert keys.load_keyring(tmp_path / "k").token_key


def test_sql_token_equals_python_hmac(keyring):
    values = ["+8613900139001", "wang@example.com", "王小明", "emoji 😀"]
    con = duckdb.connect()
    con.register("v", pl.DataFrame({"x": values}))
    got = [r[0] for r in con.execute(f"SELECT {token_sql('x', keyring, 'phone')} FROM v").fetchall()]
    assert got == [token(v, keyring, "phone") for v in values]
    assert got[0] == hmac.new(keyring.token_key, b"phone:+8613900139001", hashlib.sha256).hexdigest()


def test_token_series_equals_python_hmac_and_keeps_nulls(keyring):
    values = ["+8613900139001", None, "王小明", "emoji 😀", ""]
    got = token_series(pl.Series("x", values), keyring.token_key, "phone").to_list()
    assert got == [None if v is None else token(v, keyring, "phone") for v in values]
    # a key longer than a SHA-256 block is hashed first, as HMAC does
    long_key = bytes(range(100))
    assert token_series(pl.Series(["a"]), long_key, "email").to_list() == [
        hmac.new(long_key, b"email:a", hashlib.sha256).hexdigest()]


def test_tokens_are_domain_separated(keyring):
    assert token("x", keyring, "phone") != token("x", keyring, "email")


def test_encrypt_series_encrypts_distinct_values_once_and_keeps_nulls(keyring):
    s = pl.Series("phone", ["a", None, "a", "b"])
    out = encrypt_series(s, keyring, "phone")
    assert out[1] is None
    assert out[0] == out[2] != out[3]
    assert [decrypt_value(v, keyring, "phone") for v in out] == ["a", None, "a", "b"]


def test_parallel_encryption_path(keyring):
    values = [f"v{i}" for i in range(60_000)]
    out = encrypt_values(values, keyring, "name")
    assert len(out) == 60_000
    assert decrypt_value(out[59_999], keyring, "name") == "v59999"


def test_phone_mask():
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_phone(None) is None
