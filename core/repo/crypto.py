"""Repository keys and authenticated encryption of every stored object.

In: a passphrase or key file, plaintext blobs and metadata. Out: `MasterKey`
(encryption key, chunk-id key, chunker seed) and AES-256-GCM ciphertexts
(`nonce || ciphertext || tag`) bound to their identity by associated data.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes

from ragbackup import errors
from ragbackup.repo.ids import chunk_id

NONCE_LEN = 12
TAG_LEN = 16
OVERHEAD = NONCE_LEN + TAG_LEN

# scrypt cost for passphrase wrapping: ~0.1-0.3 s and 64 MiB on a small server.
SCRYPT_N = 2**16
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 256 * 1024 * 1024  # the most memory unwrapping a key may take
SCRYPT_MAX_WORK = 1 << 24  # n * r * p: 32 times what wrap_master_key writes


@dataclass(frozen=True)
class MasterKey:
    """The repository's secrets: never written anywhere unwrapped, never logged."""

    enc_key: bytes  # AES-256-GCM key for blobs and metadata
    id_key: bytes  # keyed BLAKE3 key for chunk ids
    chunker_seed: int  # FastCDC gear-table seed (hides chunk boundaries)

    @classmethod
    def generate(cls) -> "MasterKey":
        return cls(os.urandom(32), os.urandom(32), int.from_bytes(os.urandom(4), "little") or 1)

    def to_bytes(self) -> bytes:
        return json.dumps({
            "enc": base64.b64encode(self.enc_key).decode(),
            "id": base64.b64encode(self.id_key).decode(),
            "chunker_seed": self.chunker_seed,
        }).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "MasterKey":
        d = json.loads(data)
        return cls(base64.b64decode(d["enc"]), base64.b64decode(d["id"]), int(d["chunker_seed"]))

    def __repr__(self) -> str:
        return "MasterKey(***)"


@dataclass(frozen=True)
class Unlocker:
    """What opens a wrapped key: a passphrase (scrypt) or the bytes of a key file (HKDF)."""

    kind: str  # "passphrase" | "keyfile"
    secret: bytes
    source: str = ""  # where the secret came from, for messages: "password file /etc/...", never the secret

    def __repr__(self) -> str:
        return f"Unlocker({self.kind}, ***)"

    def describe(self) -> str:
        """`the passphrase from password file /x`, `the key file /y`, or `the passphrase`."""
        what = "passphrase" if self.kind == "passphrase" else "key file"
        if not self.source:
            return f"the {what}"
        return f"the {self.source}" if self.kind == "keyfile" else f"the passphrase from {self.source}"


def _wrapping_key(unlocker: Unlocker, params: dict) -> bytes:
    salt = base64.b64decode(params["salt"])
    if params["kdf"] == "scrypt":
        if unlocker.kind != "passphrase":
            raise errors.WrongKey("this key is wrapped by a passphrase, but a key file was given")
        return hashlib.scrypt(unlocker.secret, salt=salt, n=params["n"], r=params["r"], p=params["p"],
                              maxmem=SCRYPT_MAXMEM + 1024 * 1024, dklen=32)
    if params["kdf"] == "hkdf-sha256":
        if unlocker.kind != "keyfile":
            raise errors.WrongKey("this key is wrapped by a key file, but a passphrase was given")
        return HKDF(hashes.SHA256(), 32, salt, b"rag-backup key file v1").derive(unlocker.secret)
    raise errors.UnsupportedFormat(f"unknown key derivation {params['kdf']!r}")


def wrap_master_key(master: MasterKey, unlocker: Unlocker) -> bytes:
    """Serialize `master` encrypted under a key derived from `unlocker` (a `keys/<id>` object)."""
    salt = os.urandom(16)
    if unlocker.kind == "passphrase":
        params = {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    else:
        params = {"kdf": "hkdf-sha256"}
    params["salt"] = base64.b64encode(salt).decode()
    wk = _wrapping_key(unlocker, params)
    sealed = seal(wk, master.to_bytes(), b"rag-backup master key")
    obj = {"version": 1, **params, "data": base64.b64encode(sealed).decode()}
    obj["check"] = _key_check(obj)
    return json.dumps(obj, indent=1).encode()


def _key_check(obj: dict) -> str:
    """SHA-256 of a key object's other fields (sorted compact JSON): tells damage from a wrong secret."""
    rest = {k: v for k, v in obj.items() if k != "check"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


_KDF_FIELDS = {"scrypt": ("n", "r", "p", "salt", "data"), "hkdf-sha256": ("salt", "data")}


def parse_key_object(name: str, wrapped: bytes) -> dict:
    """The fields of key object `name`, checked; KeyDamaged when it is not a readable wrapped key.

    Key objects written before the `check` field existed are checked for structure only.
    """
    def damaged(why: str) -> errors.KeyDamaged:
        return errors.KeyDamaged(f"key object {name} is damaged: {why}")
    try:
        params = json.loads(wrapped)
    except (ValueError, UnicodeDecodeError):
        raise damaged("not JSON (truncated or overwritten)") from None
    if not isinstance(params, dict):
        raise damaged("not a JSON object")
    if "check" in params and params["check"] != _key_check(params):
        raise damaged("its checksum does not match its content")
    fields = _KDF_FIELDS.get(params.get("kdf"))
    if fields is None:
        raise damaged(f"unknown key derivation {params.get('kdf')!r}")
    if any(f not in params for f in fields):
        raise damaged(f"missing field(s) {', '.join(f for f in fields if f not in params)}")
    try:
        salt, data = base64.b64decode(params["salt"], validate=True), base64.b64decode(params["data"], validate=True)
    except (ValueError, TypeError):
        raise damaged("salt or data is not base64") from None
    if not salt or len(data) < OVERHEAD:
        raise damaged("salt or data is too short")
    if params["kdf"] == "scrypt" and not _scrypt_params_ok(params):
        raise damaged(f"scrypt parameters n={params['n']!r} r={params['r']!r} p={params['p']!r} are invalid")
    return params


def _scrypt_params_ok(params: dict) -> bool:
    """What hashlib.scrypt (OpenSSL) accepts within our bounds: n a power of two above 1 and
    below 2**(16 * r), r and p positive integers, 128 * r * (n + p + 2) bytes of memory at most
    SCRYPT_MAXMEM, and n * r * p at most SCRYPT_MAX_WORK (a damaged key object must not make
    unwrapping run for minutes)."""
    n, r, p = params["n"], params["r"], params["p"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, r, p)):
        return False
    return (n > 1 and n & (n - 1) == 0 and (16 * r > 63 or n < 1 << (16 * r))
            and 128 * r * (n + p + 2) <= SCRYPT_MAXMEM and n * r * p <= SCRYPT_MAX_WORK)


def unwrap_master_key(wrapped: bytes, unlocker: Unlocker, name: str = "key") -> MasterKey:
    """Open a `keys/<id>` object; KeyDamaged if it is damaged, WrongKey if `unlocker` does not open it."""
    params = parse_key_object(name, wrapped)
    wk = _wrapping_key(unlocker, params)
    try:
        plain = open_sealed(wk, base64.b64decode(params["data"]), b"rag-backup master key")
    except errors.IntegrityError:
        raise errors.WrongKey() from None
    return MasterKey.from_bytes(plain)


def seal(key: bytes, plaintext: bytes | memoryview, aad: bytes) -> bytes:
    """Encrypt with a fresh random nonce: returns nonce || ciphertext || tag."""
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(key).encrypt(nonce, bytes(plaintext), aad)


def open_sealed(key: bytes, sealed: bytes | memoryview, aad: bytes) -> bytes:
    """Decrypt and authenticate; IntegrityError when any bit was changed."""
    sealed = memoryview(sealed)
    if len(sealed) < OVERHEAD:
        raise errors.IntegrityError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(bytes(sealed[:NONCE_LEN]), bytes(sealed[NONCE_LEN:]), aad)
    except InvalidTag:
        raise errors.IntegrityError("authentication failed: the data was changed or the key is wrong") from None


class Cipher:
    """Encrypts blobs and metadata under one MasterKey; reuses the AESGCM context."""

    def __init__(self, master: MasterKey):
        self._aead = AESGCM(master.enc_key)
        self.id_key = master.id_key

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytearray:
        """nonce || ciphertext || tag, encrypted straight into one buffer (no concatenation copy)."""
        nonce = os.urandom(NONCE_LEN)
        out = bytearray(NONCE_LEN + len(plaintext) + TAG_LEN)
        out[:NONCE_LEN] = nonce
        self._aead.encrypt_into(nonce, plaintext, aad, memoryview(out)[NONCE_LEN:])
        return out

    def open(self, sealed: bytes | memoryview, aad: bytes) -> bytes:
        sealed = memoryview(sealed)
        if len(sealed) < OVERHEAD:
            raise errors.IntegrityError("ciphertext too short")
        try:
            return self._aead.decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], aad)
        except InvalidTag:
            raise errors.IntegrityError("authentication failed: the data was changed") from None

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        return chunk_id(self.id_key, data)


