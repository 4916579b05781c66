"""Finance & Reports → AiAccount Sync: the blogger's pages."""
from __future__ import annotations

from flask import Blueprint, render_template

from .auth import blogger_required, current_blogger
from .forms import DateRangeForm

bp = Blueprint("sync", __name__, url_prefix="/finance/aiaccount-sync")


@bp.get("/")
@blogger_required
def index():
    blogger = current_blogger()
    form = DateRangeForm()
    start, end = DateRangeForm.default_range()
    form.start.data, form.end.data = start, end
    return render_template("sync/index.html", blogger=blogger, form=form)
