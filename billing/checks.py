"""Billing's alert check: a payment delivery Allumi failed to process is revenue missing."""

from datetime import timedelta

from django.utils import timezone

from allumi.core.alerts import CheckResult
from billing.models import WhopEvent

WINDOW = timedelta(hours=1)


def webhook_failures_check() -> CheckResult:
    failed = WhopEvent.objects.filter(status=WhopEvent.Status.FAILED, received_at__gte=timezone.now() - WINDOW).count()
    return CheckResult(failed > 0, failed, f"{failed} Whop deliveries failed processing in the last hour")
