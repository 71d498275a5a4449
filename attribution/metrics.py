"""Attribution's gauges, read when Prometheus scrapes: backlog and how well attribution works."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from attribution import buffer
from attribution.models import Conversion

ATTRIBUTION_RATE_WINDOW = timedelta(hours=24)
ATTRIBUTION_RATE_MIN_CONVERSIONS = 20


def attribution_rate(*, since) -> float | None:
    """Share of conversions decided since `since` that found a journey (None when there are none)."""
    counts = dict(
        Conversion.objects.filter(created_at__gte=since)
        .exclude(status=Conversion.Status.PENDING)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    decided = counts.get(Conversion.Status.ATTRIBUTED, 0) + counts.get(Conversion.Status.UNATTRIBUTED, 0)
    return counts.get(Conversion.Status.ATTRIBUTED, 0) / decided if decided else None


class AttributionCollector:
    def collect(self):
        rate = attribution_rate(since=timezone.now() - ATTRIBUTION_RATE_WINDOW)
        gauge = GaugeMetricFamily("allumi_attribution_rate", "Attributed share of conversions decided in the last 24 h")
        if rate is not None:
            gauge.add_metric([], rate)
        yield gauge
        yield GaugeMetricFamily(
            "allumi_conversions_pending", "Conversions waiting for attribution",
            value=Conversion.objects.filter(status=Conversion.Status.PENDING).count(),
        )
        if settings.REDIS_URL:
            client = buffer.client()
            yield GaugeMetricFamily("allumi_click_buffer_depth", "Clicks waiting in Redis", value=client.llen(buffer.CLICK_BUFFER_KEY))
            yield GaugeMetricFamily("allumi_celery_queue_depth", "Tasks waiting in the Celery queue", value=client.llen("celery"))


def attribution_rate_check():
    from allumi.core.alerts import CheckResult

    since = timezone.now() - ATTRIBUTION_RATE_WINDOW
    decided = Conversion.objects.filter(created_at__gte=since).exclude(status=Conversion.Status.PENDING).count()
    if decided < ATTRIBUTION_RATE_MIN_CONVERSIONS:
        return CheckResult(False, None, f"only {decided} conversions decided in 24 h")
    rate = attribution_rate(since=since)
    return CheckResult(rate < settings.ALERT_ATTRIBUTION_RATE, rate, f"{rate:.0%} of {decided} conversions in 24 h found a journey")
