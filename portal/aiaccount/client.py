"""The only code that speaks HTTP to AiAccount (docs/aiaccount-api.md). No Flask in here.

Transient failures (connection errors, timeouts, broken responses, 429, 5xx) are retried with
exponential backoff, always with the same Idempotency-Key, so a retry after a lost answer replays
the import instead of duplicating it. Every failure surfaces as an ``AiAccountError``.
"""
from __future__ import annotations

import logging
import string
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from portal.aiaccount.errors import CATALOG, AiAccountError
from portal.aiaccount.templates import KINDS

log = logging.getLogger("portal.aiaccount")
T = TypeVar("T")

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_RETRY_AFTER = 60.0
PER_PAGE = 1000
_HEADER_SAFE = string.punctuation.replace("%", "") + " "
_PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, InvalidOperation)


@dataclass(frozen=True)
class Account:
    number: str
    name: str
    sales: bool
    expense: bool
    receipt: bool
    payment: bool


@dataclass(frozen=True)
class Company:
    name: str
    home_currency: str
    currencies: frozenset[str]
    tax_codes: Mapping[str, Decimal]  # enabled codes only -> rate in percent
    accounts: Mapping[str, Account]
    incorporation_date: date
    locked_until: date | None
    plan: str
    quota_used: int
    quota_limit: int | None  # None = unlimited
    import_history_url: str
    can_write: bool = True  # the calling key may import (permissions.write)

    def to_dict(self) -> dict[str, Any]:
        """The company in the API's own JSON shape (a snapshot the portal stores; no secrets)."""
        return {
            "name": self.name, "home_currency": self.home_currency,
            "currencies": sorted(self.currencies),
            "tax_codes": [{"code": c, "rate": str(r), "enabled": True} for c, r in sorted(self.tax_codes.items())],
            "accounts": [{"number": a.number, "name": a.name,
                          "usage": {"sales": a.sales, "expense": a.expense, "receipt": a.receipt,
                                    "payment": a.payment}} for a in self.accounts.values()],
            "incorporation_date": self.incorporation_date.isoformat(),
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "plan": self.plan, "quota": {"used": self.quota_used, "limit": self.quota_limit},
            "permissions": {"write": self.can_write},
            "import_history_url": self.import_history_url,
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> "Company":
        return _parse(_company, body, "company snapshot")


@dataclass(frozen=True)
class ChangedDocument:
    number: str
    counterparty: str


@dataclass(frozen=True)
class ImportResult:
    import_id: str
    kind: str
    status: str  # "completed" | "failed"
    rows: int
    documents: int
    created: int
    skipped_duplicates: int
    changed: int
    changed_documents: tuple[ChangedDocument, ...]
    new_counterparties: tuple[str, ...]
    created_at: datetime
    url: str
    replayed: bool = False  # answered from AiAccount's idempotency store
    error_code: str | None = None
    errors: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class RemoteDocument:
    number: str
    counterparty: str
    date: date
    currency: str
    total: Decimal
    import_id: str


class AiAccountClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        company: str,
        *,
        timeout: float | tuple[float, float] = (3.05, 30),
        max_retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.company = company.strip()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._api_key = api_key
        self._session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"AiAccountClient(base_url={self.base_url!r}, company={self.company!r})"

    def close(self) -> None:
        self._session.close()

    def get_company(self) -> Company:
        return _parse(_company, self._request("GET", "/company")[0], "company")

    def upload(self, kind: str, data: bytes, idempotency_key: str) -> ImportResult:
        """Post one import file; retried transient failures resend the same key and bytes."""
        if kind not in KINDS:
            raise ValueError(f"unknown import kind {kind!r}")
        body, response = self._request(
            "POST", f"/imports/{kind}", data=data,
            headers={"Content-Type": XLSX_MIME, "Idempotency-Key": idempotency_key},
        )
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return _parse(lambda b: _import_result(b, replayed), body, "import")

    def get_import(self, import_id: str) -> ImportResult:
        body, _ = self._request("GET", f"/imports/{quote(import_id, safe='')}")
        return _parse(lambda b: _import_result(b, False), body, "import")

    def list_documents(self, kind: str, start: date, end: date) -> Iterator[RemoteDocument]:
        """Every stored document of ``kind`` dated start..end (inclusive), page by page."""
        page: int | None = 1
        while page is not None:
            body, _ = self._request("GET", "/documents", params={
                "kind": kind, "from": start.isoformat(), "to": end.isoformat(),
                "page": page, "per_page": PER_PAGE,
            })
            documents, page = _parse(_documents_page, body, "documents page")
            yield from documents

    # HTTP ------------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        data: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], requests.Response]:
        if not self._api_key or any(char.isspace() for char in self._api_key):
            raise AiAccountError.make(
                "invalid_api_key", message="the stored API key is empty or contains whitespace")
        headers = {
            **(headers or {}),
            "Accept": "application/json",
            "X-Api-Key": self._api_key,
            "X-Company": quote(self.company, safe=_HEADER_SAFE),
        }
        idempotency_key = headers.get("Idempotency-Key")
        attempt = 0
        while True:
            started = time.monotonic()
            outcome: int | str = "no answer"
            try:
                response = self._session.request(
                    method, self.base_url + "/api/v1" + path, params=params, data=data,
                    headers=headers, timeout=self.timeout)
                outcome = response.status_code
                return self._interpret(response), response
            except AiAccountError as exc:
                error = exc
            except requests.ConnectTimeout as exc:
                error = self._transport_error("connection_error", exc)
            except requests.Timeout as exc:
                error = self._transport_error("timeout", exc)
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                error = self._transport_error("bad_response", exc, transient=True)
            except requests.ConnectionError as exc:
                error = self._transport_error("connection_error", exc)
            except requests.RequestException as exc:  # invalid URL, header, scheme...
                error = self._transport_error("connection_error", exc, transient=False)
            finally:
                log.info("AiAccount %s %s -> %s in %.0f ms (idempotency key %s, attempt %d)",
                         method, path, outcome,
                         (time.monotonic() - started) * 1000, idempotency_key, attempt + 1)
            if not error.transient or attempt >= self.max_retries:
                raise error
            delay = self.backoff * 2 ** attempt
            if error.retry_after is not None:
                delay = min(error.retry_after, MAX_RETRY_AFTER)
            log.warning("AiAccount %s %s: %s; retry %d/%d in %.2f s", method, path, error.code,
                        attempt + 1, self.max_retries, delay)
            self._sleep(delay)
            attempt += 1

    def _interpret(self, response: requests.Response) -> dict[str, Any]:
        """The JSON object of a 2xx answer, or raise the typed error the answer means."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if isinstance(body, dict):
                return body
            raise self._unexpected(response, "a 2xx answer without a JSON object")
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else None
        code = error.get("code") if error else None
        code = code if isinstance(code, str) else None
        if status == 429:
            code = "rate_limited"
        elif status >= 500 and error is not None and code not in CATALOG:
            code = "server_error"
        if code is None or code not in CATALOG:
            raise self._unexpected(response, f"HTTP {status} without a known error code")
        error = error or {}
        details = error.get("details")
        raise AiAccountError.make(
            code, _fix_detail(code, details), http_status=status,
            details=details if isinstance(details, (list, dict)) else [],
            message=self._scrub(str(error.get("message", ""))),
            retry_after=_retry_after(response) if status == 429 else None,
            transient=CATALOG[code].transient or status >= 500,
        )

    def _unexpected(self, response: requests.Response, what: str) -> AiAccountError:
        content_type = response.headers.get("Content-Type", "no content type")
        snippet = self._scrub(response.text[:200].strip())
        return AiAccountError.make(
            "bad_response", http_status=response.status_code,
            transient=response.status_code >= 500,
            message=f"{what} ({content_type}): {snippet!r}",
        )

    def _transport_error(self, code: str, exc: requests.RequestException,
                         transient: bool | None = None) -> AiAccountError:
        kw: dict[str, Any] = {"message": self._scrub(f"{type(exc).__name__}: {exc}")}
        if transient is not None:
            kw["transient"] = transient
        return AiAccountError.make(code, **kw)

    def _scrub(self, text: str) -> str:
        """Never let the API key reach an error text, even if a server echoes it."""
        return text.replace(self._api_key, "***") if self._api_key else text


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def _fix_detail(code: str, details: Any) -> str | None:
    """The part of a fix hint that names what to fix (e.g. the missing tax code)."""
    if isinstance(details, dict) and code == "quota_exceeded":
        return f"used {details.get('used')} of {details.get('limit')} this month"
    if not isinstance(details, list) or not details or not isinstance(details[0], dict):
        return None
    if code == "missing_columns":
        return ", ".join(str(d.get("column")) for d in details if isinstance(d, dict))
    first = details[0]
    if code == "validation_failed":
        return f"row {first.get('row')}, {first.get('column')}"
    values = sorted({str(d.get("value")) for d in details if isinstance(d, dict)})
    return ", ".join(values) or None


def _parse(parser: Callable[[dict[str, Any]], T], body: dict[str, Any], what: str) -> T:
    try:
        return parser(body)
    except _PARSE_ERRORS as exc:
        raise AiAccountError.make(
            "bad_response", message=f"unexpected {what} JSON: {exc!r}") from exc


def _company(body: dict[str, Any]) -> Company:
    quota = body["quota"]
    return Company(
        name=str(body["name"]),
        home_currency=str(body["home_currency"]),
        currencies=frozenset(str(c) for c in body["currencies"]),
        tax_codes={str(t["code"]): Decimal(str(t["rate"]))
                   for t in body["tax_codes"] if t.get("enabled", True)},
        accounts={
            str(a["number"]): Account(str(a["number"]), str(a["name"]),
                                      *(bool(a["usage"].get(u)) for u in
                                        ("sales", "expense", "receipt", "payment")))
            for a in body["accounts"]
        },
        incorporation_date=date.fromisoformat(body["incorporation_date"]),
        locked_until=date.fromisoformat(body["locked_until"]) if body["locked_until"] else None,
        plan=str(body["plan"]),
        quota_used=int(quota["used"]),
        quota_limit=None if quota["limit"] is None else int(quota["limit"]),
        import_history_url=str(body["import_history_url"]),
        can_write=bool((body.get("permissions") or {}).get("write", True)),
    )


def _import_result(body: dict[str, Any], replayed: bool) -> ImportResult:
    return ImportResult(
        import_id=str(body["import_id"]),
        kind=str(body["kind"]),
        status=str(body["status"]),
        rows=int(body["rows"]),
        documents=int(body["documents"]),
        created=int(body["created"]),
        skipped_duplicates=int(body["skipped_duplicates"]),
        changed=int(body["changed"]),
        changed_documents=tuple(ChangedDocument(str(d["number"]), str(d["counterparty"]))
                                for d in body["changed_documents"]),
        new_counterparties=tuple(str(n) for n in body.get("new_counterparties", [])),
        created_at=datetime.fromisoformat(str(body["created_at"]).replace("Z", "+00:00")),
        url=str(body["url"]),
        replayed=replayed,
        error_code=body.get("error_code"),
        errors=tuple(e for e in body.get("errors", []) if isinstance(e, dict)),
    )


def _documents_page(body: dict[str, Any]) -> tuple[list[RemoteDocument], int | None]:
    documents = [
        RemoteDocument(str(d["number"]), str(d["counterparty"]), date.fromisoformat(d["date"]),
                       str(d["currency"]), Decimal(str(d["total"])), str(d["import_id"]))
        for d in body["documents"]
    ]
    next_page = body.get("next_page")
    return documents, None if next_page is None else int(next_page)
