"""Forms (flask-wtf, CSRF on every one)."""
from __future__ import annotations

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

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

    start = DateField(_l("Start date"), validators=[DataRequired(message=_l("Pick a start date."))])
    end = DateField(_l("End date"), validators=[DataRequired(message=_l("Pick an end date."))])

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
