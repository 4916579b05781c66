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
    app = current_app._get_current_object()
    ring = app.extensions.get("aiaccount_keyring")
    if ring is None:
        ring = load_keyring(
            app.config["AIACCOUNT_MASTER_KEYS"],
            app.config.get("AIACCOUNT_MASTER_KEY_FILE"),
            allow_generate=not app.config.get("PRODUCTION", False),
        )
        app.extensions["aiaccount_keyring"] = ring
    return ring


def clean_api_key(raw: str) -> tuple[str, bool]:
    """Strip surrounding whitespace (keys are often pasted with it); say whether any was removed."""
    cleaned = raw.strip()
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
    """Re-encrypt every credential under the newest key, in one transaction. Idempotent."""
    ring = keyring()
    counts = {"total": 0, "rotated": 0, "already_current": 0}
    credentials = db.session.scalars(select(AiAccountCredential).with_for_update()).all()
    for credential in credentials:
        counts["total"] += 1
        if credential.key_version == ring.current_version:
            counts["already_current"] += 1
            continue
        plain = reveal(credential)
        sealed = ring.encrypt(plain, credential.blogger_id, credential.company_name)
        credential.key_version, credential.nonce, credential.ciphertext = (
            sealed.key_version,
            sealed.nonce,
            sealed.ciphertext,
        )
        counts["rotated"] += 1
    if counts["rotated"]:
        audit.record("aiaccount_credential", "keys_rotated", actor_label="cli", details=counts)
    db.session.commit()
    log.info("Key rotation: %s", counts)
    return counts
