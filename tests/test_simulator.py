"""The simulator over real HTTP, at the wire level (docs/aiaccount-api.md)."""
from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.aiaccount.templates import COLUMNS
from simulator.app import create_app
from simulator.seed import load_seed_file
from tests.plugin_simulator import (
    DEMO_COMPANIES,
    HEALTHY,
    READ_ONLY,
    TODAY,
    Simulator,
    bill_line,
    invoice_line,
    invoices,
    payment_line,
    receipt_line,
    start_simulator,
    stop_simulator,
    xlsx,
)

INVOICE = "sales-invoice"


def upload(sim: Simulator, data: bytes, kind: str = INVOICE, key: str = "k-1",
           company: Any = HEALTHY) -> requests.Response:
    return sim.api("POST", f"/imports/{kind}", company, data=data,
                   headers={"Idempotency-Key": key})


def raw_xlsx(rows: list[list[Any]]) -> bytes:
    """A workbook with exactly these cells (first row = header), for malformed files."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer)
    sheet = workbook.add_worksheet()
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, str):
                sheet.write_string(r, c, value)
            elif value is not None:
                sheet.write(r, c, value)
    workbook.close()
    return buffer.getvalue()


def invoice_cells(**overrides: Any) -> list[list[Any]]:
    row = dict(zip(COLUMNS[INVOICE], [
        "POS1", TODAY.isoformat(), "Invoice", "", "Walk-in", "MYR", "", 1, 10, 0, "NT", 0,
        "40000", 10, ""], strict=True))
    return [COLUMNS[INVOICE], list({**row, **overrides}.values())]


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]


def test_healthz(simulator: Simulator) -> None:
    assert requests.get(f"{simulator.url}/healthz", timeout=5).json() == {"ok": True}


def test_simulator_never_imports_portal() -> None:
    code = ("import simulator.app, simulator.__main__, sys; "
            "assert not any(m.startswith('portal') for m in sys.modules), 'portal imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "invalid_api_key"),
    ({"X-Api-Key": "aia_demo_healthy 5f3c9e1a2b"}, 401, "invalid_api_key"),
    ({"X-Api-Key": "aia_unknown"}, 401, "invalid_api_key"),
    ({"X-Api-Key": HEALTHY.key}, 403, "company_mismatch"),
    ({"X-Api-Key": HEALTHY.key, "X-Company": "Trial Shop"}, 403, "company_mismatch"),
])
def test_authentication_errors(sim: Simulator, headers: dict[str, str], status: int,
                               code: str) -> None:
    response = requests.get(f"{sim.url}/api/v1/company", headers=headers, timeout=5)
    assert (response.status_code, error_of(response)["code"]) == (status, code)


def test_key_with_whitespace_is_named_as_such(sim: Simulator) -> None:
    response = requests.get(f"{sim.url}/api/v1/company", timeout=5, headers={
        "X-Api-Key": "aia_demo_healthy _5f3c9e1a2b", "X-Company": HEALTHY.name})
    assert response.status_code == 401
    assert "whitespace" in error_of(response)["message"]


def test_company_name_is_trimmed_case_insensitive_and_percent_decoded(sim: Simulator) -> None:
    ok = sim.api("GET", "/company", HEALTHY, headers={"X-Company": "%20blogger ONE trading%20"})
    assert ok.status_code == 200
    sim.put_company({"name": "博主三号 Sdn Bhd", "api_key": "aia_test_cjk_1"})
    cjk = requests.get(f"{sim.url}/api/v1/company", timeout=5, headers={
        "X-Api-Key": "aia_test_cjk_1",
        "X-Company": "%E5%8D%9A%E4%B8%BB%E4%B8%89%E5%8F%B7 Sdn Bhd"})
    assert cjk.json()["name"] == "博主三号 Sdn Bhd"


def test_company_json(sim: Simulator) -> None:
    body = sim.api("GET", "/company", HEALTHY).json()
    assert body["currencies"] == ["MYR", "SGD"]
    assert {"code": "MY-SALES10", "rate": "10", "enabled": True} in body["tax_codes"]
    assert body["quota"] == {"used": 0, "limit": None, "period": f"{TODAY:%Y-%m}"}
    assert body["import_history_url"] == f"{sim.url}/company/Blogger%20One%20Trading/imports"
    assert requests.get(body["import_history_url"], timeout=5).status_code == 200


def test_read_only_key_reads_but_cannot_import(sim: Simulator) -> None:
    assert sim.api("GET", "/company", READ_ONLY).status_code == 200
    response = upload(sim, xlsx(INVOICE, [invoice_line()]), company=READ_ONLY)
    assert (response.status_code, error_of(response)["code"]) == (403, "write_permission_denied")


@pytest.mark.parametrize("key", ["", "x" * 201])
def test_idempotency_key_is_required(sim: Simulator, key: str) -> None:
    response = upload(sim, xlsx(INVOICE, [invoice_line()]), key=key)
    assert (response.status_code, error_of(response)["code"]) == (400, "idempotency_key_missing")


def test_unknown_kind_and_method_are_json_errors(sim: Simulator) -> None:
    assert error_of(upload(sim, b"x", kind="sales-order"))["code"] == "not_found"
    response = sim.api("DELETE", "/company", HEALTHY)
    assert (response.status_code, error_of(response)["code"]) == (405, "method_not_allowed")


@pytest.mark.parametrize("body", [
    b"Doc No,Doc Date\nPOS1,2026-04-22\n",
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    b"PK\x03\x04garbage",
])
def test_unreadable_file_is_invalid_file(sim: Simulator, body: bytes) -> None:
    response = upload(sim, body)
    assert (response.status_code, error_of(response)["code"]) == (400, "invalid_file")


def test_truncated_xlsx_is_a_4xx(sim: Simulator) -> None:
    data = xlsx(INVOICE, invoices(20))
    for cut in (len(data) // 3, len(data) // 2, len(data) - 30):
        assert 400 <= upload(sim, data[:cut], key=f"cut-{cut}").status_code < 500


@pytest.mark.parametrize("data", [b"", raw_xlsx([COLUMNS[INVOICE]]), raw_xlsx([])])
def test_empty_file_names_row_2(sim: Simulator, data: bytes) -> None:
    response = upload(sim, data)
    error = error_of(response)
    assert (response.status_code, error["code"], error["details"][0]["row"]) == (
        422, "validation_failed", 2)


def test_missing_columns_are_named(sim: Simulator) -> None:
    header = [c for c in COLUMNS[INVOICE] if c not in ("Tax Code", "Line Amount")] + ["Extra"]
    response = upload(sim, raw_xlsx([header]))
    error = error_of(response)
    assert (response.status_code, error["code"]) == (422, "missing_columns")
    assert [d["column"] for d in error["details"]] == ["Tax Code", "Line Amount"]


@pytest.mark.parametrize(("overrides", "column", "code"), [
    ({"Qty": "two"}, "Qty", "invalid_value"),
    ({"Doc Date": "2026-13-45"}, "Doc Date", "invalid_value"),
    ({"Doc Date": "22/04/2026"}, "Doc Date", "invalid_value"),
    ({"Doc Date": 46134}, "Doc Date", "invalid_value"),
    ({"Qty": -1, "Line Amount": -10}, "Qty", "invalid_value"),
    ({"Line Amount": 11}, "Line Amount", "invalid_value"),
    ({"Doc Type": "Quote"}, "Doc Type", "invalid_value"),
    ({"Customer": ""}, "Customer", "missing_value"),
    ({"Unit Price": True}, "Unit Price", "invalid_value"),
    ({"Doc Type": "Credit Note", "Qty": -1, "Line Amount": -10}, "Original Doc No",
     "invalid_value"),
    ({"Account": "99999"}, "Account", "account_missing"),
    ({"Account": "12000"}, "Account", "account_missing"),
])
def test_row_errors_name_row_and_column(sim: Simulator, overrides: dict[str, Any], column: str,
                                        code: str) -> None:
    response = upload(sim, raw_xlsx(invoice_cells(**overrides)))
    assert response.status_code == 422
    assert {"row": 2, "column": column, "code": code} in [
        {k: d[k] for k in ("row", "column", "code")} for d in error_of(response)["details"]]


def test_text_numbers_and_amount_rounding_are_accepted(sim: Simulator) -> None:
    cells = invoice_cells(**{"Qty": "3", "Unit Price": " 3.335 ", "Line Amount": 10.02,
                             "Account": 40000})
    response = upload(sim, raw_xlsx(cells))
    assert response.status_code == 200, response.text
    assert sim.documents(HEALTHY)[0]["total"] == "10.02"  # 3 × round(3.335) = 3 × 3.34


def test_all_or_nothing(sim: Simulator) -> None:
    lines = invoices(3)
    lines[2] = lines[2]._replace(tax_code="XX")
    response = upload(sim, xlsx(INVOICE, lines))
    assert error_of(response)["code"] == "tax_code_missing"
    assert error_of(response)["details"][0]["row"] == 4
    assert sim.documents(HEALTHY) == []


def test_top_level_code_is_validation_failed_when_codes_differ(sim: Simulator) -> None:
    lines = [invoice_line(tax_code="XX"), invoice_line(doc_no="POS2", currency="USD")]
    assert error_of(upload(sim, xlsx(INVOICE, lines)))["code"] == "validation_failed"


def test_lines_of_one_document_must_agree(sim: Simulator) -> None:
    lines = [invoice_line(), invoice_line(customer="Someone Else")]
    details = error_of(upload(sim, xlsx(INVOICE, lines)))["details"]
    assert [(d["row"], d["column"], d["code"]) for d in details] == [
        (3, "Customer", "inconsistent_document")]


def test_references(sim: Simulator) -> None:
    receipt = upload(sim, xlsx("sales-receipt", [receipt_line()]), "sales-receipt")
    assert error_of(receipt)["details"][0]["code"] == "reference_not_found"
    payment = upload(sim, xlsx("expense-payment", [payment_line()]), "expense-payment", "k-2")
    assert error_of(payment)["details"][0]["column"] == "Bill No"
    credit = invoice_line(doc_no="CN1", doc_type="Credit Note", original_doc_no=
                          "POS2026042200001", qty=Decimal(-1), line_amount=Decimal("-5.50"))
    assert upload(sim, xlsx(INVOICE, [invoice_line(), credit]), key="k-3").status_code == 200
    assert upload(sim, xlsx("sales-receipt", [receipt_line()]), "sales-receipt",
                  "k-4").status_code == 200
    assert upload(sim, xlsx("expense-bill", [bill_line()]), "expense-bill", "k-5").status_code \
        == 200
    assert upload(sim, xlsx("expense-payment", [payment_line()]), "expense-payment",
                  "k-6").status_code == 200


def test_rounding_line_may_use_a_sales_account(sim: Simulator) -> None:
    upload(sim, xlsx(INVOICE, [invoice_line()]), key="inv")
    lines = [receipt_line(amount=Decimal("11.05")),
             receipt_line(payment_method="rounding", account="40000", amount=Decimal("-0.05"))]
    assert upload(sim, xlsx("sales-receipt", lines), "sales-receipt").status_code == 200


def test_oversized_upload_is_413(sim: Simulator) -> None:
    response = upload(sim, b"\0" * (10 * 1024 * 1024 + 1))
    assert (response.status_code, error_of(response)["code"]) == (413, "file_too_large")


def test_success_replay_conflict_and_dedupe(sim: Simulator) -> None:
    data = xlsx(INVOICE, invoices(3))
    first = upload(sim, data)
    body = first.json()
    assert (body["status"], body["rows"], body["documents"], body["created"]) == (
        "completed", 3, 3, 3)
    assert body["new_counterparties"] == ["Walk-in Customer"]
    replay = upload(sim, data)
    assert replay.json() == body and replay.headers["Idempotent-Replayed"] == "true"
    conflict = upload(sim, xlsx(INVOICE, invoices(2)))
    assert (conflict.status_code, error_of(conflict)["code"]) == (409, "idempotency_conflict")
    again = upload(sim, data, key="k-2").json()
    assert (again["created"], again["skipped_duplicates"], again["changed"]) == (0, 3, 0)
    assert sim.api("GET", f"/imports/{body['import_id']}", HEALTHY).json() == body


def test_failed_import_does_not_bind_the_key(sim: Simulator) -> None:
    failed = upload(sim, xlsx(INVOICE, [invoice_line(tax_code="XX")]))
    recorded = sim.api("GET", f"/imports/{error_of(failed)['import_id']}", HEALTHY).json()
    assert (recorded["status"], recorded["error_code"], recorded["errors"][0]["row"]) == (
        "failed", "tax_code_missing", 2)
    assert upload(sim, xlsx(INVOICE, [invoice_line()])).status_code == 200


def test_unknown_import_is_404(sim: Simulator) -> None:
    response = sim.api("GET", "/imports/imp_nope", HEALTHY)
    assert (response.status_code, error_of(response)["code"]) == (404, "import_not_found")


def test_concurrent_same_key_creates_once(sim: Simulator) -> None:
    data = xlsx(INVOICE, invoices(5))
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(upload(sim, data).status_code))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    documents = sim.documents(HEALTHY)
    assert len(documents) == 5 and {d["copies"] for d in documents} == {1}


def test_documents_pagination_and_filters(sim: Simulator) -> None:
    upload(sim, xlsx(INVOICE, invoices(5)))
    seen, page = [], 1
    while page:
        body = sim.api("GET", "/documents", HEALTHY, params={
            "kind": INVOICE, "from": TODAY.isoformat(), "to": TODAY.isoformat(),
            "page": page, "per_page": 2}).json()
        seen += [d["number"] for d in body["documents"]]
        page = body["next_page"]
    assert len(seen) == 5 == len(set(seen))
    empty = sim.api("GET", "/documents", HEALTHY, params={"kind": INVOICE, "to": "2000-01-01"})
    assert empty.json()["documents"] == []
    bad = sim.api("GET", "/documents", HEALTHY, params={"kind": INVOICE, "per_page": 1001})
    assert (bad.status_code, error_of(bad)["code"]) == (400, "invalid_value")


def test_import_history_html_is_escaped(sim: Simulator) -> None:
    ok = upload(sim, xlsx(INVOICE, [invoice_line(customer="<script>alert(1)</script>")]))
    page = requests.get(ok.json()["url"], timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "&lt;script&gt;" in page.text and "<script>" not in page.text
    failed = upload(sim, xlsx(INVOICE, [invoice_line(doc_no="X", tax_code="ZZ")]), key="k-2")
    detail = requests.get(error_of(failed)["url"], timeout=5).text
    assert "tax_code_missing" in detail and "Tax Code" in detail
    listing = requests.get(sim.api("GET", "/company", HEALTHY).json()["import_history_url"],
                           timeout=5).text
    assert listing.count("<tr>") == 3  # header + two imports


def test_request_log_and_files_never_hold_the_key(sim: Simulator) -> None:
    upload(sim, xlsx(INVOICE, [invoice_line()]))
    log = sim.requests_log()
    assert log[-1] | {"at": None} == {"at": None, "method": "POST", "path":
                                      "/api/v1/imports/sales-invoice", "company": HEALTHY.name,
                                      "idempotency_key": "k-1", "status": 200, "fault": None}
    assert HEALTHY.key not in json.dumps(log)
    for path in (*sim.log_path.parent.glob("simulator.sqlite*"), sim.log_path):
        assert HEALTHY.key.encode() not in path.read_bytes()


def test_reset_fault_drops_the_connection(sim: Simulator) -> None:
    sim.fault(HEALTHY, "reset")
    with pytest.raises(requests.ConnectionError):
        upload(sim, xlsx(INVOICE, [invoice_line()]))
    assert sim.documents(HEALTHY) == []
    assert sim.requests_log()[-1]["fault"] == "reset"


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048) | st.builds(
    lambda data, pos, byte: data[:pos] + bytes([byte]) + data[pos + 1:],
    st.just(xlsx(INVOICE, invoices(3))), st.integers(0, 3000), st.integers(0, 255)))
def test_arbitrary_bytes_never_cause_a_5xx(simulator: Simulator, data: bytes) -> None:
    response = upload(simulator, data, key="fuzz-" + str(hash(data)))
    assert response.status_code < 500, response.text


def test_control_surface_is_off_by_default_and_seed_files_load(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"companies": [
        {"name": "Seeded Co", "api_key": "aia_seed_1", "currencies": ["MYR", "USD"]}]}))
    app = create_app(tmp_path / "db.sqlite", seeds=load_seed_file(seed))
    client = app.test_client()
    assert client.post("/_control/reset").status_code == 404
    response = client.get("/api/v1/company", headers={"X-Api-Key": "aia_seed_1",
                                                      "X-Company": "seeded co"})
    assert response.json["currencies"] == ["MYR", "USD"]
    names = {c.name for c in DEMO_COMPANIES}
    for company in DEMO_COMPANIES:
        assert client.get("/api/v1/company", headers={
            "X-Api-Key": company.key, "X-Company": company.name}).json["name"] in names


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path / "db.sqlite", tmp_path / "log.txt")
    sim.process.send_signal(signal.SIGTERM)
    assert sim.process.wait(timeout=5) == 0
    stop_simulator(sim.process)
