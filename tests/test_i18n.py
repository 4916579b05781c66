"""The zh / en interface: every message in the sources has a Chinese translation, and the toggle works.

The messages are extracted from ``portal/`` and ``templates/`` at test time (babel.cfg, the same
keywords as ``pybabel extract -k _l -k lazy_gettext``), so a new string that nobody translated fails
here, by name. The compiled catalogue (``translations/zh/LC_MESSAGES/messages.mo``, ignored by git)
is rebuilt from the ``.po`` when it is missing or older, so these tests never read a stale one.

To add translations: ``pybabel extract -F babel.cfg -k _l -k lazy_gettext -o /tmp/messages.pot .``,
``pybabel update -i /tmp/messages.pot -d translations -l zh``, translate, ``pybabel compile -d translations``.
"""
from __future__ import annotations

import os
import re
import tempfile
from html import unescape
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from sqlalchemy import select

from portal.extensions import babel, db
from portal.models import User

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
SYNC_PAGE = "/finance/aiaccount-sync/"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}
CARD_TITLES = ("POS Sales Invoice", "POS Sales Receipt", "KOL Bill", "KOL Payment")
# %(name)s / %(n)d, a bare %s / %d, and str.format fields {name}.
PLACEHOLDER = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc%]"
                         r"|%[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc]|\{[A-Za-z_0-9]*(?:![rsa])?(?::[^{}]*)?\}")


def read_catalog() -> Catalog:
    with PO.open("rb") as handle:
        return read_po(handle, locale="zh")


def ensure_compiled() -> None:
    """Write messages.mo from messages.po when it is missing or older (atomically: other test runs read it)."""
    if not PO.exists():
        return
    if MO.exists() and MO.stat().st_mtime >= PO.stat().st_mtime:
        return
    catalog = read_catalog()
    fd, tmp = tempfile.mkstemp(dir=MO.parent, prefix=".messages-", suffix=".mo")
    try:
        with os.fdopen(fd, "wb") as handle:
            write_mo(handle, catalog)
        os.replace(tmp, MO)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# At collection, before any test of the session renders a page: Flask-Babel caches a loaded
# catalogue for the whole process, so it must be there before the first Chinese request.
ensure_compiled()


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogue():
    ensure_compiled()
    assert MO.exists(), f"{PO.relative_to(ROOT)} is missing: run pybabel init (see this module's docstring)"
    domain = vars(babel).get("domain_instance")  # created on the first translated request
    if domain is not None:
        domain.cache.clear()  # a catalogue loaded earlier in the session may be older
    yield


def extracted() -> dict[str, tuple[str | tuple[str, ...], list[str]]]:
    """msgid → (the message as extracted, where it occurs) for every translatable string in the sources."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(ROOT / "babel.cfg"))
    found: dict[str, tuple[str | tuple[str, ...], list[str]]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT, method_map, options_map, keywords=KEYWORDS):
        key = message[0] if isinstance(message, tuple) else message
        if not key:
            continue
        entry = found.setdefault(key, (message, []))
        entry[1].append(f"{filename}:{lineno}")
    return found


def placeholders(text: str) -> list[str]:
    return sorted(match for match in PLACEHOLDER.findall(text) if match != "%%")


def zh(msgid: str) -> str:
    message = read_catalog().get(msgid)
    assert message is not None and message.string, msgid
    return message.string[0] if isinstance(message.string, tuple) else message.string


def text_nodes(html: str) -> list[str]:
    """The visible text nodes of a page (no scripts, no tags), unescaped and stripped."""
    body = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    return [unescape(node).strip() for node in re.split(r"<[^>]*>", body) if node.strip()]


# --- the catalogue ----------------------------------------------------------------------------------


def test_every_message_in_the_sources_has_a_chinese_translation():
    catalog = read_catalog()
    found = extracted()
    assert len(found) > 100, "extraction found almost nothing: is babel.cfg still right?"
    problems = []
    for key, (message, where) in sorted(found.items()):
        entry = catalog.get(key)
        strings = () if entry is None else (entry.string if isinstance(entry.string, tuple) else (entry.string,))
        if entry is None:
            problems.append(f"not in messages.po: {key!r} ({', '.join(where)})")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {key!r} ({', '.join(where)})")
        elif not strings or not all(s and s.strip() for s in strings):
            problems.append(f"no Chinese text: {key!r} ({', '.join(where)})")
        elif isinstance(message, tuple) and not entry.pluralizable:
            problems.append(f"ngettext message without msgid_plural in messages.po: {key!r} ({', '.join(where)})")
    assert not problems, ("untranslated strings; run pybabel extract + update and translate them:\n  "
                          + "\n  ".join(problems))


def test_placeholders_match_between_english_and_chinese():
    problems = []
    for message in read_catalog():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = placeholders(ids[-1])  # zh has one form, used for every count: the plural's fields
        if any(placeholders(i) != expected for i in ids):
            problems.append(f"msgid and msgid_plural differ: {ids!r}")
        for string in strings:
            if string and placeholders(string) != expected:
                problems.append(f"{ids[0]!r}: {placeholders(string)} in Chinese, {expected} in English")
            # Templates format every message with % (newstyle gettext): a lone % would break the page.
            if string and "%" in PLACEHOLDER.sub("", string).replace("%%", ""):
                problems.append(f"{ids[0]!r}: a stray % in {string!r} (write %%)")
    assert not problems, "\n".join(problems)


def test_catalogue_header_and_checks():
    catalog = read_catalog()
    assert str(catalog.locale) == "zh" and catalog.num_plurals == 1
    assert not catalog.fuzzy, "the header is marked fuzzy: pybabel compile would skip the whole catalogue"
    errors = [f"{message.id!r}: {error}" for message, errs in catalog.check() for error in errs]
    assert not errors, "\n".join(errors)


# --- the pages -------------------------------------------------------------------------------------


def make_blogger(app, factories, locale: str = "en") -> tuple[int, str]:
    """A blogger (not connected); (user id, login email). Set up in its own app context, so every
    request below runs in its own, as in production (a shared one would keep ``g`` between requests)."""
    with app.app_context():
        blogger = factories.make_blogger()
        blogger.user.locale = locale
        db.session.commit()
        return blogger.user.id, blogger.user.email


def stored_locale(app, user_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(User.locale).where(User.id == user_id))


def test_a_chinese_blogger_sees_the_sync_page_in_chinese(app, factories, client, auth):
    _user_id, email = make_blogger(app, factories, "zh")
    assert auth.login(email).status_code == 302

    answer = client.get(SYNC_PAGE)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert '<html lang="zh-Hans">' in html
    heading = zh("AiAccount Sync")
    assert heading != "AiAccount Sync" and f"<h1>{heading}</h1>" in html
    nodes = text_nodes(html)
    for title in CARD_TITLES:
        assert zh(title) != title and zh(title) in nodes, title
    assert "English" in nodes  # the toggle offers the other language, in that language

    # No text node of the page is an English message whose Chinese differs (e.g. a forgotten _()).
    catalog = read_catalog()
    english = {m.id: m.string for m in catalog if m.id and isinstance(m.id, str) and m.string != m.id}
    left = [node for node in nodes if node in english]
    assert not left, f"English left on the Chinese page: {left}"


def test_toggle_switches_the_language_and_remembers_it_on_the_user(app, factories, client, auth):
    user_id, email = make_blogger(app, factories)
    assert auth.login(email).status_code == 302
    assert '<html lang="en">' in client.get(SYNC_PAGE).get_data(as_text=True)

    switched = client.post("/language/zh", data={"next": SYNC_PAGE})
    assert switched.status_code == 302 and switched.headers["Location"].endswith(SYNC_PAGE)
    assert stored_locale(app, user_id) == "zh"
    html = client.get(SYNC_PAGE).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in html and f"<h1>{zh('AiAccount Sync')}</h1>" in html

    # Remembered on the user row: a new browser that signs in gets Chinese straight away.
    other = app.test_client()
    assert other.post("/login", data={"email": email, "password": factories.PASSWORD}).status_code == 302
    assert '<html lang="zh-Hans">' in other.get(SYNC_PAGE).get_data(as_text=True)

    assert client.post("/language/en", data={"next": SYNC_PAGE}).status_code == 302
    assert stored_locale(app, user_id) == "en"
    html = client.get(SYNC_PAGE).get_data(as_text=True)
    assert '<html lang="en">' in html and "<h1>AiAccount Sync</h1>" in html
    assert "中文" in text_nodes(html)


def test_anonymous_toggle_is_remembered_in_the_session(client):
    login_page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in login_page and "Sign in to NS16" in login_page

    assert client.post("/language/zh", data={"next": "/login"}).status_code == 302
    with client.session_transaction() as session:
        assert session["lang"] == "zh"
    login_page = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-Hans">' in login_page and zh("Sign in to NS16") in login_page

    assert client.post("/language/en", data={"next": "/login"}).status_code == 302
    with client.session_transaction() as session:
        assert session["lang"] == "en"
    assert '<html lang="en">' in client.get("/login").get_data(as_text=True)


def test_unknown_language_is_404(client):
    assert client.post("/language/fr").status_code == 404
