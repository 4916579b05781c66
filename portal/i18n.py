"""Language choice: zh / en, remembered per user (and per session before login)."""
from __future__ import annotations

from flask import current_app, has_request_context, request, session
from flask_babel import get_locale, gettext
from flask_login import current_user


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI and worker: English
        return languages[0]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or languages[0]


def current_locale() -> str:
    return str(get_locale() or "en")


def pick(en: str, zh: str) -> str:
    """Choose between two stored texts (error catalog) by the current language."""
    return zh if current_locale().startswith("zh") else en


def problem_text(problem: object) -> str:
    """Why a source row gave no document, in the reader's language. ``problem`` is a
    ``documents.Problem`` (preview) or its stored dict (run detail, pill); rows stored before
    problems had codes keep their English message."""
    from .documents import PROBLEM_TEXTS

    fields = problem if isinstance(problem, dict) else vars(problem)
    code, params = fields.get("code"), fields.get("params") or {}
    if code in PROBLEM_TEXTS and isinstance(params, dict):
        try:
            return gettext(PROBLEM_TEXTS[code], **{str(k): str(v) for k, v in params.items()})
        except (KeyError, ValueError, TypeError):  # a stored row whose params do not fit the text
            pass
    return str(fields.get("message") or "")
