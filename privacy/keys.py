"""Brand-held keys with envelope encryption.

A single *master key* (32 random bytes) never touches data. It wraps (AES-GCM)
the *data keys* that encrypt fields and the *token key* that makes HMAC tokens.
The wrapped keys live in ``keyring.json`` next to the master key, never in the
warehouse or the exports, so a copy of ``SCV_HOME`` alone reveals nothing.

Where the keys come from (first match wins):

* ``SCV_MASTER_KEY``: the master key itself, base64 (for CI, containers, a KMS
  shim that exports it at start-up).
* ``SCV_KEY_DIR``: a folder holding ``master.key`` (mode 0600) and ``keyring.json``.
* neither set: ``.keys/`` in the source checkout, the local development key
  that ``scv keys init`` (or ``scv demo``) creates.

There is never a plaintext fallback: a configured but missing or wrong key
raises :class:`KeyError_` subclasses with a message that says what to do.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_ENV = "SCV_MASTER_KEY"
KEY_DIR_ENV = "SCV_KEY_DIR"
DEFAULT_KEY_DIR = ".keys"
MASTER_FILE = "master.key"
KEYRING_FILE = "keyring.json"


class KeyProblem(RuntimeError):
    """A key is missing, wrong or unusable; raised before anything is written."""


class MissingKey(KeyProblem):
    pass


class WrongKey(KeyProblem):
    pass


def key_dir() -> Path:
    """The configured key folder; by default ``.keys/`` of the source checkout (or working directory)."""
    if os.environ.get(KEY_DIR_ENV):
        return Path(os.environ[KEY_DIR_ENV]).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    base = checkout if (checkout / "pyproject.toml").exists() else Path.cwd()
    return base / DEFAULT_KEY_DIR


def key_source_configured() -> bool:
    """True when the operator named a key explicitly (env var or key folder)."""
    return bool(os.environ.get(MASTER_KEY_ENV) or os.environ.get(KEY_DIR_ENV))


def _wrap(master: bytes, key_id: str, key: bytes) -> str:
    nonce = secrets.token_bytes(12)
    blob = AESGCM(master).encrypt(nonce, key, f"scv-key:{key_id}".encode())
    return base64.b64encode(nonce + blob).decode()


def _unwrap(master: bytes, key_id: str, wrapped: str) -> bytes:
    raw = base64.b64decode(wrapped)
    try:
        return AESGCM(master).decrypt(raw[:12], raw[12:], f"scv-key:{key_id}".encode())
    except InvalidTag as exc:
        raise WrongKey(
            f"the master key does not open key {key_id!r} in the keyring: wrong "
            f"{MASTER_KEY_ENV} or master.key for this keyring"
        ) from exc


def _read_master(folder: Path) -> bytes:
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        try:
            master = base64.b64decode(env, validate=True)
        except ValueError as exc:
            raise WrongKey(f"{MASTER_KEY_ENV} is not valid base64") from exc
    else:
        path = folder / MASTER_FILE
        if not path.exists():
            raise MissingKey(
                f"no master key: {path} does not exist and {MASTER_KEY_ENV} is not set. "
                f"Create a key with `scv keys init` (or point {KEY_DIR_ENV} at the brand's key folder)."
            )
        master = base64.b64decode(path.read_text().strip())
    if len(master) != 32:
        raise WrongKey(f"the master key must be 32 bytes, got {len(master)}")
    return master


@dataclass
class Keyring:
    """Unwrapped keys in memory for the length of one operation."""

    folder: Path
    active_data_key: str
    data_keys: dict[str, bytes]
    token_key_id: str
    token_key: bytes
    meta: dict = field(default_factory=dict)
    # earlier token keys, kept only to recognise erased people in re-ingested files
    old_token_keys: dict[str, bytes] = field(default_factory=dict)

    def data_key(self, key_id: str) -> bytes:
        try:
            return self.data_keys[key_id]
        except KeyError as exc:
            raise MissingKey(f"ciphertext uses data key {key_id!r}, which the keyring does not hold") from exc

    def fingerprint(self) -> str:
        """Public identity of the token key: lets the warehouse refuse a different key."""
        import hashlib

        return hashlib.sha256(b"scv-token-fingerprint" + self.token_key).hexdigest()[:16]


def init_keys(folder: Path | None = None, *, exist_ok: bool = True) -> Path:
    """Create a master key and a keyring with one data key and one token key."""
    folder = folder or key_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ring_path = folder / KEYRING_FILE
    if ring_path.exists():
        if exist_ok:
            return folder
        raise KeyProblem(f"{ring_path} exists already; refusing to overwrite keys")
    master_path = folder / MASTER_FILE
    if os.environ.get(MASTER_KEY_ENV):
        master = _read_master(folder)
    else:
        master = secrets.token_bytes(32)
        fd = os.open(master_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(master).decode() + "\n")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ring = {
        "version": 1,
        "active_data_key": "d1",
        "data_keys": {"d1": {"wrapped": _wrap(master, "d1", secrets.token_bytes(32)), "created": now,
                             "status": "active"}},
        "token_key_id": "t1",
        "token_keys": {"t1": {"wrapped": _wrap(master, "t1", secrets.token_bytes(32)), "created": now}},
    }
    _write_ring(ring_path, ring)
    return folder


def _write_ring(path: Path, ring: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(ring, fh, indent=2)
    os.replace(tmp, path)


def load_keyring(folder: Path | None = None) -> Keyring:
    """Read and unwrap every key, or raise a :class:`KeyProblem` saying why not."""
    folder = folder or key_dir()
    ring_path = folder / KEYRING_FILE
    master = _read_master(folder)
    if not ring_path.exists():
        raise MissingKey(f"no keyring at {ring_path}: run `scv keys init` or set {KEY_DIR_ENV}")
    ring = json.loads(ring_path.read_text())
    data_keys = {kid: _unwrap(master, kid, spec["wrapped"]) for kid, spec in ring["data_keys"].items()
                 if spec.get("status") != "destroyed"}
    tid = ring["token_key_id"]
    token = _unwrap(master, tid, ring["token_keys"][tid]["wrapped"])
    old = {k: _unwrap(master, k, spec["wrapped"]) for k, spec in ring["token_keys"].items() if k != tid}
    return Keyring(folder, ring["active_data_key"], data_keys, tid, token, meta=ring, old_token_keys=old)


def add_data_key(folder: Path | None = None) -> str:
    """Create a new active data key (rotation step one); older keys stay until retired."""
    folder = folder or key_dir()
    master = _read_master(folder)
    ring_path = folder / KEYRING_FILE
    ring = json.loads(ring_path.read_text())
    for kid in ring["data_keys"]:
        _unwrap(master, kid, ring["data_keys"][kid]["wrapped"])  # refuse a wrong master early
    n = max(int(k[1:]) for k in ring["data_keys"]) + 1
    new_id = f"d{n}"
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for spec in ring["data_keys"].values():
        if spec["status"] == "active":
            spec["status"] = "retiring"
    ring["data_keys"][new_id] = {"wrapped": _wrap(master, new_id, secrets.token_bytes(32)), "created": now,
                                 "status": "active"}
    ring["active_data_key"] = new_id
    _write_ring(ring_path, ring)
    return new_id


def add_token_key(folder: Path | None = None) -> str:
    """New active token key (token rotation). Old token keys stay, to keep erased people out."""
    folder = folder or key_dir()
    master = _read_master(folder)
    ring_path = folder / KEYRING_FILE
    ring = json.loads(ring_path.read_text())
    for kid, spec in ring["token_keys"].items():
        _unwrap(master, kid, spec["wrapped"])  # refuse a wrong master early
    new_id = f"t{max(int(k[1:]) for k in ring['token_keys']) + 1}"
    ring["token_keys"][new_id] = {"wrapped": _wrap(master, new_id, secrets.token_bytes(32)),
                                  "created": datetime.now(UTC).isoformat(timespec="seconds")}
    ring["token_key_id"] = new_id
    _write_ring(ring_path, ring)
    return new_id


def retire_data_keys(keep: set[str], folder: Path | None = None) -> list[str]:
    """Mark every data key not in ``keep`` destroyed, once no ciphertext uses it."""
    folder = folder or key_dir()
    ring_path = folder / KEYRING_FILE
    ring = json.loads(ring_path.read_text())
    retired = []
    for kid, spec in ring["data_keys"].items():
        if kid not in keep and kid != ring["active_data_key"] and spec["status"] != "destroyed":
            spec["status"] = "destroyed"
            spec["wrapped"] = ""
            retired.append(kid)
    _write_ring(ring_path, ring)
    return retired
