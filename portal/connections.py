"""Building the AiAccount client from settings, testing a connection, keeping the master-data snapshot.

Takes a plaintext key from its caller (the admin's POST or the worker) and never stores it.
"""
from __future__ import annotations

import json

from flask import current_app

from .aiaccount import AiAccountClient, AiAccountError, Company
from .i18n import pick
from .models import AiAccountCredential
from .timeutil import utcnow


def build_client(api_key: str, company_name: str) -> AiAccountClient:
    cfg = current_app.config
    return AiAccountClient(
        cfg["AIACCOUNT_BASE_URL"],
        api_key,
        company_name,
        timeout=(cfg["AIACCOUNT_CONNECT_TIMEOUT"], cfg["AIACCOUNT_TIMEOUT"]),
        max_retries=cfg["AIACCOUNT_MAX_RETRIES"],
    )


def remember_master_data(credential: AiAccountCredential, company: Company) -> None:
    credential.master_data = json.dumps(company.to_dict())
    credential.master_data_at = utcnow()


def master_data(credential: AiAccountCredential | None) -> Company | None:
    """The last fetched master data of a blogger's company, if any."""
    if credential is None or not credential.master_data:
        return None
    try:
        return Company.from_dict(json.loads(credential.master_data))
    except (AiAccountError, ValueError):
        return None


def check_connection(credential: AiAccountCredential, api_key: str) -> AiAccountError | None:
    """GET company with the key; record the outcome (and the master data) on the credential.
    Returns the error, or None when the connection works. The caller commits."""
    client = build_client(api_key, credential.company_name)
    try:
        company = client.get_company()
    except AiAccountError as error:
        credential.last_test_ok = False
        credential.last_test_message = f"{error.reason_en} — {error.fix_en}"[:500]
        return error
    finally:
        credential.last_test_at = utcnow()
        client.close()
    remember_master_data(credential, company)
    if not company.can_write:  # it reads, but every push would answer write_permission_denied
        error = AiAccountError.make("write_permission_denied")
        credential.last_test_ok = False
        credential.last_test_message = f"{error.reason_en} — {error.fix_en}"[:500]
        return error
    credential.last_test_ok = True
    credential.last_test_message = f"Connected to {company.name} ({company.home_currency}, plan {company.plan})"
    return None


def error_texts(error: AiAccountError) -> tuple[str, str]:
    """(reason, fix) in the current language."""
    return pick(error.reason_en, error.reason_zh), pick(error.fix_en, error.fix_zh)
