"""AiAccount API keys at rest: AES-256-GCM with a versioned keyring.

The only importer of ``cryptography``. ``AIACCOUNT_MASTER_KEYS`` is ``v2:<base64>,v1:<base64>``:
the first key encrypts, every key decrypts. Each encryption takes a fresh 96-bit nonce, and the
associated data binds the ciphertext to its blogger and company, so a ciphertext copied onto
another row does not decrypt.
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32
log = logging.getLogger(__name__)


class KeyringError(RuntimeError):
    """The keyring setting is missing or malformed (the message never holds key material)."""


class DecryptError(RuntimeError):
    """A stored credential does not decrypt with the keyring (wrong key, wrong row, tampered)."""


@dataclass(frozen=True)
class Sealed:
    key_version: str
    nonce: bytes
    ciphertext: bytes


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise KeyringError("AIACCOUNT_MASTER_KEYS holds no key")
        versions = [version for version, _key in keys]
        if len(set(versions)) != len(versions):
            raise KeyringError("AIACCOUNT_MASTER_KEYS repeats a key version")
        self._keys = dict(keys)
        self.current_version = versions[0]

    def __repr__(self) -> str:
        return f"<Keyring versions={list(self._keys)}>"

    @property
    def versions(self) -> list[str]:
        return list(self._keys)

    @classmethod
    def parse(cls, setting: str) -> "Keyring":
        keys: list[tuple[str, bytes]] = []
        for position, part in enumerate(p.strip() for p in setting.split(",") if p.strip()):
            version, sep, encoded = part.partition(":")
            if not sep or not version or not version.isalnum():
                raise KeyringError(
                    f"AIACCOUNT_MASTER_KEYS entry {position + 1} is not 'version:base64key'"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(f"AIACCOUNT_MASTER_KEYS key {version} is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise KeyringError(f"AIACCOUNT_MASTER_KEYS key {version} must be 32 bytes (AES-256)")
            keys.append((version, key))
        return cls(keys)

    @staticmethod
    def associated_data(blogger_id: int, company_name: str) -> bytes:
        return f"aiaccount-credential|blogger={blogger_id}|company={company_name.strip().casefold()}".encode()

    def encrypt(self, plaintext: str, blogger_id: int, company_name: str) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        aead = AESGCM(self._keys[self.current_version])
        ciphertext = aead.encrypt(nonce, plaintext.encode(), self.associated_data(blogger_id, company_name))
        return Sealed(self.current_version, nonce, ciphertext)

    def decrypt(self, sealed: Sealed, blogger_id: int, company_name: str) -> str:
        key = self._keys.get(sealed.key_version)
        if key is None:
            raise DecryptError(f"no key {sealed.key_version!r} in AIACCOUNT_MASTER_KEYS")
        try:
            plain = AESGCM(key).decrypt(
                sealed.nonce, sealed.ciphertext, self.associated_data(blogger_id, company_name)
            )
        except InvalidTag:
            raise DecryptError("the stored API key does not decrypt for this blogger and company") from None
        return plain.decode()


def generate_key_entry(version: str = "v1") -> str:
    return f"{version}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def load_keyring(setting: str, key_file: str | None, *, allow_generate: bool) -> Keyring:
    """The configured keyring; for the demo, a key generated once into ``key_file`` (mode 0600)."""
    if setting.strip():
        return Keyring.parse(setting)
    if not key_file:
        raise KeyringError("AIACCOUNT_MASTER_KEYS is not set")
    path = Path(key_file)
    if not path.exists():
        if not allow_generate:
            raise KeyringError("AIACCOUNT_MASTER_KEYS is not set")
        if _generate_key_file(path):
            message = (f"AIACCOUNT_MASTER_KEYS is not set: generated a demo AES-256 master key into {path} "
                       "(mode 0600). Set AIACCOUNT_MASTER_KEYS in production (docs/security.md).")
            log.warning(message)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyringError(f"{path} must be readable by its owner only (chmod 600)")
    return Keyring.parse(path.read_text())


def _generate_key_file(path: Path) -> bool:
    """Write a new key to ``path`` atomically (mode 0600); False when another process won the race.
    The key is written to a private temporary file first and hard-linked into place, so a reader
    never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key_entry() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: an exclusive create instead
            try:
                final = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return False
            with os.fdopen(final, "w") as handle:
                handle.write(temporary.read_text())
        return True
    finally:
        temporary.unlink(missing_ok=True)
