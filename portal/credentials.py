"""Storing, replacing and re-keying bloggers' AiAccount credentials."""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from . import audit
from .crypto import Keyring, Sealed, load_keyring
from .extensions import db
from .models import AiAccountCredential, Blogger, User
from .timeutil import utcnow

log = logging.getLogger(__name__)


def keyring() -> Keyring:
    """The app's keyring, parsed once per value of AIACCOUNT_MASTER_KEYS."""
    app = current_app._get_current_object()
    setting = app.config["AIACCOUNT_MASTER_KEYS"]
    cached = app.extensions.get("aiaccount_keyring")
    if cached is None or cached[0] != setting:
        ring = load_keyring(
            setting,
            app.config.get("AIACCOUNT_MASTER_KEY_FILE"),
            allow_generate=not app.config.get("PRODUCTION", False),
        )
        cached = app.extensions["aiaccount_keyring"] = (setting, ring)
    return cached[1]


# Invisible characters a copy from a chat or a PDF brings along (not whitespace to str.strip()).
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def clean_api_key(raw: str) -> tuple[str, bool]:
    """Strip surrounding whitespace and zero-width characters (keys are often pasted with them);
    say whether any was removed."""
    cleaned = raw.strip()
    while cleaned != (again := cleaned.strip(_INVISIBLE).strip()):
        cleaned = again
    return cleaned, cleaned != raw


def set_credential(blogger: Blogger, company_name: str, api_key: str, actor: User | None) -> AiAccountCredential:
    """Encrypt and store (or replace) a blogger's credential; audit-logged without the secret.
    The caller commits."""
    company_name = company_name.strip()
    sealed = keyring().encrypt(api_key, blogger.id, company_name)
    credential = blogger.credential
    action = "credential_replaced" if credential else "credential_set"
    if credential is None:
        credential = AiAccountCredential(blogger=blogger)
        db.session.add(credential)
    credential.company_name = company_name
    credential.key_version = sealed.key_version
    credential.nonce = sealed.nonce
    credential.ciphertext = sealed.ciphertext
    credential.last4 = api_key[-4:]
    credential.set_by_id = actor.id if actor else None
    credential.set_at = utcnow()
    credential.last_test_at = None
    credential.last_test_ok = None
    credential.last_test_message = None
    audit.record(
        "aiaccount_credential",
        action,
        entity_id=blogger.id,
        blogger_id=blogger.id,
        actor=actor,
        details={"company": company_name, "key_ending": credential.last4, "key_version": sealed.key_version},
    )
    return credential


def remove_credential(blogger: Blogger, actor: User | None) -> None:
    credential = blogger.credential
    if credential is None:
        return
    audit.record(
        "aiaccount_credential",
        "credential_removed",
        entity_id=blogger.id,
        blogger_id=blogger.id,
        actor=actor,
        details={"company": credential.company_name, "key_ending": credential.last4},
    )
    db.session.delete(credential)


def reveal(credential: AiAccountCredential) -> str:
    """The plaintext key, for the worker's push and the admin's connection test only."""
    return keyring().decrypt(
        Sealed(credential.key_version, credential.nonce, credential.ciphertext),
        credential.blogger_id,
        credential.company_name,
    )


def rotate_keys() -> dict[str, int]:
    """Re-encrypt every credential under the newest key, in one transaction. Idempotent: a
    credential already on the newest key is left alone. If any credential does not decrypt,
    nothing is changed and the DecryptError propagates."""
    ring = keyring()
    counts = {"total": 0, "rotated": 0, "already_current": 0}
    try:
        credentials = db.session.scalars(
            select(AiAccountCredential).order_by(AiAccountCredential.id).with_for_update()).all()
        for credential in credentials:
            counts["total"] += 1
            if credential.key_version == ring.current_version:
                counts["already_current"] += 1
                continue
            plain = reveal(credential)
            sealed = ring.encrypt(plain, credential.blogger_id, credential.company_name)
            del plain
            credential.key_version, credential.nonce, credential.ciphertext = (
                sealed.key_version,
                sealed.nonce,
                sealed.ciphertext,
            )
            counts["rotated"] += 1
        if counts["rotated"]:
            audit.record("aiaccount_credential", "keys_rotated", actor_label="cli",
                         details={**counts, "key_version": ring.current_version})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    log.info("Key rotation to %s: %s", ring.current_version, counts)
    return counts
