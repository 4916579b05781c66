"""Pytest plugin: a real AiAccount simulator process on a free port, plus demo constants.

``simulator`` (session) starts ``python -m simulator --control`` once; ``sim`` (function) resets
its imports, documents, quotas and faults before the test. Line factories build valid import
files through the portal's own writer, so tests override only the cell they are about.
"""
from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from portal.aiaccount.templates import BillLine, InvoiceLine, Line, PaymentLine, ReceiptLine
from portal.aiaccount.xlsx import write_xlsx

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 15.0


@dataclass(frozen=True)
class DemoCompany:
    name: str
    key: str


HEALTHY = DemoCompany("Blogger One Trading", "aia_demo_healthy_5f3c9e1a2b")
NO_SST = DemoCompany("Blogger Two Enterprise", "aia_demo_nosst_7d41c0aa3e")
NO_SGD = DemoCompany("Ringgit Only Sdn Bhd", "aia_demo_nosgd_2c8e61b09f")
LOCKED = DemoCompany("Locked Books Sdn Bhd", "aia_demo_locked_9a0b7c3d5e")
TRIAL = DemoCompany("Trial Shop", "aia_demo_trial_4e5f6a7b8c")
READ_ONLY = DemoCompany("Read Only Co", "aia_demo_readonly_0d1e2f3a4b")
NEW_CO = DemoCompany("Before Incorporation Bhd", "aia_demo_newco_6b7c8d9e0f")
DEMO_COMPANIES = (HEALTHY, NO_SST, NO_SGD, LOCKED, TRIAL, READ_ONLY, NEW_CO)


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.url}/_control/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def fault(self, company: DemoCompany | str, fault: str, count: int = 1, **kw: Any) -> None:
        name = company.name if isinstance(company, DemoCompany) else company
        self.control("POST", "faults", json={"company": name, "fault": fault, "count": count,
                                              **kw})

    def documents(self, company: DemoCompany | str, kind: str = "") -> list[dict[str, Any]]:
        name = company.name if isinstance(company, DemoCompany) else company
        return self.control("GET", "documents", params={"company": name, "kind": kind})[
            "documents"]

    def put_company(self, company: dict[str, Any]) -> None:
        self.control("POST", "companies", json=company)

    def requests_log(self) -> list[dict[str, Any]]:
        return self.control("GET", "requests")["requests"]

    def api(self, method: str, path: str, company: DemoCompany, **kwargs: Any) -> requests.Response:
        """A raw API call authenticated as ``company`` (for wire-level tests)."""
        headers = {"X-Api-Key": company.key, "X-Company": company.name,
                   **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10,
                                **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_simulator(db: Path, log_path: Path, *extra: str) -> Simulator:
    """Start ``python -m simulator`` and wait for /healthz; the caller stops the process."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", str(port), "--db", str(db), *extra],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"simulator exited early:\n{log_path.read_text()}")
        try:
            if requests.get(f"{url}/healthz", timeout=0.5).ok:
                return Simulator(url, process, log_path)
        except requests.ConnectionError:
            time.sleep(0.05)
    stop_simulator(process)
    raise RuntimeError(f"simulator did not answer /healthz:\n{log_path.read_text()}")


def stop_simulator(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    workdir = tmp_path_factory.mktemp("simulator")
    sim = start_simulator(workdir / "simulator.sqlite", workdir / "simulator.log", "--control")
    yield sim
    stop_simulator(sim.process)


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    simulator.reset()
    return simulator


# Line factories ----------------------------------------------------------------------------

TODAY = datetime.now(timezone(timedelta(hours=8))).date()  # AiAccount's day (MYT)


def invoice_line(**overrides: Any) -> InvoiceLine:
    values: dict[str, Any] = dict(
        doc_no="POS2026042200001", doc_date=TODAY, doc_type="Invoice", original_doc_no="",
        customer="Walk-in Customer", currency="MYR", description="Nasi lemak",
        qty=Decimal("2"), unit_price=Decimal("5.50"), discount=Decimal("0"), tax_code="NT",
        tax_amount=Decimal("0"), account="40000", line_amount=Decimal("11.00"), reference="",
    )
    return InvoiceLine(**{**values, **overrides})


def receipt_line(**overrides: Any) -> ReceiptLine:
    values: dict[str, Any] = dict(
        receipt_no="RCPT2026042200001", receipt_date=TODAY, doc_type="Receipt",
        customer="Walk-in Customer", currency="MYR", invoice_no="POS2026042200001",
        payment_method="cash", account="12100", amount=Decimal("11.00"), reference="",
        description="",
    )
    return ReceiptLine(**{**values, **overrides})


def bill_line(**overrides: Any) -> BillLine:
    values: dict[str, Any] = dict(
        bill_no="KOL-2026-04-0001", bill_date=TODAY, supplier="KOL Aina", currency="MYR",
        description="Commission April", account="61001", tax_code="NT",
        amount=Decimal("120.00"), reference="",
    )
    return BillLine(**{**values, **overrides})


def payment_line(**overrides: Any) -> PaymentLine:
    values: dict[str, Any] = dict(
        payment_no="PAY-2026-04-0001", payment_date=TODAY, supplier="KOL Aina", currency="MYR",
        bill_no="KOL-2026-04-0001", account="12000", amount=Decimal("120.00"), reference="",
        description="",
    )
    return PaymentLine(**{**values, **overrides})


def xlsx(kind: str, lines: list[Line]) -> bytes:
    buffer = io.BytesIO()
    write_xlsx(kind, lines, buffer)
    return buffer.getvalue()


def invoices(count: int, **overrides: Any) -> list[InvoiceLine]:
    """``count`` one-line invoices with distinct numbers."""
    return [invoice_line(doc_no=f"POS{TODAY:%Y%m%d}{i:05d}", **overrides)
            for i in range(1, count + 1)]
