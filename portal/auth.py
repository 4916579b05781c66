"""Login, logout, password change, the role guards and the guarded loaders."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import delete, func, select
from sqlalchemy.orm import joinedload

from . import audit
from .extensions import db, login_manager
from .forms import LoginForm, PasswordChangeForm
from .models import Blogger, LoginAttempt, User
from .passwords import hash_password, needs_rehash, verify_password
from .security import safe_next
from .timeutil import utcnow

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = None
login_manager.session_protection = "strong"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    raw_id, _sep, token = user_id.partition(":")
    if not raw_id.isdigit() or not token:
        return None
    # One query for the user, their blogger and its credential: every blogger page needs all three.
    user = db.session.scalar(
        select(User).where(User.id == int(raw_id))
        .options(joinedload(User.blogger).joinedload(Blogger.credential)))
    if user is None or not user.active or user.session_token != token:
        return None
    return user


@login_manager.unauthorized_handler
def _unauthorized():
    login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request") == "true":
        # An expired session while HTMX polls: send the whole browser to login.
        return "", 401, {"HX-Redirect": login_url}
    return redirect(login_url)


def home_for(user: User) -> str:
    return url_for("admin.index") if user.is_super_admin else url_for("sync.index")


def _throttled(email: str, ip: str) -> bool:
    """Too many recent failures for this account or from this address."""
    cfg = current_app.config
    since = utcnow() - timedelta(seconds=cfg["LOGIN_WINDOW_SECONDS"])
    recent = select(func.count(LoginAttempt.id)).where(LoginAttempt.created_at >= since)
    per_email = db.session.scalar(recent.where(LoginAttempt.email == email))
    per_ip = db.session.scalar(recent.where(LoginAttempt.ip == ip))
    return max(per_email, per_ip) >= cfg["LOGIN_MAX_FAILURES"]


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        ip = request.remote_addr or "unknown"
        if _throttled(email, ip):
            minutes = current_app.config["LOGIN_WINDOW_SECONDS"] // 60
            form.form_errors.append(
                _("Too many failed logins. Wait %(minutes)d minutes and try again.", minutes=minutes)
            )
            return render_template("auth/login.html", form=form), 429
        user = db.session.scalar(select(User).where(User.email == email))
        if verify_password(user.password_hash if user else None, form.password.data) and user.active:
            db.session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(form.password.data)
            db.session.commit()
            session.clear()  # a fresh session at login: nothing from before survives (session fixation)
            login_user(user)
            return redirect(safe_next(request.args.get("next"), home_for(user)))
        db.session.add(LoginAttempt(email=email, ip=ip))
        window = timedelta(seconds=current_app.config["LOGIN_WINDOW_SECONDS"])
        db.session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < utcnow() - window))
        db.session.commit()
        form.form_errors.append(_("Wrong email or password."))
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    user = current_user._get_current_object()
    user.rotate_session()  # any copy of the old cookie is now refused
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not verify_password(user.password_hash, form.current_password.data):
            form.current_password.errors.append(_("That is not your current password."))
            return render_template("auth/password.html", form=form), 400
        user.password_hash = hash_password(form.new_password.data)
        user.rotate_session()
        audit.record("user", "password_changed", entity_id=user.id, actor=user)
        db.session.commit()
        login_user(user)  # this browser stays signed in; every other session is dropped
        flash(_("Password changed. Other sessions were signed out."), "success")
        return redirect(home_for(user))
    return render_template("auth/password.html", form=form), 400 if form.errors else 200


@bp.route("/language/<lang>", methods=["POST"])
def set_language(lang: str):
    if lang not in current_app.config["LANGUAGES"]:
        abort(404)
    session["lang"] = lang
    if current_user.is_authenticated:
        current_user.locale = lang
        db.session.commit()
    return redirect(safe_next(request.form.get("next") or request.args.get("next"), url_for("auth.index")))


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))


# --- guards ---------------------------------------------------------------------------------


def role_required(role: str):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role != role:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


admin_required = role_required("super_admin")
blogger_required = role_required("blogger")


def current_blogger() -> Blogger:
    """The signed-in blogger's own record (the only blogger a blogger may touch)."""
    blogger = current_user.blogger
    if blogger is None:
        abort(403)
    return blogger


def get_blogger_or_404(blogger_id: int) -> Blogger:
    blogger = db.session.get(Blogger, blogger_id)
    if blogger is None:
        abort(404)
    return blogger
