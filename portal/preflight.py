"""Pre-flight: check built documents against the company's master data before uploading.

Pure: a ``Tally`` and a ``Company`` in, the same typed ``AiAccountError`` AiAccount itself would
answer out (so the pill reads the same whichever side caught it), nothing uploaded.
"""
from __future__ import annotations

from .aiaccount import AiAccountError, Company
from .documents import Tally

# Which account flags each use accepts (docs/aiaccount-api.md, master-data checks).
USAGE_FLAGS = {
    "sales": ("sales",),
    "receipt": ("receipt",),
    "expense": ("expense",),
    "payment": ("payment",),
    "rounding": ("sales", "expense", "receipt"),
}


def preflight(tally: Tally, company: Company, *, fresh_documents: int | None = None) -> None:
    """Raise the first master-data problem, in the order a user should fix them.

    ``fresh_documents`` is how many documents may be new to AiAccount (None: all of them);
    a re-push of documents already there does not use quota, so the caller may lower it."""
    missing_currencies = sorted(tally.currencies - company.currencies)
    if missing_currencies:
        raise AiAccountError.make("currency_not_enabled", ", ".join(missing_currencies))
    missing_codes = sorted(tally.tax_codes - set(company.tax_codes))
    if missing_codes:
        raise AiAccountError.make("tax_code_missing", ", ".join(missing_codes))
    bad_accounts = sorted(
        f"{number} ({usage})" for number, usage in tally.accounts
        if not _account_allows(company, number, usage)
    )
    if bad_accounts:
        raise AiAccountError.make("account_missing", ", ".join(bad_accounts))
    if tally.first_date is not None:
        if company.locked_until is not None and tally.first_date <= company.locked_until:
            raise AiAccountError.make("period_locked", company.locked_until.isoformat())
        if tally.first_date < company.incorporation_date:
            raise AiAccountError.make("before_incorporation", company.incorporation_date.isoformat())
    if company.quota_limit is not None:
        left = company.quota_limit - company.quota_used
        needed = tally.documents if fresh_documents is None else fresh_documents
        if needed > left:
            raise AiAccountError.make(
                "quota_exceeded", f"used {company.quota_used} of {company.quota_limit} this month",
                details={"used": company.quota_used, "limit": company.quota_limit, "needed": needed})


def _account_allows(company: Company, number: str, usage: str) -> bool:
    account = company.accounts.get(number)
    return account is not None and any(getattr(account, flag) for flag in USAGE_FLAGS[usage])
