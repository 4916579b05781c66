"""The simulator's SQLite state: companies, imports, documents, counterparties, request log.

One connection per request thread (WAL + busy timeout); writers serialise on BEGIN IMMEDIATE, so
dedupe and quota checks see a stable store while an import is posted.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from simulator.company import Company, hash_key, normalize_name, parse_company

SCHEMA = """
CREATE TABLE IF NOT EXISTS companies (
    id INTEGER PRIMARY KEY,
    name_norm TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    master TEXT NOT NULL,           -- Company.to_json()
    quota_period TEXT NOT NULL      -- the month master.quota_used belongs to
);
CREATE TABLE IF NOT EXISTS imports (
    id TEXT PRIMARY KEY,
    company_id INTEGER NOT NULL REFERENCES companies(id),
    kind TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
    result TEXT NOT NULL,           -- the import as GET /api/v1/imports/<id> shows it
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_imports_completed_key
    ON imports (company_id, idempotency_key) WHERE status = 'completed';
CREATE INDEX IF NOT EXISTS ix_imports_company ON imports (company_id, created_at);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    company_id INTEGER NOT NULL REFERENCES companies(id),
    kind TEXT NOT NULL,
    number TEXT NOT NULL,
    counterparty TEXT NOT NULL,
    counterparty_norm TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    date TEXT NOT NULL,
    currency TEXT NOT NULL,
    total TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    lines TEXT NOT NULL,
    import_id TEXT NOT NULL REFERENCES imports(id),
    period TEXT NOT NULL            -- quota month (MYT) the document was created in
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_documents_identity
    ON documents (company_id, kind, number, counterparty_norm);
CREATE INDEX IF NOT EXISTS ix_documents_date ON documents (company_id, kind, date, number);
CREATE TABLE IF NOT EXISTS counterparties (
    company_id INTEGER NOT NULL REFERENCES companies(id),
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    name_norm TEXT NOT NULL,
    PRIMARY KEY (company_id, role, name_norm)
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    company TEXT,
    idempotency_key TEXT,
    status INTEGER,
    fault TEXT
);
"""


@dataclass(frozen=True)
class StoredDocument:
    kind: str
    number: str
    counterparty: str
    doc_type: str
    date: str
    currency: str
    total: str
    content_hash: str
    lines: list[dict[str, str]]
    import_id: str


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Store:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @contextmanager
    def write(self) -> Iterator[None]:
        """One all-or-nothing write transaction, holding the database's write lock."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def create_schema(self) -> None:
        self.conn.executescript(SCHEMA)

    # Companies -----------------------------------------------------------------------------

    def put_company(self, company: Company, api_key: str, period: str) -> None:
        """Create a company or replace its master data and key (documents are kept)."""
        self.conn.execute(
            "INSERT INTO companies (name_norm, key_hash, master, quota_period) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name_norm) DO UPDATE SET key_hash = excluded.key_hash,"
            " master = excluded.master, quota_period = excluded.quota_period",
            (normalize_name(company.name), hash_key(api_key), json.dumps(company.to_json()),
             period),
        )

    def company_by_key(self, api_key: str) -> Company | None:
        row = self.conn.execute(
            "SELECT id, master FROM companies WHERE key_hash = ?", (hash_key(api_key),)
        ).fetchone()
        return self._company(row)

    def company_by_name(self, name: str) -> Company | None:
        row = self.conn.execute(
            "SELECT id, master FROM companies WHERE name_norm = ?", (normalize_name(name),)
        ).fetchone()
        return self._company(row)

    @staticmethod
    def _company(row: sqlite3.Row | None) -> Company | None:
        if row is None:
            return None
        return replace(parse_company(json.loads(row["master"])), id=row["id"])

    def quota_used(self, company: Company, period: str) -> int:
        row = self.conn.execute(
            "SELECT quota_period, (SELECT COUNT(*) FROM documents d WHERE d.company_id = c.id"
            " AND d.period = ?) AS created FROM companies c WHERE c.id = ?",
            (period, company.id),
        ).fetchone()
        seeded = company.quota_used if row["quota_period"] == period else 0
        return int(seeded + row["created"])

    # Imports -------------------------------------------------------------------------------

    def completed_import_by_key(self, company: Company, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT id, kind, file_sha256, result FROM imports"
            " WHERE company_id = ? AND idempotency_key = ? AND status = 'completed'",
            (company.id, key),
        ).fetchone()
        return row

    def add_import(
        self, company: Company, key: str, sha256: str, result: dict[str, Any]
    ) -> None:
        self.conn.execute(
            "INSERT INTO imports (id, company_id, kind, idempotency_key, file_sha256, status,"
            " result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (result["import_id"], company.id, result["kind"], key, sha256, result["status"],
             json.dumps(result), result["created_at"]),
        )

    def get_import(self, company: Company, import_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT result FROM imports WHERE company_id = ? AND id = ?", (company.id, import_id)
        ).fetchone()
        return json.loads(row["result"]) if row else None

    def list_imports(self, company: Company, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT idempotency_key, result FROM imports WHERE company_id = ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (company.id, limit),
        )
        return [{**json.loads(r["result"]), "idempotency_key": r["idempotency_key"]} for r in rows]

    # Documents -----------------------------------------------------------------------------

    def content_hashes(
        self, company: Company, kind: str, identities: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """content_hash of stored documents by (number, counterparty_norm), for those given.

        One query per 500 numbers (not one per document): an import of thousands of documents
        is checked in a handful of round trips."""
        wanted = set(identities)
        numbers = sorted({number for number, _ in wanted})
        found: dict[tuple[str, str], str] = {}
        for start in range(0, len(numbers), 500):
            part = numbers[start:start + 500]
            rows = self.conn.execute(
                "SELECT number, counterparty_norm, content_hash FROM documents"
                " WHERE company_id = ? AND kind = ?"
                f" AND number IN ({', '.join('?' * len(part))})",
                (company.id, kind, *part),
            )
            for row in rows:
                identity = (row["number"], row["counterparty_norm"])
                if identity in wanted:
                    found[identity] = row["content_hash"]
        return found

    def add_documents(self, company: Company, docs: Sequence[StoredDocument], period: str) -> None:
        self.conn.executemany(
            "INSERT INTO documents (company_id, kind, number, counterparty, counterparty_norm,"
            " doc_type, date, currency, total, content_hash, lines, import_id, period)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(company.id, doc.kind, doc.number, doc.counterparty, normalize_name(doc.counterparty),
              doc.doc_type, doc.date, doc.currency, doc.total, doc.content_hash,
              json.dumps(doc.lines), doc.import_id, period) for doc in docs],
        )

    def add_counterparties(self, company: Company, role: str, names: Sequence[str]) -> list[str]:
        """Create the unknown ones; return the names created, in the order given."""
        created = []
        for name in names:
            cursor = self.conn.execute(
                "INSERT INTO counterparties (company_id, role, name, name_norm) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (company.id, role, name, normalize_name(name)),
            )
            if cursor.rowcount:
                created.append(name)
        return created

    def documents(
        self,
        company: Company,
        kind: str | None = None,
        start: date | None = None,
        end: date | None = None,
        *,
        import_id: str | None = None,
        limit: int = -1,
        offset: int = 0,
    ) -> list[sqlite3.Row]:
        where: list[str] = ["company_id = ?"]
        params: list[Any] = [company.id]
        for clause, value in (
            ("kind = ?", kind),
            ("date >= ?", start.isoformat() if start else None),
            ("date <= ?", end.isoformat() if end else None),
            ("import_id = ?", import_id),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        return self.conn.execute(
            "SELECT *, json_array_length(lines) AS line_count,"
            " COUNT(*) OVER (PARTITION BY kind, number, counterparty_norm) AS copies"
            f" FROM documents WHERE {' AND '.join(where)}"
            " ORDER BY kind, date, number, counterparty_norm LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()

    # Control -------------------------------------------------------------------------------

    def log_request(
        self, at: str, method: str, path: str, company: str | None, key: str | None,
        status: int | None, fault: str | None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO requests (at, method, path, company, idempotency_key, status, fault)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, method, path, company, key, status, fault),
        )

    def requests(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT at, method, path, company, idempotency_key, status, fault FROM requests"
            " ORDER BY id"
        )
        return [dict(r) for r in rows]

    def wipe_activity(self, period: str) -> None:
        """Forget imports, documents, counterparties and the request log; keep companies, and
        make each seeded quota count for ``period`` again."""
        for table in ("documents", "counterparties", "imports", "requests"):
            self.conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        self.conn.execute("UPDATE companies SET quota_period = ?", (period,))
