"""Super admin: bloggers' AiAccount credentials, settings and the audit log.

The admin's credential POST is the only place the web process holds a plaintext API key: it is
encrypted, tested once against AiAccount and dropped; the page never shows it again.
"""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import contains_eager
from wtforms import SelectChoice

from . import audit, connections, credentials
from .auth import admin_required, get_blogger_or_404
from .extensions import db
from .forms import (
    SETTINGS_FIELDS,
    AuditFilterForm,
    CompanySettingsForm,
    ConfirmForm,
    CredentialForm,
    SearchForm,
    SettingsForm,
)
from .models import AiAccountCredential, AiAccountSettings, AuditLog, Blogger, User
from .pagination import page_number
from .timeutil import myt_range_to_utc

bp = Blueprint("admin", __name__, url_prefix="/admin/aiaccount")

BLOGGERS_PER_PAGE = 20
AUDIT_PER_PAGE = 50
AUDIT_FILTERS = ("blogger", "entity_type", "date_from", "date_to")


# What the audit log's codes mean, for the page (the codes stay in the database and on the page).
AUDIT_TYPE_LABELS = {
    "aiaccount_credential": _l("AiAccount key"),
    "aiaccount_settings": _l("AiAccount settings"),
    "aiaccount_push": _l("Sync run"),
    "aiaccount_reconcile": _l("Reconciliation"),
    "aiaccount_alert": _l("Alert email"),
    "user": _l("User"),
}
AUDIT_ACTION_LABELS = {
    "credential_set": _l("Key entered"),
    "credential_replaced": _l("Key replaced"),
    "credential_removed": _l("Disconnected"),
    "keys_rotated": _l("Keys re-encrypted"),
    "settings_changed": _l("Settings changed"),
    "sync_succeeded": _l("Sync succeeded"),
    "sync_no_data": _l("Sync found nothing to push"),
    "sync_failed": _l("Sync failed"),
    "refresh_requested": _l("Refresh from AiAccount asked"),
    "refresh_succeeded": _l("Refresh from AiAccount done"),
    "refresh_failed": _l("Refresh from AiAccount failed"),
    "fix_requested": _l("Push what's missing asked"),
    "digest_sent": _l("Daily failure email sent"),
    "password_changed": _l("Password changed"),
}


@bp.app_template_filter("pretty_json")
def pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text


@bp.get("/")
@admin_required
def index():
    form = SearchForm(request.args)
    q = form.q.data if form.validate() else ""
    query = (
        select(Blogger)
        .join(Blogger.user)
        .outerjoin(Blogger.credential)
        .options(contains_eager(Blogger.user),
                 contains_eager(Blogger.credential).selectinload(AiAccountCredential.set_by))
        .order_by(Blogger.shop_name, Blogger.id)
    )
    if q:
        query = query.where(or_(
            Blogger.shop_name.icontains(q, autoescape=True),
            User.email.icontains(q, autoescape=True),
            AiAccountCredential.company_name.icontains(q, autoescape=True),
        ))
    page = db.paginate(query, page=page_number(), per_page=BLOGGERS_PER_PAGE)
    return render_template("admin/index.html", form=form, page=page, page_args={"q": q} if q else {})


@bp.get("/bloggers/<int:blogger_id>")
@admin_required
def blogger(blogger_id: int):
    return _blogger_page(get_blogger_or_404(blogger_id))


@bp.post("/bloggers/<int:blogger_id>/credential")
@admin_required
def set_credential(blogger_id: int):
    blogger = get_blogger_or_404(blogger_id)
    form = CredentialForm()
    if not form.validate():
        return _blogger_page(blogger, credential_form=form, status=400)
    api_key = form.api_key.data
    if form.spaces_removed:
        flash(_("Removed spaces around the key."), "info")
    credential = credentials.set_credential(blogger, form.company_name.data, api_key, current_user)
    error = connections.check_connection(credential, api_key)
    db.session.commit()
    if error is None:
        flash(_("✓ Connected to %(company)s.", company=credential.company_name), "success")
    else:
        reason, fix = connections.error_texts(error)
        flash(_("✗ Key saved, but the connection test failed: %(reason)s. %(fix)s.", reason=reason, fix=fix),
              "error")
    return redirect(url_for(".blogger", blogger_id=blogger.id))


@bp.route("/bloggers/<int:blogger_id>/credential/delete", methods=["GET", "POST"])
@admin_required
def disconnect(blogger_id: int):
    blogger = get_blogger_or_404(blogger_id)
    credential = blogger.credential
    if credential is None:
        flash(_("%(shop)s is not connected.", shop=blogger.shop_name), "info")
        return redirect(url_for(".blogger", blogger_id=blogger.id))
    form = ConfirmForm()
    if form.validate_on_submit():
        company = credential.company_name
        credentials.remove_credential(blogger, current_user)
        db.session.commit()
        flash(_("Disconnected %(shop)s from %(company)s.", shop=blogger.shop_name, company=company), "success")
        return redirect(url_for(".blogger", blogger_id=blogger.id))
    return render_template("admin/disconnect.html", blogger=blogger, credential=credential, form=form)


@bp.post("/bloggers/<int:blogger_id>/settings")
@admin_required
def save_settings(blogger_id: int):
    blogger = get_blogger_or_404(blogger_id)
    form = _settings_form(blogger)
    if not form.validate():
        return _blogger_page(blogger, settings_form=form, status=400)
    settings = blogger.settings
    changes = {name: [getattr(settings, name), form[name].data] for name in SETTINGS_FIELDS
               if getattr(settings, name) != form[name].data}
    for name, (_old, new) in changes.items():
        setattr(settings, name, new)
    if changes:
        audit.record("aiaccount_settings", "settings_changed", entity_id=blogger.id, blogger_id=blogger.id,
                     actor=current_user, details=changes)
        flash(_("Settings saved."), "success")
    else:
        flash(_("Nothing changed."), "info")
    db.session.commit()  # also keeps a settings row created with the defaults
    return redirect(url_for(".blogger", blogger_id=blogger.id))


@bp.get("/audit")
@admin_required
def audit_log():
    bloggers = db.session.scalars(select(Blogger).order_by(Blogger.shop_name, Blogger.id)).all()
    types = db.session.scalars(select(AuditLog.entity_type).distinct().order_by(AuditLog.entity_type)).all()
    form = AuditFilterForm(request.args)
    form.blogger.choices = [SelectChoice("", _("All bloggers")),
                            *(SelectChoice(str(b.id), b.shop_name) for b in bloggers)]
    form.entity_type.choices = [SelectChoice("", _("All types")),
                                *(SelectChoice(t, str(AUDIT_TYPE_LABELS.get(t, t))) for t in types)]
    shops = {b.id: b.shop_name for b in bloggers}
    if not form.validate():
        return render_template("admin/audit.html", form=form, page=None, shops=shops,
                               type_labels=AUDIT_TYPE_LABELS, action_labels=AUDIT_ACTION_LABELS), 400
    query = select(AuditLog).order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
    if form.blogger.data:
        query = query.where(AuditLog.blogger_id == int(form.blogger.data))
    if form.entity_type.data:
        query = query.where(AuditLog.entity_type == form.entity_type.data)
    if form.date_from.data:
        query = query.where(AuditLog.created_at >= myt_range_to_utc(form.date_from.data, form.date_from.data)[0])
    if form.date_to.data:
        query = query.where(AuditLog.created_at < myt_range_to_utc(form.date_to.data, form.date_to.data)[1])
    page = db.paginate(query, page=page_number(), per_page=AUDIT_PER_PAGE)
    page_args = {name: request.args[name] for name in AUDIT_FILTERS if request.args.get(name)}
    return render_template("admin/audit.html", form=form, page=page, shops=shops, page_args=page_args,
                           type_labels=AUDIT_TYPE_LABELS, action_labels=AUDIT_ACTION_LABELS)


def _settings_of(blogger: Blogger) -> AiAccountSettings:
    """The blogger's settings row, created with the defaults when missing (the caller commits)."""
    if blogger.settings is None:
        blogger.settings = AiAccountSettings()
        db.session.flush()  # fills in the column defaults
    return blogger.settings


def _settings_form(blogger: Blogger, **kwargs) -> SettingsForm:
    """Choices from the company's master data when fetched, else free text checked for format."""
    settings = _settings_of(blogger)
    company = connections.master_data(blogger.credential)
    if company is None:
        return SettingsForm(obj=settings, **kwargs)
    return CompanySettingsForm(company, obj=settings, **kwargs)


def _blogger_page(blogger: Blogger, credential_form: CredentialForm | None = None,
                  settings_form: SettingsForm | None = None, status: int = 200):
    # formdata=None: the form that was not posted must not read the other form's fields.
    credential_form = credential_form or CredentialForm(formdata=None, obj=blogger.credential)
    settings_form = settings_form or _settings_form(blogger, formdata=None)
    return render_template("admin/blogger.html", blogger=blogger, credential=blogger.credential,
                           credential_form=credential_form, settings_form=settings_form,
                           from_master_data=isinstance(settings_form, CompanySettingsForm)), status
