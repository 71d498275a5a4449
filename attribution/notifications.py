"""The creator's emails about their own figures: conversion alerts and the weekly report.

They live here, not in accounts, because they read conversions and reports (accounts may not import
attribution); accounts renders, logs, sends and honours the opt-outs.

Conversion alerts are batched: the first conversion of a creator who wants alerts opens a window
(an EmailBatch; the database lets only one be open), later ones fall into it, and the periodic
`send_conversion_alerts` task closes windows older than CONVERSION_ALERT_WINDOW_MINUTES and sends
one email listing everything the window caught. Fifty sales in a minute: one email.
"""

import logging
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from allumi.accounts.emails import email_batch_close, email_batch_open, email_batches_due, email_send
from allumi.accounts.models import Creator, EmailLog
from attribution.models import AttributionModel, AttributionSettings, Conversion, Credit
from attribution.reports import kpis, period_for, top_links

logger = logging.getLogger(__name__)

ALERT_MAX_LISTED = 50
REPORT_TOP_LINKS = 5
_REPORT_FIGURES = ("clicks", "conversions", "revenue")


def _default_model(creator: Creator) -> str:
    # An unsaved row carries the defaults for creators who never opened their settings.
    return (AttributionSettings.objects.filter(creator_id=creator.id).first() or AttributionSettings()).default_model


def _model_label(model: str) -> str:
    return AttributionModel(model).label


# --- conversion alerts --------------------------------------------------------------------------


def conversion_alert_schedule(*, conversion: Conversion) -> None:
    """Put a new conversion in its creator's alert window, opening one if none is open."""
    if not conversion.creator.conversion_alerts:
        return
    email_batch_open(creator=conversion.creator, kind=EmailLog.Kind.CONVERSION_ALERT, opened_at=conversion.created_at)


def conversion_alerts_due() -> list[int]:
    window = timedelta(minutes=settings.CONVERSION_ALERT_WINDOW_MINUTES)
    return email_batches_due(kind=EmailLog.Kind.CONVERSION_ALERT, window=window)


def conversion_alert_send(*, batch_id: int) -> list[EmailLog]:
    """Close the window and email the conversions it caught; nothing if a twin task closed it, or
    if the creator turned alerts off meanwhile (accounts checks that)."""
    with transaction.atomic():
        batch = email_batch_close(batch_id=batch_id)
        if batch is None:
            return []
        creator = batch.creator
        conversions = Conversion.objects.filter(
            creator=creator, created_at__gte=batch.opened_at, created_at__lte=batch.closed_at
        ).order_by("created_at", "id")
        count = conversions.count()
        if not count:
            return []
        listed = list(conversions[:ALERT_MAX_LISTED])
        model = _default_model(creator)
        top_credit = {}
        for credit in Credit.objects.filter(conversion__in=listed, model=model).select_related("link").order_by("weight"):
            top_credit[credit.conversion_id] = credit  # ascending weight: the heaviest is kept
        revenue: dict[str, Decimal] = defaultdict(Decimal)
        for currency, amount in conversions.exclude(amount=None).values_list("currency", "amount"):
            revenue[currency] += amount
        rows = [{"conversion": conversion, "link": getattr(top_credit.get(conversion.id), "link", None)} for conversion in listed]
        return email_send(
            to=creator.email,
            template="attribution/email/conversion_alert",
            context={
                "creator": creator, "count": count, "rows": rows, "more": count - len(listed),
                "revenue": sorted(revenue.items()), "model_label": _model_label(model),
                "conversions_url": settings.SITE_URL + reverse("reports:conversions"),
            },
            kind=EmailLog.Kind.CONVERSION_ALERT,
            creator=creator,
        )


# --- the weekly report --------------------------------------------------------------------------


def weekly_reports_due(*, today: date) -> list[int]:
    """Creators whose report goes out today: active, confirmed, opted in, and today is their day."""
    return list(
        Creator.objects.filter(
            is_active=True, email_confirmed_at__isnull=False, weekly_report=True, weekly_report_weekday=today.weekday()
        )
        .order_by("id")
        .values_list("id", flat=True)
    )


def weekly_report_figures(*, creator: Creator, today: date) -> dict:
    """The seven whole days (UTC) before `today`, against the seven before those."""
    period = period_for("custom", start=today - timedelta(days=7), end=today - timedelta(days=1))
    model = _default_model(creator)
    figures = {row["key"]: row for row in kpis(creator=creator, period=period, model=model) if row["key"] in _REPORT_FIGURES}
    return {
        "start": period.start.date(),
        "end": (period.end - timedelta(days=1)).date(),
        "figures": [figures[key] for key in _REPORT_FIGURES],
        "totals": figures,
        "top_links": top_links(creator=creator, period=period, model=model, limit=REPORT_TOP_LINKS),
        "model_label": _model_label(model),
        "currency": creator.currency,
    }


def weekly_report_send(*, creator_id: int, today: date) -> list[EmailLog]:
    """Email a creator's weekly report, once per ISO week (the email log's dedupe key), and not at
    all for a creator with nothing this week or last (no clicks, no conversions, no revenue)."""
    creator = Creator.objects.filter(pk=creator_id, is_active=True).first()
    if creator is None:
        return []
    report = weekly_report_figures(creator=creator, today=today)
    if not any(row["value"] or row["previous"] for row in report["figures"]):
        logger.info("no weekly report for creator %s: nothing happened in two weeks", creator.pk)
        return []
    year, week, _ = today.isocalendar()
    return email_send(
        to=creator.email,
        template="attribution/email/weekly_report",
        context={"creator": creator, **report, "overview_url": settings.SITE_URL + reverse("reports:overview")},
        kind=EmailLog.Kind.WEEKLY_REPORT,
        creator=creator,
        dedupe_key=f"weekly_report:{year}-W{week:02d}",
    )
