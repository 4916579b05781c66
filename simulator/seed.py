"""The built-in demo companies and the --seed file (docs/aiaccount-api.md §8)."""
from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from pathlib import Path

from simulator.company import Account, Company, SeedError, TaxCode, company_from_seed

HEALTHY = Company(
    name="Blogger One Trading",
    home_currency="MYR",
    currencies=("MYR", "SGD"),
    tax_codes=(TaxCode("NT", "0"), TaxCode("MY-SALES10", "10")),
    accounts=(
        Account("40000", "Sales", frozenset({"sales"})),
        Account("12000", "Bank", frozenset({"receipt", "payment"})),
        Account("61001", "KOL Commission Expense", frozenset({"expense"})),
        Account("12100", "Cash in Hand", frozenset({"receipt"})),
        Account("12200", "Touch 'n Go eWallet", frozenset({"receipt"})),
        Account("12300", "GrabPay Wallet", frozenset({"receipt"})),
        Account("12400", "DuitNow", frozenset({"receipt"})),
        Account("12500", "Card Clearing", frozenset({"receipt"})),
    ),
    incorporation_date=date(2020, 1, 1),
    plan="standard",
)


def demo_companies(today: date) -> list[tuple[Company, str]]:
    """(company, api_key) for every built-in company; relative dates from ``today`` (MYT)."""
    first_of_month = today.replace(day=1)
    end_of_month_before_last = (first_of_month - timedelta(days=1)).replace(day=1) - timedelta(
        days=1
    )
    replace = dataclasses.replace
    return [
        (HEALTHY, "aia_demo_healthy_5f3c9e1a2b"),
        (
            replace(
                HEALTHY,
                name="Blogger Two Enterprise",
                tax_codes=tuple(t for t in HEALTHY.tax_codes if t.code != "MY-SALES10"),
            ),
            "aia_demo_nosst_7d41c0aa3e",
        ),
        (replace(HEALTHY, name="Ringgit Only Sdn Bhd", currencies=("MYR",)),
         "aia_demo_nosgd_2c8e61b09f"),
        (replace(HEALTHY, name="Locked Books Sdn Bhd", locked_until=end_of_month_before_last),
         "aia_demo_locked_9a0b7c3d5e"),
        (replace(HEALTHY, name="Trial Shop", plan="trial", quota_limit=100, quota_used=95),
         "aia_demo_trial_4e5f6a7b8c"),
        (replace(HEALTHY, name="Read Only Co", can_write=False), "aia_demo_readonly_0d1e2f3a4b"),
        (replace(HEALTHY, name="Before Incorporation Bhd", incorporation_date=first_of_month),
         "aia_demo_newco_6b7c8d9e0f"),
    ]


def load_seed_file(path: Path) -> list[tuple[Company, str]]:
    """Companies of a seed file: ``{"companies": [company, ...]}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read seed file {path}: {exc}") from exc
    companies = data.get("companies") if isinstance(data, dict) else None
    if not isinstance(companies, list):
        raise SeedError('a seed file is {"companies": [...]}')
    return [company_from_seed(item, HEALTHY) for item in companies]
