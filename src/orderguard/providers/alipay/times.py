"""Alipay's clock and how it writes a time: a leaf module (standard library only), so that
the sandbox writes times as Alipay does without importing the adapter's mapping and what
that reaches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

#: Alipay's clock: Beijing time, UTC+8 all year.
BEIJING = timezone(timedelta(hours=8), "CST")
#: How Alipay writes a time (``timestamp``, ``time_expire``, ``send_pay_date``, ...).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def beijing_time(value: object) -> datetime | None:
    """An Alipay time (Beijing) as an aware UTC datetime; ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.strptime(str(value), TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)
    except ValueError:
        return None


def alipay_time(moment: datetime) -> str:
    """An aware datetime as Alipay writes it (Beijing time)."""
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)
