"""A company's AiAccount master data, as seeded and stored (docs/aiaccount-api.md §2, §8)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

MYT = timezone(timedelta(hours=8), "MYT")
USAGES = ("sales", "expense", "receipt", "payment")
PLANS = ("trial", "standard")


def myt_today() -> date:
    return datetime.now(MYT).date()


def quota_period(day: date) -> str:
    return day.strftime("%Y-%m")


def normalize_name(name: str) -> str:
    """How AiAccount compares company and counterparty names: trimmed, case-insensitive."""
    return name.strip().casefold()


def hash_key(api_key: str) -> str:
    """Keys are stored and looked up by their SHA-256, never in clear."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    number: str
    name: str
    usage: frozenset[str]


@dataclass(frozen=True)
class TaxCode:
    code: str
    rate: str
    enabled: bool = True


@dataclass(frozen=True)
class Company:
    name: str
    can_write: bool = True
    home_currency: str = "MYR"
    currencies: tuple[str, ...] = ("MYR",)
    tax_codes: tuple[TaxCode, ...] = ()
    accounts: tuple[Account, ...] = ()
    incorporation_date: date = date(2020, 1, 1)
    locked_until: date | None = None
    plan: str = "standard"
    quota_limit: int | None = None
    quota_used: int = 0  # already used in the month the seed was applied
    id: int | None = field(default=None, compare=False)

    @property
    def enabled_tax_codes(self) -> frozenset[str]:
        return frozenset(t.code for t in self.tax_codes if t.enabled)

    def account_usage(self, number: str) -> frozenset[str] | None:
        for account in self.accounts:
            if account.number == number:
                return account.usage
        return None

    def to_json(self) -> dict[str, Any]:
        """The seed shape without the key; how the store keeps a company's master data."""
        return {
            "name": self.name,
            "can_write": self.can_write,
            "home_currency": self.home_currency,
            "currencies": list(self.currencies),
            "tax_codes": [
                {"code": t.code, "rate": t.rate, "enabled": t.enabled} for t in self.tax_codes
            ],
            "accounts": [
                {"number": a.number, "name": a.name, "usage": {u: u in a.usage for u in USAGES}}
                for a in self.accounts
            ],
            "incorporation_date": self.incorporation_date.isoformat(),
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "plan": self.plan,
            "quota_limit": self.quota_limit,
            "quota_used": self.quota_used,
        }


class SeedError(ValueError):
    """A company description that does not follow the seed shape."""


def company_from_seed(data: Any, defaults: Company) -> tuple[Company, str]:
    """One seed-file company (docs §8) as (Company, api_key); missing fields from ``defaults``."""
    if not isinstance(data, dict):
        raise SeedError("a company must be a JSON object")
    api_key = data.get("api_key")
    if not isinstance(api_key, str) or not api_key or any(c.isspace() for c in api_key):
        raise SeedError("api_key is required and must not contain whitespace")
    base = defaults.to_json()
    return parse_company({**base, **{k: v for k, v in data.items() if k in base}}), api_key


def parse_company(data: dict[str, Any]) -> Company:
    """The inverse of Company.to_json."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SeedError("name is required")
    try:
        company = Company(
            name=name.strip(),
            can_write=bool(data["can_write"]),
            home_currency=str(data["home_currency"]),
            currencies=tuple(str(c) for c in data["currencies"]),
            tax_codes=tuple(
                TaxCode(str(t["code"]), str(Decimal(str(t["rate"]))), bool(t.get("enabled", True)))
                for t in data["tax_codes"]
            ),
            accounts=tuple(
                Account(str(a["number"]), str(a["name"]),
                        frozenset(u for u in USAGES if a.get("usage", {}).get(u)))
                for a in data["accounts"]
            ),
            incorporation_date=date.fromisoformat(data["incorporation_date"]),
            locked_until=(
                date.fromisoformat(data["locked_until"]) if data["locked_until"] else None
            ),
            plan=str(data["plan"]),
            quota_limit=None if data["quota_limit"] is None else int(data["quota_limit"]),
            quota_used=int(data["quota_used"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        raise SeedError(f"invalid company {name!r}: {exc!r}") from exc
    if company.plan not in PLANS:
        raise SeedError(f"plan must be one of {PLANS}")
    if company.home_currency not in company.currencies:
        raise SeedError("home_currency must be one of currencies")
    return company
