"""Super admin: bloggers' AiAccount credentials, settings and the audit log."""
from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from .auth import admin_required
from .extensions import db
from .models import Blogger

bp = Blueprint("admin", __name__, url_prefix="/admin/aiaccount")


@bp.get("/")
@admin_required
def index():
    bloggers = db.session.scalars(select(Blogger).order_by(Blogger.id)).all()
    return render_template("admin/index.html", bloggers=bloggers)
