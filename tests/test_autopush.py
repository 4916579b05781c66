"""Auto-push: who is due, the four steps in order, stopping at a master-data failure."""
from __future__ import annotations

from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from portal.autopush import ORDER, due_bloggers, enqueue_due
from portal.credentials import set_credential
from portal.extensions import db
from portal.models import AuditLog, SyncRun
from portal.queue import get_queue
from portal.timeutil import myt_at, myt_today
from tests.plugin_simulator import HEALTHY, NO_SST


@pytest.fixture
def app_overrides(simulator):
    return {"AIACCOUNT_BASE_URL": simulator.url, "AIACCOUNT_MAX_RETRIES": 1}


def connected(factories, company=HEALTHY, **kw):
    blogger = factories.make_blogger(**kw)
    set_credential(blogger, company.name, company.key, actor=None)
    db.session.commit()
    return blogger


def test_due_at_the_chosen_hour_once_a_day(app_ctx, factories):
    blogger = connected(factories)
    blogger.settings.auto_push_hour = 2
    db.session.commit()
    today = myt_today()
    assert due_bloggers(myt_at(today, 1, 59)) == []
    due = due_bloggers(myt_at(today, 2, 0))
    assert [(d.blogger_id, d.start, d.end) for d in due] == [(blogger.id, today - timedelta(days=1),
                                                             today - timedelta(days=1))]
    db.session.commit()
    assert due_bloggers(myt_at(today, 3, 0)) == []  # tried today already


def test_catch_up_is_bounded_and_off_or_unconnected_bloggers_are_skipped(app_ctx, factories):
    blogger = connected(factories)
    today = myt_today()
    blogger.settings.last_auto_push_date = today - timedelta(days=100)
    off = connected(factories)
    off.settings.auto_push_enabled = False
    factories.make_blogger()  # no credential
    db.session.commit()
    [due] = due_bloggers(myt_at(today, 5))
    assert due.blogger_id == blogger.id
    assert (due.end - due.start).days + 1 == 31


def test_chain_runs_four_types_in_order_through_the_queue(app_ctx, factories, sim, redis_conn):
    blogger = connected(factories)
    yesterday = myt_today() - timedelta(days=1)
    factories.make_sale(blogger, myt_at(yesterday, 10))
    kol = factories.make_kol(blogger)
    factories.make_settlement(kol, "2026-01", "1000.00", yesterday, paid_at=myt_at(yesterday, 15))
    db.session.commit()
    assert len(enqueue_due(myt_at(myt_today(), 3))) == 1
    SimpleWorker([get_queue()], connection=redis_conn).work(burst=True)
    runs = db.session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
    assert [r.sync_type for r in runs] == list(ORDER)
    assert all(r.status == "succeeded" and r.trigger == "auto_push" for r in runs)
    assert db.session.get(type(blogger.settings), blogger.settings.id).last_auto_push_date == yesterday
    kinds = {d["kind"] for d in sim.documents(HEALTHY)}
    assert kinds == {"sales-invoice", "sales-receipt", "expense-bill", "expense-payment"}


def test_master_data_failure_stops_the_chain_red_and_audited(app_ctx, factories, sim, redis_conn):
    blogger = connected(factories, NO_SST, sst_rate="10")
    yesterday = myt_today() - timedelta(days=1)
    factories.make_sale(blogger, myt_at(yesterday, 10))
    db.session.commit()
    enqueue_due(myt_at(myt_today(), 3))
    SimpleWorker([get_queue()], connection=redis_conn).work(burst=True)
    runs = db.session.scalars(select(SyncRun)).all()
    assert [(r.sync_type, r.status, r.error_code) for r in runs] == [("pos_invoice", "failed", "tax_code_missing")]
    assert blogger.settings.last_auto_push_date is None
    audit = db.session.scalar(select(AuditLog).where(AuditLog.entity_type == "aiaccount_push"))
    assert audit.action == "sync_failed" and audit.actor_label == "auto-push"


def test_no_data_days_are_not_alerts(app_ctx, factories, sim, redis_conn):
    blogger = connected(factories)
    enqueue_due(myt_at(myt_today(), 3))
    SimpleWorker([get_queue()], connection=redis_conn).work(burst=True)
    runs = db.session.scalars(select(SyncRun)).all()
    assert [r.status for r in runs] == ["no_data"] * 4
    assert blogger.settings.last_auto_push_date == myt_today() - timedelta(days=1)
