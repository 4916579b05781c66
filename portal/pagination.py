"""The `page` query argument, shared by every paginated list."""
from __future__ import annotations

from flask import abort, request

MAX_PAGE = 10_000  # beyond any real list; keeps absurd offsets away from the database


def page_number() -> int:
    """Not a number → page 1; below 1 or absurdly high → a clean 404."""
    page = request.args.get("page", 1, type=int)
    if not 1 <= page <= MAX_PAGE:
        abort(404)
    return page
