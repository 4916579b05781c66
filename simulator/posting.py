"""Posting one import file: idempotency, all-or-nothing validation, dedupe, quota (docs §3)."""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.company import Company, myt_today, quota_period
from simulator.context import history_url, utc_now
from simulator.store import Store, StoredDocument
from simulator.validate import (
    MAX_REPORTED_ERRORS,
    TEMPLATES,
    Document,
    FileRejected,
    Lookup,
    error_summary,
    read_rows,
    validate,
)


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def post_import(store: Store, company: Company, kind: str, key: str, data: bytes) -> Outcome:
    """Validate and post ``data``; every answer but a replay or conflict is recorded."""
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        rows: list[list[Any]] | FileRejected = read_rows(data)
    except FileRejected as rejected:
        rows = rejected
    with store.write():
        previous = store.completed_import_by_key(company, key)
        if previous is not None:
            if previous["kind"] == kind and previous["file_sha256"] == sha256:
                return Outcome(200, json.loads(previous["result"]),
                               {"Idempotent-Replayed": "true"})
            return _error(409, "idempotency_conflict",
                          "this Idempotency-Key was used for a different file")
        result = _new_result(company, kind)
        if isinstance(rows, FileRejected):
            return _fail(store, company, key, sha256, result, rows)
        try:
            result["rows"], documents, errors = validate(kind, rows, company,
                                                         _lookup(store, company))
        except FileRejected as rejected:
            return _fail(store, company, key, sha256, result, rejected)
        result["documents"] = len(documents)
        if errors:
            code, message = error_summary(errors)
            details = [e.to_json() for e in errors[:MAX_REPORTED_ERRORS]]
            return _fail(store, company, key, sha256, result,
                         FileRejected(422, code, message, details))
        stored = store.content_hashes(company, kind, [d.identity for d in documents])
        template = TEMPLATES[kind]
        new = [d for d in documents if d.identity not in stored]
        changed = [d for d in documents
                   if d.identity in stored and stored[d.identity] != d.content_hash(template)]
        period = quota_period(myt_today())
        if company.quota_limit is not None:
            used = store.quota_used(company, period)
            if used + len(new) > company.quota_limit:
                left = max(company.quota_limit - used, 0)
                return _fail(store, company, key, sha256, result, FileRejected(
                    402, "quota_exceeded",
                    f"the import needs {len(new)} documents; {left} left this month",
                    {"used": used, "limit": company.quota_limit, "needed": len(new)}))
        result.update(
            status="completed", created=len(new),
            skipped_duplicates=len(documents) - len(new) - len(changed), changed=len(changed),
            changed_documents=[{"number": d.number, "counterparty": d.counterparty}
                               for d in changed],
            new_counterparties=store.add_counterparties(
                company, template.role, _unique_names(documents)),
        )
        store.add_import(company, key, sha256, result)
        store.add_documents(company, [_stored(kind, doc, result["import_id"]) for doc in new], period)
    return Outcome(200, result)


def _new_result(company: Company, kind: str) -> dict[str, Any]:
    import_id = "imp_" + secrets.token_hex(8)
    return {
        "import_id": import_id, "kind": kind, "status": "failed", "rows": 0, "documents": 0,
        "created": 0, "skipped_duplicates": 0, "changed": 0, "changed_documents": [],
        "new_counterparties": [], "created_at": utc_now(),
        "url": history_url(company, import_id), "error_code": None, "errors": [],
    }


def _fail(store: Store, company: Company, key: str, sha256: str, result: dict[str, Any],
          rejected: FileRejected) -> Outcome:
    """Record a failed import (it does not bind the key) and answer the contract's error."""
    result.update(error_code=rejected.code, message=rejected.message,
                  errors=rejected.details if isinstance(rejected.details, list) else [])
    store.add_import(company, key, sha256, result)
    return _error(rejected.status, rejected.code, rejected.message, rejected.details,
                  import_id=result["import_id"], url=result["url"])


def _error(status: int, code: str, message: str, details: Any = None, **extra: Any) -> Outcome:
    body = {"code": code, "message": message, "details": [] if details is None else details}
    return Outcome(status, {"error": {**body, **extra}})


def _lookup(store: Store, company: Company) -> Lookup:
    def stored(kind: str, identities: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return set(store.content_hashes(company, kind, identities))
    return stored


def _unique_names(documents: list[Document]) -> list[str]:
    names: dict[str, str] = {}
    for doc in documents:
        names.setdefault(doc.identity[1], doc.counterparty)
    return list(names.values())


def _stored(kind: str, doc: Document, import_id: str) -> StoredDocument:
    template = TEMPLATES[kind]
    return StoredDocument(
        kind=kind, number=doc.number, counterparty=doc.counterparty, doc_type=doc.doc_type,
        date=doc.date.isoformat(), currency=doc.currency, total=f"{doc.total(template):.2f}",
        content_hash=doc.content_hash(template), lines=doc.canonical_lines(template),
        import_id=import_id,
    )
