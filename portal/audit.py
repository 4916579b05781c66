"""Audit log entries. Adds to the session; the caller commits with its own change."""
from __future__ import annotations

import json
from typing import Any

from .extensions import db
from .models import AuditLog, User


def record(
    entity_type: str,
    action: str,
    *,
    entity_id: Any = None,
    blogger_id: int | None = None,
    actor: User | None = None,
    actor_label: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        blogger_id=blogger_id,
        actor_id=actor.id if actor is not None else None,
        actor_label=actor_label or (actor.email if actor is not None else "system"),
        action=action,
        details=json.dumps(details, default=str, ensure_ascii=False) if details else None,
    )
    db.session.add(entry)
    return entry
