"""Prometheus metrics at /metrics: django-prometheus's request and database metrics, Allumi's own
counters (incremented where the thing happens) and gauges read at scrape time from collectors the
apps register. Under gunicorn set PROMETHEUS_MULTIPROC_DIR so every worker's counters add up.

In production the page needs `Authorization: Bearer <METRICS_TOKEN>` or a scraper address inside
METRICS_ALLOWED_NETWORKS.
"""

import hmac
import ipaddress
import os

import prometheus_client
from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess

from allumi.core.api import error_response

clicks_recorded = prometheus_client.Counter("allumi_clicks_recorded", "Clicks stored in the database", ["kind"])
conversions_recorded = prometheus_client.Counter("allumi_conversions_recorded", "Conversions recorded", ["source"])
webhook_deliveries = prometheus_client.Counter("allumi_webhook_deliveries", "Whop webhook deliveries by outcome", ["outcome"])

_scrape_collectors: list = []


def register_scrape_collector(collector) -> None:
    """A collector whose `collect()` reads current values (queue depth, attribution rate)."""
    _scrape_collectors.append(collector)


def _allowed(request) -> bool:
    if settings.DEBUG and not settings.METRICS_TOKEN:
        return True
    header = request.headers.get("Authorization", "")
    if settings.METRICS_TOKEN and hmac.compare_digest(header, f"Bearer {settings.METRICS_TOKEN}"):
        return True
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics(request):
    if not _allowed(request):
        return error_response("forbidden", "Metrics need the metrics token.", 403)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.CollectorRegistry()
        registry.register(_DefaultRegistry())
    for collector in _scrape_collectors:
        registry.register(collector)
    return HttpResponse(prometheus_client.generate_latest(registry), content_type=prometheus_client.CONTENT_TYPE_LATEST)


class _DefaultRegistry:
    """Everything registered in the process-wide registry, re-exposed next to the scrape gauges."""

    def collect(self):
        yield from prometheus_client.REGISTRY.collect()
