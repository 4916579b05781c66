"""Failure alerts: the banner until resolved, and one email digest per day over real SMTP.

A real SMTP server (aiosmtpd) listens on loopback; the digest goes through smtplib to it and the
test reads the message it received.
"""
from __future__ import annotations

import email
import email.policy
from datetime import date, datetime, timedelta, timezone

import pytest
from aiosmtpd.controller import Controller
from rq import SimpleWorker
from sqlalchemy import select

from portal.alerts import open_alerts, send_daily_digest
from portal.autopush import run_chain
from portal.credentials import set_credential
from portal.extensions import db
from portal.jobs import execute_run
from portal.models import AuditLog
from portal.queue import get_queue
from portal.syncs import request_sync
from portal.timeutil import myt_at, myt_today
from tests.plugin_simulator import HEALTHY, NO_SST, free_port

MYT = timezone(timedelta(hours=8))
TODAY = myt_today()
YESTERDAY = TODAY - timedelta(days=1)
URL = "/finance/aiaccount-sync/reconcile/"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted"


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def inbox(smtp):
    smtp.handler.messages.clear()
    smtp.handler.recipients.clear()
    return smtp.handler


@pytest.fixture
def app_overrides(simulator, smtp):
    return {"AIACCOUNT_BASE_URL": simulator.url, "AIACCOUNT_TIMEOUT": 3, "AIACCOUNT_MAX_RETRIES": 1,
            "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp.port, "MAIL_FROM": "alerts@ns16.test",
            "PORTAL_URL": "https://portal.ns16.test"}


def myt(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=MYT).astimezone(timezone.utc)


def connected_blogger(factories, company=HEALTHY, locale="en", **kw):
    blogger = factories.make_blogger(**kw)
    blogger.user.locale = locale
    set_credential(blogger, company.name, company.key, actor=None)
    db.session.commit()
    return blogger


def failed_autopush(factories, locale="en"):
    """Yesterday's auto-push stopped at POS Sales Invoice: the company has no MY-SALES10."""
    blogger = connected_blogger(factories, NO_SST, locale=locale, sst_rate="10")
    factories.make_sale(blogger, myt(YESTERDAY, 12))
    db.session.commit()
    assert run_chain(blogger.id, YESTERDAY, YESTERDAY, execute=execute_run) == "failed"
    return blogger


def test_failed_autopush_is_an_alert_until_a_later_sync_succeeds(app_ctx, factories, sim, redis_conn):
    blogger = failed_autopush(factories)
    alerts = open_alerts(blogger)
    assert [(a.kind, a.sync_type) for a in alerts] == [("autopush_failed", "pos_invoice")]
    assert "Tax code missing" in alerts[0].title_en and "MY-SALES10" in alerts[0].fix_en
    assert "税码" in alerts[0].fix_zh

    set_credential(blogger, HEALTHY.name, HEALTHY.key, actor=None)  # the super admin fixes the company
    db.session.commit()
    run, _created = request_sync(blogger, "pos_invoice", YESTERDAY, YESTERDAY)
    SimpleWorker([get_queue()], connection=redis_conn).work(burst=True)
    assert open_alerts(blogger) == []


def test_a_past_day_that_stops_reconciling_is_an_alert(app_ctx, factories, sim, redis_conn, client, auth):
    blogger = connected_blogger(factories)
    factories.make_sale(blogger, myt(YESTERDAY, 10))
    db.session.commit()
    for sync_type in ("pos_invoice", "pos_receipt"):
        request_sync(blogger, sync_type, YESTERDAY, YESTERDAY)
        SimpleWorker([get_queue()], connection=redis_conn).work(burst=True)
    assert open_alerts(blogger) == []
    factories.make_sale(blogger, myt(YESTERDAY, 21))  # a sale recorded after the push
    db.session.commit()
    alerts = open_alerts(blogger)
    assert [(a.kind, a.sync_type, a.days) for a in alerts] == [
        ("out_of_sync", "pos_invoice", (YESTERDAY,)), ("out_of_sync", "pos_receipt", (YESTERDAY,))]

    auth.login(blogger.user.email)
    html = client.get(URL).get_data(as_text=True)
    assert 'class="alert-banner"' in html and "2 AiAccount Sync problems need your attention" in html
    assert f"POS Sales Invoice: 1 past day(s) no longer match AiAccount ({YESTERDAY.isoformat()})" in html


def test_digest_is_sent_once_a_day_in_the_bloggers_language(app_ctx, factories, sim, redis_conn, inbox):
    blogger = failed_autopush(factories, locale="zh")
    healthy = connected_blogger(factories)  # no open alert: no email
    assert healthy.id != blogger.id
    now = myt_at(TODAY, 8)
    assert send_daily_digest(now) == 1
    assert send_daily_digest(now + timedelta(hours=3)) == 0  # the hourly tick again: already sent today
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert inbox.recipients[0] == [blogger.user.email]
    assert message["Subject"] == "AiAccount 同步：1 个问题需要处理"
    body = message.get_content()
    assert "AiAccount 中缺少或未启用税码" in body
    assert "解决方法：AiAccount → 设置 → 税码：添加 MY-SALES10" in body
    assert "https://portal.ns16.test/finance/aiaccount-sync/reconcile/" in body
    sent = db.session.scalars(select(AuditLog).where(AuditLog.entity_type == "aiaccount_alert")).all()
    assert [(e.action, e.blogger_id) for e in sent] == [("digest_sent", blogger.id)]

    assert send_daily_digest(now + timedelta(days=1)) == 1  # still open the next day: one more
    assert len(inbox.messages) == 2


def test_digest_in_english_names_the_fix(app_ctx, factories, sim, redis_conn, inbox):
    blogger = failed_autopush(factories, locale="en")
    assert send_daily_digest(myt_at(TODAY, 9)) == 1
    message = inbox.messages[0]
    assert message["Subject"] == "AiAccount Sync: 1 problem(s) need your attention"
    body = message.get_content()
    assert "Auto-push of POS Sales Invoice for" in body and "How to fix: AiAccount → Settings → Tax Codes: add MY-SALES10" in body
    assert message["To"] == blogger.user.email


@pytest.mark.parametrize("app_overrides", [{"MAIL_SERVER": ""}])
def test_without_mail_server_nothing_is_sent(app_ctx, factories, redis_conn, inbox, app_overrides):
    blogger = factories.make_blogger()
    set_credential(blogger, HEALTHY.name, HEALTHY.key, actor=None)
    db.session.commit()
    assert send_daily_digest() == 0
    assert inbox.messages == []
