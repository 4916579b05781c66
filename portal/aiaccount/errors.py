"""Typed AiAccount errors: a stable code, a short reason and a fix hint in English and Chinese.

Every failure the client sees, and every failure the portal's pre-flight detects, is an
``AiAccountError`` built from one ``CATALOG`` entry through ``AiAccountError.make``. Views render
it, jobs store ``to_dict()`` and rebuild it with ``from_dict()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CatalogEntry:
    """Texts for one code; ``{detail}`` in ``fix_*`` is filled by make(), else from ``detail_*``."""

    reason_en: str
    reason_zh: str
    fix_en: str
    fix_zh: str
    http_status: int | None = None
    transient: bool = False
    settings_path: str | None = None
    detail_en: str = ""
    detail_zh: str = ""


_ASK_ADMIN_EN = "Ask the NS16 super admin to re-enter the API key and company name"
_ASK_ADMIN_ZH = "请联系 NS16 超级管理员重新输入 API Key 和公司名称"
_RETRY_EN = "Temporary — retry later"
_RETRY_ZH = "临时故障 — 请稍后重试"

CATALOG: dict[str, CatalogEntry] = {
    # Master data (raised by AiAccount and by the portal's pre-flight alike).
    "tax_code_missing": CatalogEntry(
        "Tax code missing or disabled in AiAccount", "AiAccount 中缺少或未启用税码",
        "AiAccount → Settings → Tax Codes: add {detail}", "AiAccount → 设置 → 税码：添加 {detail}",
        422, settings_path="settings/tax-codes", detail_en="the tax code", detail_zh="该税码"),
    "currency_not_enabled": CatalogEntry(
        "Currency not enabled in AiAccount", "AiAccount 中未启用该货币",
        "AiAccount → Settings → Currencies: enable {detail}",
        "AiAccount → 设置 → 货币：启用 {detail}",
        422, settings_path="settings/currencies", detail_en="the currency", detail_zh="该货币"),
    "account_missing": CatalogEntry(
        "Account missing or not allowed for this use", "AiAccount 中缺少该科目或用途不符",
        "AiAccount → Settings → Accounts: add {detail} or allow it for this use",
        "AiAccount → 设置 → 科目：添加 {detail} 或允许其用于此用途",
        422, settings_path="settings/accounts", detail_en="the account", detail_zh="该科目"),
    "period_locked": CatalogEntry(
        "The accounting period is locked", "会计期间已锁定",
        "AiAccount → Settings → Lock Date: unlock the period up to {detail}, or sync later dates",
        "AiAccount → 设置 → 锁账日期：解锁至 {detail} 的期间，或同步较晚的日期",
        422, settings_path="settings/lock-date", detail_en="the lock date", detail_zh="锁账日期"),
    "before_incorporation": CatalogEntry(
        "Dated before the company's incorporation date", "日期早于公司成立日期",
        "AiAccount → Settings → Company: check the incorporation date ({detail}), "
        "or sync later dates",
        "AiAccount → 设置 → 公司：检查成立日期（{detail}），或同步较晚的日期",
        422, settings_path="settings/company", detail_en="incorporation date",
        detail_zh="成立日期"),
    "quota_exceeded": CatalogEntry(
        "AiAccount plan quota exceeded this month", "本月 AiAccount 套餐额度已用完",
        "Upgrade your AiAccount plan ({detail})", "请升级 AiAccount 套餐（{detail}）",
        402, settings_path="settings/subscription", detail_en="trial: 100 documents a month",
        detail_zh="试用版：每月 100 张单据"),
    # Credentials.
    "invalid_api_key": CatalogEntry(
        "AiAccount rejected the API key", "AiAccount 拒绝了 API Key",
        _ASK_ADMIN_EN, _ASK_ADMIN_ZH, 401),
    "company_mismatch": CatalogEntry(
        "The API key belongs to another company", "API Key 属于另一家公司",
        _ASK_ADMIN_EN, _ASK_ADMIN_ZH, 403),
    "write_permission_denied": CatalogEntry(
        "The API key is read-only", "API Key 为只读",
        "AiAccount → Settings → API Keys: create a key with write permission, then ask the "
        "NS16 super admin to enter it",
        "AiAccount → 设置 → API Keys：创建有写入权限的 Key，再请 NS16 超级管理员输入",
        403, settings_path="settings/api-keys"),
    "not_connected": CatalogEntry(
        "AiAccount is not connected", "尚未连接 AiAccount",
        "Ask the NS16 super admin to enter your AiAccount API key and company name",
        "请联系 NS16 超级管理员输入您的 AiAccount API Key 和公司名称"),
    # Transient.
    "rate_limited": CatalogEntry(
        "AiAccount is rate limiting requests", "AiAccount 请求过于频繁",
        _RETRY_EN, _RETRY_ZH, 429, transient=True),
    "server_error": CatalogEntry(
        "AiAccount server error", "AiAccount 服务器错误", _RETRY_EN, _RETRY_ZH, 500,
        transient=True),
    "timeout": CatalogEntry(
        "AiAccount did not answer in time", "AiAccount 响应超时", _RETRY_EN, _RETRY_ZH,
        transient=True),
    "connection_error": CatalogEntry(
        "Could not reach AiAccount", "无法连接 AiAccount", _RETRY_EN, _RETRY_ZH,
        transient=True),
    # The file or the request.
    "validation_failed": CatalogEntry(
        "AiAccount rejected rows of the file", "AiAccount 拒绝了文件中的部分行",
        "Fix the rows listed ({detail}) and sync again", "请修正所列的行（{detail}）后重新同步",
        422, detail_en="see row errors", detail_zh="见行错误"),
    "missing_columns": CatalogEntry(
        "The import file lacks required columns", "导入文件缺少必需的列",
        "Report to NS16 support: the file template is out of date ({detail})",
        "请联系 NS16 客服：文件模板已过期（{detail}）",
        422, detail_en="missing columns", detail_zh="缺少的列"),
    "invalid_file": CatalogEntry(
        "AiAccount could not read the import file", "AiAccount 无法读取导入文件",
        "Report to NS16 support", "请联系 NS16 客服", 400),
    "file_too_large": CatalogEntry(
        "The import file is too large", "导入文件过大",
        "Sync a shorter date range", "请缩短同步的日期范围", 413),
    "idempotency_conflict": CatalogEntry(
        "The push key was already used for a different file", "推送密钥已用于另一个文件",
        "Sync again (a new push gets a new key)", "请重新同步（新的推送会使用新的密钥）", 409),
    "import_not_found": CatalogEntry(
        "AiAccount does not know this import", "AiAccount 中找不到此导入记录",
        "Sync again", "请重新同步", 404),
    "bad_response": CatalogEntry(
        "AiAccount sent an unexpected response", "AiAccount 返回了无法识别的响应",
        "Retry later; if it persists, report to NS16 support",
        "请稍后重试；如持续出现，请联系 NS16 客服"),
    "reference_missing": CatalogEntry(
        "Documents refer to ones not yet in AiAccount", "单据引用了尚未导入 AiAccount 的单据",
        "Sync {detail} first, then sync this again",
        "请先同步{detail}，然后再同步此项",
        422, detail_en="the invoices or bills", detail_zh="发票或账单"),
    # Raised by the portal itself around a push (same shape, so pills and logs treat them alike).
    "settings_missing": CatalogEntry(
        "AiAccount settings are not set up for this shop", "尚未为此店铺设置 AiAccount 参数",
        "Ask the NS16 super admin to save your AiAccount settings",
        "请联系 NS16 超级管理员保存您的 AiAccount 设置"),
    "credential_unreadable": CatalogEntry(
        "The stored API key can no longer be read", "已保存的 API Key 无法读取",
        _ASK_ADMIN_EN, _ASK_ADMIN_ZH),
    "worker_lost": CatalogEntry(
        "The sync stopped before it finished", "同步在完成前中断",
        "Sync again — documents already in AiAccount are skipped, never duplicated",
        "请重新同步 — 已在 AiAccount 中的单据会被跳过，不会重复", transient=True),
    "queue_unavailable": CatalogEntry(
        "The sync queue is not reachable", "同步队列无法连接",
        _RETRY_EN, _RETRY_ZH, transient=True),
    "internal_error": CatalogEntry(
        "The sync failed inside NS16", "同步在 NS16 内部出错",
        "Retry later; if it persists, report to NS16 support",
        "请稍后重试；如持续出现，请联系 NS16 客服", transient=True),
}


class AiAccountError(Exception):
    """A failure talking to AiAccount (or found before talking to it), with user-facing texts."""

    def __init__(
        self,
        code: str,
        *,
        reason_en: str,
        reason_zh: str,
        fix_en: str,
        fix_zh: str,
        transient: bool = False,
        http_status: int | None = None,
        details: list[dict[str, Any]] | dict[str, Any] | None = None,
        retry_after: float | None = None,
        settings_path: str | None = None,
        message: str = "",
    ) -> None:
        super().__init__(code)
        self.code = code
        self.reason_en = reason_en
        self.reason_zh = reason_zh
        self.fix_en = fix_en
        self.fix_zh = fix_zh
        self.transient = transient
        self.http_status = http_status
        self.details: list[dict[str, Any]] | dict[str, Any] = (
            details if details is not None else []
        )
        self.retry_after = retry_after
        self.settings_path = settings_path
        self.message = message  # AiAccount's own message (or ours), shown on hover

    @classmethod
    def make(cls, code: str, detail: str | None = None, **kw: Any) -> AiAccountError:
        """Build the error for ``code`` from the CATALOG; ``detail`` fills the fix hint.

        Keyword arguments override the catalog (e.g. ``http_status``, ``details``, ``message``).
        """
        try:
            entry = CATALOG[code]
        except KeyError:
            raise ValueError(f"unknown AiAccount error code {code!r}") from None
        fields: dict[str, Any] = {
            "reason_en": entry.reason_en,
            "reason_zh": entry.reason_zh,
            "fix_en": entry.fix_en.format(detail=detail or entry.detail_en),
            "fix_zh": entry.fix_zh.format(detail=detail or entry.detail_zh),
            "transient": entry.transient,
            "http_status": entry.http_status,
            "settings_path": entry.settings_path,
        }
        fields.update(kw)
        return cls(code, **fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "reason_en": self.reason_en,
            "reason_zh": self.reason_zh,
            "fix_en": self.fix_en,
            "fix_zh": self.fix_zh,
            "transient": self.transient,
            "http_status": self.http_status,
            "details": self.details,
            "retry_after": self.retry_after,
            "settings_path": self.settings_path,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AiAccountError:
        fields = dict(data)
        return cls(fields.pop("code"), **fields)

    def __str__(self) -> str:
        text = f"{self.code}: {self.reason_en}"
        return f"{text} — {self.message}" if self.message else text

    def __repr__(self) -> str:
        return (
            f"AiAccountError(code={self.code!r}, http_status={self.http_status!r}, "
            f"transient={self.transient!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (AiAccountError.from_dict, (self.to_dict(),))
