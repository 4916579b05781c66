"""Forms (flask-wtf, CSRF on every one)."""
from __future__ import annotations

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp, ValidationError

from .models import SYNC_TYPES
from .timeutil import myt_today

MAX_RANGE_DAYS = 366
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[
        DataRequired(), Length(max=255), Regexp(EMAIL_PATTERN, message=_l("Enter an email address."))])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=200)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=200)])


class DateRangeForm(FlaskForm):
    """Start / end dates (MYT days). Used by Sync, Preview and Download."""

    start = DateField(_l("Start date"), validators=[InputRequired(message=_l("Pick a start date."))],
                      invalid_value_message=_l("Enter the date as YYYY-MM-DD."))
    end = DateField(_l("End date"), validators=[InputRequired(message=_l("Pick an end date."))],
                    invalid_value_message=_l("Enter the date as YYYY-MM-DD."))

    def validate_end(self, field):
        start, end = self.start.data, field.data
        if start is None or end is None:
            return
        if end < start:
            raise ValidationError(_l("The end date is before the start date."))
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValidationError(_l("Pick at most %(days)d days.", days=MAX_RANGE_DAYS))
        if end > myt_today():
            raise ValidationError(_l("The end date is in the future."))

    def validate_start(self, field):
        if field.data is not None and field.data > myt_today():
            raise ValidationError(_l("The start date is in the future."))

    @staticmethod
    def default_range(today: date | None = None) -> tuple[date, date]:
        """First day of this month → yesterday (MYT); on the 1st, the previous month."""
        today = today or myt_today()
        yesterday = today - timedelta(days=1)
        return yesterday.replace(day=1), yesterday


def validate_sync_type(value: str) -> str:
    if value not in SYNC_TYPES:
        raise ValueError(value)
    return value


# --- super admin forms ---
from operator import attrgetter  # noqa: E402 - kept with the admin forms they serve

from wtforms import SelectChoice  # noqa: E402

from .aiaccount import AiAccountError, Company  # noqa: E402
from .connections import error_texts  # noqa: E402
from .credentials import clean_api_key  # noqa: E402

MAX_KEY_LENGTH = 200
CURRENCY_PATTERN = r"^[A-Z]{3}$"
CODE_PATTERN = r"^[A-Za-z0-9-]{1,32}$"
ACCOUNT_PATTERN = r"^[0-9A-Za-z-]{1,20}$"
# Which AiAccount account usages each account setting may have (docs/aiaccount-api.md §2).
ACCOUNT_USES = {
    "sales_account": ("sales",),
    "rounding_account": ("sales",),
    "expense_account": ("expense",),
    "bank_account": ("receipt", "payment"),
    "account_cash": ("receipt",),
    "account_card": ("receipt",),
    "account_tng": ("receipt",),
    "account_grabpay": ("receipt",),
    "account_duitnow": ("receipt",),
}
SETTINGS_FIELDS = (
    "currency", "tax_code_none", "tax_code_sst", *ACCOUNT_USES,
    "walk_in_customer", "auto_push_enabled", "auto_push_hour",
)
_LABELS = {
    "currency": _l("Currency"),
    "tax_code_none": _l("Tax code, untaxed sales"),
    "tax_code_sst": _l("Tax code, SST sales"),
    "sales_account": _l("Sales account"),
    "rounding_account": _l("Rounding account"),
    "expense_account": _l("KOL commission expense account"),
    "bank_account": _l("Bank account"),
    "account_cash": _l("Cash account"),
    "account_card": _l("Card account"),
    "account_tng": _l("TnG eWallet account"),
    "account_grabpay": _l("GrabPay account"),
    "account_duitnow": _l("DuitNow account"),
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class SearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search changes nothing

    q = StringField(_l("Search"), filters=[_strip], validators=[Length(max=100)])


class ConfirmForm(FlaskForm):
    """No fields: a POST carrying the CSRF token confirms the action."""


class CredentialForm(FlaskForm):
    api_key = PasswordField(_l("API key"), validators=[DataRequired(message=_l("Enter the API key."))])
    company_name = StringField(_l("Company name in AiAccount"), filters=[_strip], validators=[
        DataRequired(message=_l("Enter the company name.")), Length(max=200)])
    spaces_removed = False

    def validate_api_key(self, field):
        field.data, self.spaces_removed = clean_api_key(field.data)
        if len(field.data) > MAX_KEY_LENGTH:
            raise ValidationError(_l("The key is longer than %(max)d characters.", max=MAX_KEY_LENGTH))
        if any(ch.isspace() for ch in field.data):
            raise ValidationError(_l("The key has spaces or line breaks inside. Copy it again from AiAccount."))
        if not all(33 <= ord(ch) <= 126 for ch in field.data):
            raise ValidationError(_l("The key may hold only letters, digits and punctuation. Copy it again "
                                     "from AiAccount."))


def _code_field(name: str) -> StringField:
    return StringField(_LABELS[name], filters=[_strip], validators=[
        DataRequired(), Regexp(CODE_PATTERN, message=_l("Letters, digits and '-', at most 32."))])


def _account_field(name: str) -> StringField:
    return StringField(_LABELS[name], filters=[_strip], validators=[
        DataRequired(),
        Regexp(ACCOUNT_PATTERN, message=_l("An account number: letters, digits and '-', at most 20."))])


class SettingsForm(FlaskForm):
    """A blogger's AiAccount settings, typed by hand (no master data fetched yet)."""

    currency = StringField(_LABELS["currency"], filters=[_strip], validators=[
        DataRequired(), Regexp(CURRENCY_PATTERN, message=_l("Three capital letters, e.g. MYR."))])
    tax_code_none = _code_field("tax_code_none")
    tax_code_sst = _code_field("tax_code_sst")
    sales_account = _account_field("sales_account")
    rounding_account = _account_field("rounding_account")
    expense_account = _account_field("expense_account")
    bank_account = _account_field("bank_account")
    account_cash = _account_field("account_cash")
    account_card = _account_field("account_card")
    account_tng = _account_field("account_tng")
    account_grabpay = _account_field("account_grabpay")
    account_duitnow = _account_field("account_duitnow")
    walk_in_customer = StringField(_l("Walk-in customer name"), filters=[_strip],
                                   validators=[DataRequired(), Length(max=120)])
    auto_push_enabled = BooleanField(_l("Auto-push yesterday's data every day"))
    auto_push_hour = SelectField(_l("Auto-push hour (MYT)"), coerce=int,
                                 choices=[SelectChoice(hour, f"{hour:02d}:00") for hour in range(24)])


def master_choices(company: Company) -> dict[str, list[SelectChoice]]:
    """Choices per settings field from the company's AiAccount master data."""
    tax_codes = [SelectChoice(code, f"{code} ({rate}%)") for code, rate in sorted(company.tax_codes.items())]
    accounts = sorted(company.accounts.values(), key=attrgetter("number"))
    choices = {
        "currency": [SelectChoice(code) for code in sorted(company.currencies)],
        "tax_code_none": tax_codes,
        "tax_code_sst": tax_codes,
    }
    for name, uses in ACCOUNT_USES.items():
        choices[name] = [SelectChoice(a.number, f"{a.number} — {a.name}") for a in accounts
                         if any(getattr(a, use) for use in uses)]
    return choices


class InMasterData:
    """The value is in the company's master data; else the error names the AiAccount setting to fix."""

    def __init__(self, code: str):
        self.code = code  # the AiAccount error code whose fix hint applies

    def __call__(self, form, field):
        if field.data not in form.allowed[field.name]:
            reason, fix = error_texts(AiAccountError.make(self.code, detail=field.data))
            raise ValidationError(f"{reason}. {fix}.")


def _choice_field(name: str, code: str) -> SelectField:
    return SelectField(_LABELS[name], validate_choice=False, validators=[DataRequired(), InMasterData(code)])


class CompanySettingsForm(SettingsForm):
    """The same settings, chosen from the company's AiAccount master data."""

    currency = _choice_field("currency", "currency_not_enabled")
    tax_code_none = _choice_field("tax_code_none", "tax_code_missing")
    tax_code_sst = _choice_field("tax_code_sst", "tax_code_missing")
    sales_account = _choice_field("sales_account", "account_missing")
    rounding_account = _choice_field("rounding_account", "account_missing")
    expense_account = _choice_field("expense_account", "account_missing")
    bank_account = _choice_field("bank_account", "account_missing")
    account_cash = _choice_field("account_cash", "account_missing")
    account_card = _choice_field("account_card", "account_missing")
    account_tng = _choice_field("account_tng", "account_missing")
    account_grabpay = _choice_field("account_grabpay", "account_missing")
    account_duitnow = _choice_field("account_duitnow", "account_missing")

    def __init__(self, company: Company, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed = {}
        for name, choices in master_choices(company).items():
            field = self[name]
            self.allowed[name] = {choice.value for choice in choices}
            if field.data and field.data not in self.allowed[name]:
                # Keep a saved value the company lacks visible (and refused) instead of silently replacing it.
                missing = _l("%(value)s (not in AiAccount)", value=field.data)
                choices = [*choices, SelectChoice(field.data, missing)]
            field.choices = choices


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # GET filters change nothing

    blogger = SelectField(_l("Blogger"), default="")
    entity_type = SelectField(_l("Type"), default="")
    date_from = DateField(_l("From (MYT)"), validators=[Optional()])
    date_to = DateField(_l("To (MYT)"), validators=[Optional()])

    def validate_date_to(self, field):
        if self.date_from.data and field.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))
