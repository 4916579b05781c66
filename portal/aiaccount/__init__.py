"""The one package that speaks to AiAccount (see docs/aiaccount-api.md). No Flask in here."""
from portal.aiaccount.client import (
    Account,
    AiAccountClient,
    ChangedDocument,
    Company,
    ImportResult,
    RemoteDocument,
)
from portal.aiaccount.errors import CATALOG, AiAccountError
from portal.aiaccount.templates import (
    COLUMNS,
    KINDS,
    LINE_TYPES,
    SYNC_TYPE_KINDS,
    BillLine,
    InvoiceLine,
    PaymentLine,
    ReceiptLine,
)
from portal.aiaccount.xlsx import read_xlsx, write_xlsx

__all__ = [
    "CATALOG", "COLUMNS", "KINDS", "LINE_TYPES", "SYNC_TYPE_KINDS", "Account", "AiAccountClient",
    "AiAccountError", "BillLine", "ChangedDocument", "Company", "ImportResult", "InvoiceLine",
    "PaymentLine", "ReceiptLine", "RemoteDocument", "read_xlsx", "write_xlsx",
]
