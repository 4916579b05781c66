"""Super admin pages: the connections list, entering a key (tested live against the simulator),
disconnecting, per-blogger settings and the audit log."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from portal import audit
from portal.credentials import set_credential
from portal.extensions import db
from portal.models import AiAccountCredential, AiAccountSettings, AuditLog
from tests.plugin_simulator import HEALTHY, NO_SST, READ_ONLY

XSS = "<script>alert(1)</script>"
DEFAULT_SETTINGS = {
    "currency": "MYR", "tax_code_none": "NT", "tax_code_sst": "MY-SALES10", "sales_account": "40000",
    "rounding_account": "40000", "expense_account": "61001", "bank_account": "12000", "account_cash": "12100",
    "account_card": "12500", "account_tng": "12200", "account_grabpay": "12300", "account_duitnow": "12400",
    "walk_in_customer": "Walk-in Customer", "auto_push_enabled": "y", "auto_push_hour": "2",
}


@pytest.fixture
def app_overrides(simulator):
    return {"AIACCOUNT_BASE_URL": simulator.url}


@pytest.fixture
def admin(auth, app_ctx, factories):
    user = factories.make_admin()
    db.session.commit()
    assert auth.login(user.email).status_code == 302
    return user


@pytest.fixture
def blogger(app_ctx, factories):
    blogger = factories.make_blogger("shop@test.example")
    db.session.commit()
    return blogger


def page(blogger):
    return f"/admin/aiaccount/bloggers/{blogger.id}"


def connect(client, blogger, key=HEALTHY.key, company=HEALTHY.name):
    return client.post(f"{page(blogger)}/credential", data={"api_key": key, "company_name": company},
                       follow_redirects=True)


def save_settings(client, blogger, **changes):
    data = {**DEFAULT_SETTINGS, **changes}
    return client.post(f"{page(blogger)}/settings", data={k: v for k, v in data.items() if v is not None})


# --- access ---------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/admin/aiaccount/"),
    ("GET", "/admin/aiaccount/bloggers/{id}"),
    ("POST", "/admin/aiaccount/bloggers/{id}/credential"),
    ("GET", "/admin/aiaccount/bloggers/{id}/credential/delete"),
    ("POST", "/admin/aiaccount/bloggers/{id}/credential/delete"),
    ("POST", "/admin/aiaccount/bloggers/{id}/settings"),
    ("GET", "/admin/aiaccount/audit"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_blogger_gets_403_on_every_admin_route(client, auth, blogger, method, path):
    set_credential(blogger, HEALTHY.name, HEALTHY.key, None)
    db.session.commit()
    auth.login(blogger.user.email)
    response = client.open(path.format(id=blogger.id), method=method,
                           data={"api_key": "aia_other_key", "company_name": "Evil", **DEFAULT_SETTINGS})
    assert response.status_code == 403
    db.session.expire_all()
    assert blogger.credential.company_name == HEALTHY.name  # nothing changed


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_anonymous_is_sent_to_login(client, blogger, method, path):
    response = client.open(path.format(id=blogger.id), method=method)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_unknown_blogger_is_404(client, admin):
    assert client.get("/admin/aiaccount/bloggers/999999").status_code == 404
    assert client.post("/admin/aiaccount/bloggers/999999/settings", data=DEFAULT_SETTINGS).status_code == 404


# --- the list -------------------------------------------------------------------------------

def test_list_shows_state_searches_and_pages(client, admin, factories):
    connected = factories.make_blogger("Alice@test.example")
    set_credential(connected, "Zeta Trading Sdn Bhd", "aia_key_ending_1a2b", admin)
    for n in range(20):
        factories.make_blogger(f"user{n:02d}@test.example")
    db.session.commit()

    first = client.get("/admin/aiaccount/").get_data(as_text=True)
    assert first.count("/admin/aiaccount/bloggers/") == 20 and "21 bloggers" in first
    assert "Zeta Trading Sdn Bhd" in first and "••••1a2b" in first and admin.email in first
    assert "Not connected" in first and "Not tested" in first and "Page 1 of 2" in first
    assert client.get("/admin/aiaccount/?page=2").get_data(as_text=True).count("/admin/aiaccount/bloggers/") == 1

    for q in ("zeta trading", "ALICE@TEST", "shop of alice"):
        found = client.get("/admin/aiaccount/", query_string={"q": q}).get_data(as_text=True)
        assert "1 blogger" in found and "Zeta Trading" in found, q
    assert "No bloggers match" in client.get("/admin/aiaccount/?q=%25").get_data(as_text=True)

    assert client.get("/admin/aiaccount/?page=abc").status_code == 200
    for bad in ("-1", "0", "3", "99999", "1" * 30):
        assert client.get(f"/admin/aiaccount/?page={bad}").status_code == 404, bad


# --- the credential -------------------------------------------------------------------------

def test_healthy_key_is_encrypted_tested_and_never_shown_again(client, admin, blogger, sim):
    response = connect(client, blogger)
    html = response.get_data(as_text=True)
    assert "✓ Connected to Blogger One Trading" in html
    assert f"Key ••••1a2b for Blogger One Trading, set by {admin.email}" in html
    key_input = '<input autocomplete="off" id="api_key" name="api_key" required spellcheck="false" type="password"'
    assert f'{key_input} value="">' in html
    assert 'value="Blogger One Trading"' in html  # the company name is kept, the key never

    credential = db.session.scalar(select(AiAccountCredential))
    assert credential.ciphertext != HEALTHY.key.encode() and HEALTHY.key.encode() not in credential.ciphertext
    assert credential.last4 == "1a2b" and credential.last_test_ok is True
    assert {t["code"] for t in json.loads(credential.master_data)["tax_codes"]} == {"NT", "MY-SALES10"}

    pages = [html] + [client.get(url).get_data(as_text=True) for url in (
        "/admin/aiaccount/", page(blogger), f"{page(blogger)}/credential/delete", "/admin/aiaccount/audit")]
    assert all(HEALTHY.key not in text for text in pages)
    assert "credential_set" in pages[-1]
    assert all(HEALTHY.key not in (entry.details or "") for entry in db.session.scalars(select(AuditLog)))


def test_key_pasted_with_spaces_is_stripped_with_a_notice(client, admin, blogger, sim):
    html = connect(client, blogger, key=f"  {HEALTHY.key}\t\n").get_data(as_text=True)
    assert "Removed spaces around the key" in html and "✓ Connected" in html
    assert db.session.scalar(select(AiAccountCredential)).last_test_ok is True


@pytest.mark.parametrize(("key", "company", "error"), [
    ("   ", HEALTHY.name, "Enter the API key."),
    ("aia_demo healthy", HEALTHY.name, "spaces or line breaks inside"),
    ("k" * 201, HEALTHY.name, "longer than 200 characters"),
    (HEALTHY.key, " ", "Enter the company name."),
    (HEALTHY.key, "C" * 201, "Field cannot be longer than 200 characters."),
])
def test_bad_key_or_company_is_an_inline_error_and_the_key_is_not_echoed(client, admin, blogger, key, company,
                                                                          error):
    response = client.post(f"{page(blogger)}/credential", data={"api_key": key, "company_name": company})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and error in html
    assert 'aria-invalid="true"' in html
    if key.strip():
        assert key.strip() not in html
    assert db.session.scalar(select(AiAccountCredential)) is None


def test_wrong_key_shows_the_reason_and_the_fix(client, admin, blogger, sim):
    html = connect(client, blogger, key="aia_wrong_key_0000").get_data(as_text=True)
    assert "✗ Key saved, but the connection test failed: AiAccount rejected the API key." in html
    assert "Ask the NS16 super admin to re-enter the API key and company name" in html
    assert "✗ Failed" in html and "••••0000" in html
    assert db.session.scalar(select(AiAccountCredential)).last_test_ok is False


def test_read_only_key_is_caught_by_the_connection_test(client, admin, blogger, sim):
    # GET /company works with a read-only key but says permissions.write = false
    # (docs/aiaccount-api.md §2): the test fails red with the fix instead of the first push.
    html = connect(client, blogger, key=READ_ONLY.key, company=READ_ONLY.name).get_data(as_text=True)
    assert "The API key is read-only" in html and "create a key with write permission" in html
    credential = db.session.scalar(select(AiAccountCredential))
    assert credential.last_test_ok is False and credential.master_data  # settings can still be chosen


def test_disconnect_asks_first_then_removes_the_key(client, admin, blogger, sim):
    connect(client, blogger)
    confirm = client.get(f"{page(blogger)}/credential/delete").get_data(as_text=True)
    assert "Disconnect Shop of shop@test.example from Blogger One Trading?" in confirm
    assert f'method="post" action="{page(blogger)}/credential/delete"' in confirm

    html = client.post(f"{page(blogger)}/credential/delete", follow_redirects=True).get_data(as_text=True)
    assert "Disconnected Shop of shop@test.example from Blogger One Trading." in html and "Not connected" in html
    assert db.session.scalar(select(AiAccountCredential)) is None
    removed = db.session.scalar(select(AuditLog).where(AuditLog.action == "credential_removed"))
    assert removed.actor_label == admin.email and HEALTHY.key not in removed.details
    again = client.get(f"{page(blogger)}/credential/delete", follow_redirects=True).get_data(as_text=True)
    assert "is not connected" in again


def test_html_typed_into_fields_is_shown_escaped(client, admin, blogger, sim):
    html = connect(client, blogger, company=XSS).get_data(as_text=True)
    assert "The API key belongs to another company" in html  # the simulator knows no such company
    assert save_settings(client, blogger, walk_in_customer=XSS).status_code == 302
    urls = ("/admin/aiaccount/", page(blogger), f"{page(blogger)}/credential/delete", "/admin/aiaccount/audit")
    for text in [html] + [client.get(url).get_data(as_text=True) for url in urls]:
        assert XSS not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


# --- settings -------------------------------------------------------------------------------

def test_settings_offer_master_data_and_refuse_a_tax_code_the_company_lacks(client, admin, blogger, sim):
    connect(client, blogger, key=NO_SST.key, company=NO_SST.name)
    html = client.get(page(blogger)).get_data(as_text=True)
    assert '<select id="tax_code_sst" name="tax_code_sst"' in html
    assert "MY-SALES10 (not in AiAccount)" in html and '<option value="NT">NT (0%)</option>' in html
    sales = html.split('id="sales_account"')[1].split("</select>")[0]
    assert "40000 — Sales" in sales and "61001" not in sales and "12000" not in sales
    assert "12000 — Bank" in html.split('id="bank_account"')[1].split("</select>")[0]

    refused = save_settings(client, blogger)
    assert refused.status_code == 400
    assert "AiAccount → Settings → Tax Codes: add MY-SALES10" in refused.get_data(as_text=True)
    wrong_use = save_settings(client, blogger, tax_code_sst="NT", sales_account="12100")
    assert "AiAccount → Settings → Accounts: add 12100" in wrong_use.get_data(as_text=True)

    assert save_settings(client, blogger, tax_code_sst="NT").status_code == 302
    assert blogger.settings.tax_code_sst == "NT"


def test_settings_are_free_text_checked_for_format_when_not_connected(client, admin, blogger):
    html = client.get(page(blogger)).get_data(as_text=True)
    assert '<input id="currency" name="currency"' in html and "No AiAccount master data yet" in html
    response = save_settings(client, blogger, currency="myr", tax_code_sst="MY SALES", sales_account="4" * 21,
                             auto_push_hour="24")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Three capital letters" in html and "Letters, digits and" in html and "An account number" in html
    assert "Not a valid choice" in html
    assert db.session.scalar(select(AuditLog)) is None


def test_saving_settings_creates_the_row_and_audits_only_changed_fields(client, admin, factories):
    blogger = factories.make_blogger(settings=False)
    db.session.commit()
    response = save_settings(client, blogger, walk_in_customer="Counter sale", auto_push_hour="5",
                             auto_push_enabled=None)
    assert response.status_code == 302
    settings = db.session.scalar(select(AiAccountSettings))
    assert settings.walk_in_customer == "Counter sale" and settings.auto_push_hour == 5
    assert settings.auto_push_enabled is False
    entry = db.session.scalar(select(AuditLog))
    assert (entry.entity_type, entry.action, entry.blogger_id, entry.actor_id) == (
        "aiaccount_settings", "settings_changed", blogger.id, admin.id)
    assert json.loads(entry.details) == {"walk_in_customer": ["Walk-in Customer", "Counter sale"],
                                         "auto_push_hour": [2, 5], "auto_push_enabled": [True, False]}
    html = client.get(page(blogger)).get_data(as_text=True)
    assert 'value="Counter sale"' in html and '<option selected value="5">05:00</option>' in html

    again = save_settings(client, blogger, walk_in_customer="Counter sale", auto_push_hour="5",
                          auto_push_enabled=None)
    assert again.status_code == 302 and "Nothing changed" in client.get(page(blogger)).get_data(as_text=True)
    assert len(db.session.scalars(select(AuditLog)).all()) == 1


# --- the audit log --------------------------------------------------------------------------

def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_audit_log_filters_by_blogger_type_and_myt_dates(client, admin, factories):
    one, two = factories.make_blogger("one@test.example"), factories.make_blogger("two@test.example")
    for blogger, entity_type, action, when in [
        (one, "aiaccount_push", "push_failed", "2026-05-14 15:59"),  # 05-14 23:59 MYT
        (one, "aiaccount_settings", "settings_changed", "2026-05-14 16:00"),  # 05-15 00:00 MYT
        (two, "aiaccount_push", "push_succeeded", "2026-05-15 15:59"),  # 05-15 23:59 MYT
    ]:
        entry = audit.record(entity_type, action, blogger_id=blogger.id, actor=admin, details={"note": XSS})
        entry.created_at = _at(when)
    db.session.commit()
    audit_url = "/admin/aiaccount/audit"

    everything = client.get(audit_url).get_data(as_text=True)
    assert "3 entries" in everything and "2026-05-15 23:59 MYT" in everything
    order = [everything.index(action) for action in ("push_succeeded", "settings_changed", "push_failed")]
    assert order == sorted(order)  # newest first
    assert '&#34;note&#34;: &#34;&lt;script&gt;' in everything and XSS not in everything

    def actions(**query):
        html = client.get(audit_url, query_string=query).get_data(as_text=True)
        return {a for a in ("push_failed", "settings_changed", "push_succeeded") if a in html}

    assert actions(blogger=one.id) == {"push_failed", "settings_changed"}
    assert actions(entity_type="aiaccount_push") == {"push_failed", "push_succeeded"}
    assert actions(date_from="2026-05-15", date_to="2026-05-15") == {"settings_changed", "push_succeeded"}
    assert actions(date_to="2026-05-14") == {"push_failed"}
    assert actions(blogger=two.id, date_from="2026-05-15") == {"push_succeeded"}

    for bad, message in [({"date_from": "2026-13-45"}, "Not a valid date value"),
                         ({"date_from": "2026-05-15", "date_to": "2026-05-14"}, "end date is before"),
                         ({"blogger": "abc"}, "Not a valid choice"), ({"entity_type": XSS}, "Not a valid choice")]:
        response = client.get(audit_url, query_string=bad)
        html = response.get_data(as_text=True)
        assert response.status_code == 400 and message in html and "Fix the filters" in html, bad
    assert client.get(f"{audit_url}?page=abc").status_code == 200
    assert client.get(f"{audit_url}?page=-1").status_code == 404

    # Codes are named for people (an unknown code shows as itself); the code stays visible.
    assert "Settings changed<br><code" in everything
    assert '<code class="small muted">settings_changed</code>' in everything
    assert ">AiAccount settings" in everything
    assert 'value="aiaccount_settings">AiAccount settings</option>' in everything
    assert "push_failed<br><code" in everything  # not a code of ours: as it is
    from flask_babel import refresh

    client.post("/language/zh", data={"next": audit_url})
    refresh()  # this test's app context outlives requests, and with it Babel's cached locale
    assert "设置已更改<br><code" in client.get(audit_url).get_data(as_text=True)
    refresh()
