"""AiAccountClient against the real simulator process (and throwaway servers for broken answers)."""
from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal.aiaccount import CATALOG, AiAccountClient, AiAccountError, Company
from tests.plugin_simulator import (
    HEALTHY,
    LOCKED,
    NEW_CO,
    NO_SGD,
    NO_SST,
    READ_ONLY,
    TODAY,
    TRIAL,
    DemoCompany,
    Simulator,
    free_port,
    invoice_line,
    invoices,
    xlsx,
)

INVOICE = "sales-invoice"


class Sleeps(list[float]):
    """The client's injected sleep: records each wait and waits for real."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        threading.Event().wait(seconds)


def make_client(url: str, company: DemoCompany = HEALTHY, **kw: object) -> AiAccountClient:
    kw.setdefault("backoff", 0.01)
    return AiAccountClient(url, company.key, company.name, **kw)  # type: ignore[arg-type]


def failure(call: Callable[[], object]) -> AiAccountError:
    with pytest.raises(AiAccountError) as info:
        call()
    return info.value


def test_get_company_parses_master_data(sim: Simulator) -> None:
    company = make_client(sim.url).get_company()
    assert company.name == HEALTHY.name and company.home_currency == "MYR"
    assert company.currencies == frozenset({"MYR", "SGD"})
    assert company.tax_codes == {"NT": Decimal(0), "MY-SALES10": Decimal(10)}
    assert company.accounts["12000"].receipt and company.accounts["12000"].payment
    assert not company.accounts["40000"].expense
    assert (company.incorporation_date, company.locked_until) == (date(2020, 1, 1), None)
    assert company.import_history_url.endswith("/company/Blogger%20One%20Trading/imports")
    assert company.can_write and not make_client(sim.url, READ_ONLY).get_company().can_write
    assert Company.from_dict(company.to_dict()) == company  # the snapshot the portal stores
    trial = make_client(sim.url, TRIAL).get_company()
    assert (trial.plan, trial.quota_used, trial.quota_limit) == ("trial", 95, 100)
    locked = make_client(sim.url, LOCKED).get_company().locked_until
    assert locked is not None and locked < TODAY.replace(day=1) - timedelta(days=27)


def test_non_ascii_company_names_travel_percent_encoded(sim: Simulator) -> None:
    sim.put_company({"name": "博主三号 100% Sdn Bhd", "api_key": "aia_test_cjk_2"})
    client = AiAccountClient(sim.url, "aia_test_cjk_2", "博主三号 100% sdn bhd")
    assert client.get_company().name == "博主三号 100% Sdn Bhd"


def test_upload_replay_dedupe_and_changed(sim: Simulator) -> None:
    client = make_client(sim.url)
    data = xlsx(INVOICE, invoices(3))
    first = client.upload(INVOICE, data, "push-1")
    assert (first.status, first.created, first.rows, first.replayed) == ("completed", 3, 3, False)
    assert first.url.endswith(first.import_id)
    replay = client.upload(INVOICE, data, "push-1")
    assert replay.replayed and replay.import_id == first.import_id
    repush = client.upload(INVOICE, data, "push-2")
    assert (repush.created, repush.skipped_duplicates, repush.changed) == (0, 3, 0)
    edited = invoices(3)
    edited[1] = edited[1]._replace(description="Nasi lemak special")
    before = {d["number"]: d["content_hash"] for d in sim.documents(HEALTHY)}
    changed = client.upload(INVOICE, xlsx(INVOICE, edited), "push-3")
    assert (changed.created, changed.skipped_duplicates, changed.changed) == (0, 2, 1)
    assert changed.changed_documents[0].number == edited[1].doc_no
    assert {d["number"]: d["content_hash"] for d in sim.documents(HEALTHY)} == before
    assert client.get_import(first.import_id) == first
    listed = list(client.list_documents(INVOICE, TODAY, TODAY))
    assert sorted(d.number for d in listed) == sorted(line.doc_no for line in edited)
    assert {d.total for d in listed} == {Decimal("11.00")}


@pytest.mark.parametrize(("company", "line", "code", "fix_mentions"), [
    (NO_SST, invoice_line(tax_code="MY-SALES10", tax_amount=Decimal("1.10")), "tax_code_missing",
     "MY-SALES10"),
    (NO_SGD, invoice_line(currency="SGD"), "currency_not_enabled", "SGD"),
    (HEALTHY, invoice_line(account="49999"), "account_missing", "49999"),
    (LOCKED, invoice_line(doc_date=TODAY.replace(day=1) - timedelta(days=40)), "period_locked",
     ""),
    (NEW_CO, invoice_line(doc_date=TODAY.replace(day=1) - timedelta(days=1)),
     "before_incorporation", ""),
])
def test_master_data_failures(sim: Simulator, company: DemoCompany, line: object, code: str,
                              fix_mentions: str) -> None:
    error = failure(lambda: make_client(sim.url, company).upload(
        INVOICE, xlsx(INVOICE, [line]), "k"))  # type: ignore[list-item]
    assert (error.code, error.http_status, error.transient) == (code, 422, False)
    assert fix_mentions in error.fix_en and error.settings_path
    assert isinstance(error.details, list) and error.details[0]["row"] == 2
    assert sim.documents(company) == []


@pytest.mark.parametrize(("company", "code", "status"), [
    (DemoCompany(HEALTHY.name, "aia_demo_healthy_5f3c 9e1a2b"), "invalid_api_key", None),
    (DemoCompany(HEALTHY.name, " aia_demo_healthy_5f3c9e1a2b\n"), "invalid_api_key", None),
    (DemoCompany(HEALTHY.name, "aia_wrong"), "invalid_api_key", 401),
    (DemoCompany("Another Company", HEALTHY.key), "company_mismatch", 403),
    (READ_ONLY, "write_permission_denied", 403),
])
def test_credential_failures(sim: Simulator, company: DemoCompany, code: str,
                             status: int | None) -> None:
    client = make_client(sim.url, company)
    error = failure(lambda: client.upload(INVOICE, xlsx(INVOICE, [invoice_line()]), "k"))
    assert (error.code, error.transient) == (code, False)
    assert "super admin" in error.fix_en or "API Keys" in error.fix_en
    if status is None:  # a key with whitespace is refused before anything is sent
        assert "whitespace" in error.message and sim.requests_log() == []
    else:
        assert error.http_status == status


def test_quota_exceeded_counts_only_created_documents(sim: Simulator) -> None:
    client = make_client(sim.url, TRIAL)
    error = failure(lambda: client.upload(INVOICE, xlsx(INVOICE, invoices(6)), "k-1"))
    assert (error.code, error.http_status) == ("quota_exceeded", 402)
    assert error.details == {"used": 95, "limit": 100, "needed": 6}
    assert "Upgrade" in error.fix_en
    assert client.upload(INVOICE, xlsx(INVOICE, invoices(5)), "k-2").created == 5
    assert client.upload(INVOICE, xlsx(INVOICE, invoices(5)), "k-3").skipped_duplicates == 5
    assert client.get_company().quota_used == 100


def test_rate_limit_honours_retry_after(sim: Simulator) -> None:
    sleeps = Sleeps()
    sim.fault(HEALTHY, "rate_limit", retry_after=1)
    result = make_client(sim.url, sleep=sleeps).upload(INVOICE, xlsx(INVOICE, invoices(2)), "k")
    assert result.created == 2 and sleeps == [1.0]
    sim.fault(HEALTHY, "rate_limit", count=3, retry_after=120)
    capped = Sleeps()
    error = failure(lambda: make_client(sim.url, max_retries=1, sleep=capped.append).upload(
        INVOICE, b"x", "k-2"))
    assert (error.code, error.transient, error.retry_after) == ("rate_limited", True, 120.0)
    assert capped == [60.0]


def test_server_error_retried_then_succeeds(sim: Simulator) -> None:
    sim.fault(HEALTHY, "server_error", count=2)
    result = make_client(sim.url).upload(INVOICE, xlsx(INVOICE, invoices(2)), "k")
    assert result.created == 2 and not result.replayed
    assert [r["status"] for r in sim.requests_log()] == [500, 500, 200]
    assert {r["idempotency_key"] for r in sim.requests_log()} == {"k"}


def test_server_error_exhausted_is_transient(sim: Simulator) -> None:
    sim.fault(HEALTHY, "server_error", count=4)
    error = failure(lambda: make_client(sim.url, max_retries=2).upload(INVOICE, b"x", "k"))
    assert (error.code, error.transient, error.http_status) == ("server_error", True, 500)
    assert "retry later" in error.fix_en


def test_idempotency_conflict(sim: Simulator) -> None:
    client = make_client(sim.url)
    client.upload(INVOICE, xlsx(INVOICE, invoices(1)), "same-key")
    error = failure(lambda: client.upload(INVOICE, xlsx(INVOICE, invoices(2)), "same-key"))
    assert (error.code, error.http_status, error.transient) == ("idempotency_conflict", 409, False)


def test_timeout_after_commit_is_replayed_not_duplicated(sim: Simulator) -> None:
    sim.fault(HEALTHY, "delay_after_commit", delay=2.5)
    client = make_client(sim.url, timeout=(1, 1.5))
    result = client.upload(INVOICE, xlsx(INVOICE, invoices(4)), "slow-push")
    assert result.replayed and result.created == 4
    documents = sim.documents(HEALTHY)
    assert len(documents) == 4 and {d["copies"] for d in documents} == {1}


def test_timeout_exhausted_is_transient(sim: Simulator) -> None:
    sim.fault(HEALTHY, "delay_after_commit", delay=1.5)
    client = make_client(sim.url, timeout=(1, 0.5), max_retries=0)
    error = failure(lambda: client.upload(INVOICE, xlsx(INVOICE, invoices(1)), "k"))
    assert (error.code, error.transient) == ("timeout", True)


def test_connection_reset_is_retried(sim: Simulator) -> None:
    sim.fault(HEALTHY, "reset")
    result = make_client(sim.url).upload(INVOICE, xlsx(INVOICE, invoices(2)), "k")
    assert result.created == 2 and not result.replayed
    assert [r["fault"] for r in sim.requests_log()] == ["reset", None]


def test_nothing_listening_is_a_transient_connection_error() -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", max_retries=1)
    error = failure(client.get_company)
    assert (error.code, error.transient) == ("connection_error", True)


def test_file_errors_are_typed(sim: Simulator) -> None:
    client = make_client(sim.url)
    invalid = failure(lambda: client.upload(INVOICE, b"not a spreadsheet", "k-1"))
    assert (invalid.code, invalid.http_status) == ("invalid_file", 400)
    rows = failure(lambda: client.upload(INVOICE, xlsx(INVOICE, [invoice_line(qty=Decimal(0))]),
                                         "k-2"))
    assert rows.code == "validation_failed" and "row 2" in rows.fix_en
    assert failure(lambda: client.get_import("imp_missing")).code == "import_not_found"
    with pytest.raises(ValueError, match="unknown import kind"):
        client.upload("sales-order", b"", "k-3")


# Broken answers from a throwaway server (a process boundary: a proxy or another service) -------

BROKEN_ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/html-502": (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "/not-json": (200, "text/plain", b"hello"),
    "/json-list": (200, "application/json", b"[1, 2]"),
    "/teapot": (418, "application/json", b'{"error": {"message": "no code"}}'),
    "/missing-fields": (200, "application/json", b'{"name": "x"}'),
    "/unknown-code": (400, "application/json", b'{"error": {"code": "brand_new_code"}}'),
}


class _BrokenHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        prefix = self.path.removesuffix("/api/v1/company")
        if prefix == "/truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "500")
            self.end_headers()
            self.wfile.write(b'{"name": "Blogger')
            self.close_connection = True
            return
        status, content_type, body = BROKEN_ANSWERS[prefix]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def broken_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("prefix", "transient", "attempts"), [
    ("/html-502", True, 3),
    ("/not-json", False, 1),
    ("/json-list", False, 1),
    ("/teapot", False, 1),
    ("/missing-fields", False, 1),
    ("/unknown-code", False, 1),
    ("/truncated", True, 3),
])
def test_broken_answers_become_bad_response(broken_server: str, prefix: str, transient: bool,
                                            attempts: int) -> None:
    sleeps: list[float] = []
    client = make_client(broken_server + prefix, max_retries=2, sleep=sleeps.append)
    error = failure(client.get_company)
    assert (error.code, error.transient) == ("bad_response", transient)
    assert len(sleeps) == attempts - 1


# The key never leaks ------------------------------------------------------------------------

def test_api_key_never_in_errors_reprs_or_logs(sim: Simulator, broken_server: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim.fault(HEALTHY, "server_error")
    client = make_client(sim.url)
    errors = [failure(lambda: client.upload(INVOICE, xlsx(INVOICE, [invoice_line(tax_code="X")]),
                                            "k")),
              failure(make_client(broken_server + "/html-502", max_retries=0).get_company),
              failure(lambda: make_client(sim.url, READ_ONLY).get_import("imp_x"))]
    echoing = AiAccountClient(sim.url, "aia_secret_echo", "Nobody")
    errors.append(failure(echoing.get_company))
    texts = [repr(client), str(client)] + [
        f"{e!s} {e!r} {e.to_dict()} {pickle.loads(pickle.dumps(e)).to_dict()}" for e in errors]
    texts.append(caplog.text)
    assert "aia_secret_echo" not in " ".join(texts)
    assert HEALTHY.key not in " ".join(texts) and READ_ONLY.key not in " ".join(texts)
    assert "idempotency key k" in caplog.text and "/imports/sales-invoice -> 500" in caplog.text


# Errors as values ---------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(CATALOG))
def test_every_catalog_code_makes_a_complete_error(code: str) -> None:
    error = AiAccountError.make(code, details=[{"row": 2}])
    assert error.code == code and str(error).startswith(code)
    assert all((error.reason_en, error.reason_zh, error.fix_en, error.fix_zh))
    assert "{detail}" not in error.fix_en + error.fix_zh
    assert AiAccountError.from_dict(error.to_dict()).to_dict() == error.to_dict()


def test_make_fills_the_detail_and_rejects_unknown_codes() -> None:
    error = AiAccountError.make("tax_code_missing", "MY-SALES10")
    assert error.fix_en == "AiAccount → Settings → Tax Codes: add MY-SALES10"
    assert "MY-SALES10" in error.fix_zh and error.settings_path == "settings/tax-codes"
    assert AiAccountError.make("server_error").transient
    assert not AiAccountError.make("not_connected").transient
    with pytest.raises(ValueError, match="unknown AiAccount error code"):
        AiAccountError.make("nope")
