"""Failure alerts: what a blogger must see until it is resolved, and the daily email digest.

An alert is computed, never stored: it disappears once its cause is gone.
- ``autopush_failed``: the newest auto-push run of a type failed and no later run of that type
  succeeded over its dates.
- ``out_of_sync``: days of the last ``AUTOPUSH_MAX_DAYS`` (ending yesterday, MYT) that were pushed
  but no longer reconcile (arrived after the push, changed since pushed, not in AiAccount).

Texts are stored in English and Chinese side by side (like the AiAccount error catalog), because
the digest is written outside any request, in the recipient's own language (``users.locale``).
``send_daily_digest`` sends at most one email per blogger per MYT day, over SMTP (MAIL_SERVER,
MAIL_PORT, MAIL_FROM; optional MAIL_USERNAME, MAIL_PASSWORD, MAIL_USE_TLS), and records each one
in the audit log (``entity_type = aiaccount_alert``); without MAIL_SERVER it sends nothing.
"""
from __future__ import annotations

import json
import logging
import smtplib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from sqlalchemy import select

from . import audit
from .aiaccount import CATALOG, AiAccountError
from .autopush import ORDER
from .extensions import db
from .i18n import pick
from .models import AiAccountCredential, AuditLog, Blogger, SyncRun, User
from .timeutil import myt_at, myt_today, utcnow

log = logging.getLogger(__name__)
AUDIT_ENTITY = "aiaccount_alert"
RECONCILE_PATH = "/finance/aiaccount-sync/reconcile/"
OUT_OF_SYNC = ("arrived_after", "changed", "not_in_aiaccount")
MAX_DAYS_LISTED = 5

TYPE_NAMES = {  # (en, zh)
    "pos_invoice": ("POS Sales Invoice", "POS 销售发票"),
    "pos_receipt": ("POS Sales Receipt", "POS 销售收据"),
    "kol_bill": ("KOL Bill", "KOL 账单"),
    "kol_payment": ("KOL Payment", "KOL 付款"),
}
TEXTS = {  # (en, zh)
    "autopush_failed": ("Auto-push of {type} for {dates} failed: {reason}",
                        "{type} 自动推送（{dates}）失败：{reason}"),
    "out_of_sync": ("{type}: {count} past day(s) no longer match AiAccount ({days})",
                    "{type}：{count} 个过去的日期与 AiAccount 不再一致（{days}）"),
    "out_of_sync_fix": ("Open Finance & Reports → AiAccount Sync → Reconcile and click “Push what's missing”; "
                        "a document changed after it was pushed must be corrected in AiAccount.",
                        "打开 财务与报表 → AiAccount 同步 → 对账，点击“推送缺失项”；推送后又修改过的单据需在 AiAccount 中更正。"),
    "autopush_fix_then": (" Then click Sync on the card, or “Push what's missing” on the Reconcile page.",
                          " 然后在该卡片上点击“同步”，或在对账页点击“推送缺失项”。"),
    "subject": ("AiAccount Sync: {count} problem(s) need your attention",
                "AiAccount 同步：{count} 个问题需要处理"),
    "greeting": ("Hello {name},", "{name}，您好："),
    "intro": ("These AiAccount Sync problems are still open today ({today}, MYT):",
              "以下 AiAccount 同步问题截至今天（{today}，马来西亚时间）仍未解决："),
    "fix": ("How to fix: {fix}", "解决方法：{fix}"),
    "link": ("Reconcile page: {url}", "对账页面：{url}"),
    "footer": ("You receive at most one such email a day while a problem is open.",
               "问题未解决期间，您每天最多收到一封此类邮件。"),
}


def _text(key: str, locale: str, **values: object) -> str:
    en, zh = TEXTS[key]
    return (zh if locale.startswith("zh") else en).format(**values)


def _type_name(sync_type: str, locale: str) -> str:
    en, zh = TYPE_NAMES[sync_type]
    return zh if locale.startswith("zh") else en


@dataclass(frozen=True)
class Alert:
    kind: str  # autopush_failed | out_of_sync
    sync_type: str
    start: date
    end: date
    title_en: str
    title_zh: str
    fix_en: str
    fix_zh: str
    run_id: int | None = None
    days: tuple[date, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        return pick(self.title_en, self.title_zh)

    @property
    def fix(self) -> str:
        return pick(self.fix_en, self.fix_zh)

    def title_in(self, locale: str) -> str:
        return self.title_zh if locale.startswith("zh") else self.title_en

    def fix_in(self, locale: str) -> str:
        return self.fix_zh if locale.startswith("zh") else self.fix_en


def _dates(start: date, end: date) -> str:
    return start.isoformat() if start == end else f"{start.isoformat()} → {end.isoformat()}"


def _failed_autopush(blogger_id: int) -> list[Alert]:
    alerts = []
    for sync_type in ORDER:
        run = db.session.scalar(select(SyncRun).where(
            SyncRun.blogger_id == blogger_id, SyncRun.sync_type == sync_type, SyncRun.trigger == "auto_push",
            SyncRun.status.in_(("succeeded", "no_data", "failed")))
            .order_by(SyncRun.created_at.desc(), SyncRun.id.desc()).limit(1))
        if run is None or run.status != "failed":
            continue
        superseded = db.session.scalar(select(SyncRun.id).where(
            SyncRun.blogger_id == blogger_id, SyncRun.sync_type == sync_type, SyncRun.id > run.id,
            SyncRun.status.in_(("succeeded", "no_data")),
            SyncRun.start_date <= run.start_date, SyncRun.end_date >= run.end_date).limit(1))
        if superseded is not None:
            continue
        error = stored_error(run)
        reason_en = error.reason_en if error else (run.error_message or "the sync failed")
        reason_zh = error.reason_zh if error else (run.error_message or "同步失败")
        fix_en = error.fix_en if error else (run.error_hint or "")
        fix_zh = error.fix_zh if error else fix_en
        dates = _dates(run.start_date, run.end_date)
        alerts.append(Alert(
            "autopush_failed", sync_type, run.start_date, run.end_date,
            _text("autopush_failed", "en", type=_type_name(sync_type, "en"), dates=dates, reason=reason_en),
            _text("autopush_failed", "zh", type=_type_name(sync_type, "zh"), dates=dates, reason=reason_zh),
            fix_en + _text("autopush_fix_then", "en"), fix_zh + _text("autopush_fix_then", "zh"), run_id=run.id))
    return alerts


def stored_error(run: SyncRun) -> AiAccountError | None:
    """The typed error the job stored on the run (reason and fix in both languages)."""
    try:
        detail = json.loads(run.error_detail) if run.error_detail else {}
    except ValueError:
        detail = {}
    if isinstance(detail, dict) and detail.get("code") in CATALOG:
        return AiAccountError.from_dict(detail)
    return AiAccountError.make(run.error_code) if run.error_code in CATALOG else None


def _out_of_sync(blogger_id: int, today: date) -> list[Alert]:
    from .reconcile import reconcile_all

    days = current_app.config.get("AUTOPUSH_MAX_DAYS", 31)
    end = today - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    results = reconcile_all(blogger_id, start, end)  # every currency of the blogger's book
    alerts = []
    for sync_type in ORDER:
        bad = sorted({d.day for result in results for d in result.types[sync_type].days if d.status in OUT_OF_SYNC})
        if not bad:
            continue
        listed = ", ".join(d.isoformat() for d in bad[:MAX_DAYS_LISTED]) + (" …" if len(bad) > MAX_DAYS_LISTED else "")
        alerts.append(Alert(
            "out_of_sync", sync_type, bad[0], bad[-1],
            _text("out_of_sync", "en", type=_type_name(sync_type, "en"), count=len(bad), days=listed),
            _text("out_of_sync", "zh", type=_type_name(sync_type, "zh"), count=len(bad), days=listed),
            _text("out_of_sync_fix", "en"), _text("out_of_sync_fix", "zh"), days=tuple(bad)))
    return alerts


def open_alerts(blogger: Blogger | None, today: date | None = None) -> list[Alert]:
    """What the banner shows: failed auto-pushes not yet superseded, then days that stopped
    reconciling. Computed on every call (a few aggregate queries), never stored."""
    if blogger is None or blogger.credential is None:
        return []
    return _failed_autopush(blogger.id) + _out_of_sync(blogger.id, today or myt_today())


# --- the daily digest -------------------------------------------------------------------------


def _sent_today(blogger_id: int, today: date) -> bool:
    return db.session.scalar(select(AuditLog.id).where(
        AuditLog.entity_type == AUDIT_ENTITY, AuditLog.action == "digest_sent", AuditLog.blogger_id == blogger_id,
        AuditLog.created_at >= myt_at(today), AuditLog.created_at < myt_at(today + timedelta(days=1))).limit(1)) is not None


def compose_digest(user: User, alerts: list[Alert], today: date) -> EmailMessage:
    cfg = current_app.config
    locale = user.locale or "en"
    url = (cfg.get("PORTAL_URL") or "").rstrip("/") + RECONCILE_PATH
    lines = [_text("greeting", locale, name=user.name), "", _text("intro", locale, today=today.isoformat()), ""]
    for n, alert in enumerate(alerts, start=1):
        lines += [f"{n}. {alert.title_in(locale)}", "   " + _text("fix", locale, fix=alert.fix_in(locale)), ""]
    lines += [_text("link", locale, url=url), "", "—", _text("footer", locale)]
    message = EmailMessage()
    message["Subject"] = _text("subject", locale, count=len(alerts))
    message["From"] = cfg["MAIL_FROM"]
    message["To"] = user.email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=cfg["MAIL_FROM"].rpartition("@")[2] or None)
    message["Content-Language"] = "zh-Hans" if locale.startswith("zh") else "en"
    message.set_content("\n".join(lines))
    return message


def _send(message: EmailMessage) -> None:
    cfg = current_app.config
    with smtplib.SMTP(cfg["MAIL_SERVER"], cfg.get("MAIL_PORT") or 25, timeout=30) as smtp:
        if cfg.get("MAIL_USE_TLS"):
            smtp.starttls()
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg.get("MAIL_PASSWORD", ""))
        smtp.send_message(message)


def send_daily_digest(now: datetime | None = None) -> int:
    """Email every connected, active blogger with open alerts, once per MYT day; returns how many
    emails were sent. Safe to call every hour: a blogger already emailed today is skipped. A
    blogger whose send fails is retried on the next call (nothing is recorded for them)."""
    if not current_app.config.get("MAIL_SERVER"):
        log.info("alert digest: MAIL_SERVER is not set; no email sent")
        return 0
    now = now or utcnow()
    today = myt_today(now)
    bloggers = db.session.scalars(
        select(Blogger).join(User, User.id == Blogger.user_id)
        .join(AiAccountCredential, AiAccountCredential.blogger_id == Blogger.id)
        .where(Blogger.active.is_(True), User.active.is_(True)).order_by(Blogger.id)).all()
    sent = 0
    for blogger in bloggers:
        if _sent_today(blogger.id, today):
            continue
        alerts = open_alerts(blogger, today)
        if not alerts:
            continue
        message = compose_digest(blogger.user, alerts, today)
        try:
            _send(message)
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("alert digest to blogger %s not sent: %s", blogger.id, exc)
            db.session.rollback()
            continue
        audit.record(AUDIT_ENTITY, "digest_sent", entity_id=blogger.id, blogger_id=blogger.id, actor_label="digest",
                     details={"day": today, "to": blogger.user.email, "locale": blogger.user.locale,
                              "alerts": [{"kind": a.kind, "type": a.sync_type, "start": a.start, "end": a.end}
                                         for a in alerts]})
        db.session.commit()
        sent += 1
    return sent
