"""Alert checks: thresholds, one notice per incident and one on recovery."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from allumi.core import alerts
from allumi.core.models import Alert
from allumi.core.redis_client import shared_redis
from attribution.models import Conversion
from billing.models import WhopEvent
from billing.services import whop_connection_create


def _forget_request_stats():
    alerts._local_buckets.clear()
    alerts._stats.reset()
    client = shared_redis()
    if client is not None:
        for key in client.scan_iter("allumi:stats:*"):
            client.delete(key)
        for key in client.scan_iter("allumi:latency:*"):
            client.delete(key)


@pytest.fixture(autouse=True)
def _operators(settings):
    settings.OPERATOR_EMAILS = ["ops@allumi.example"]
    settings.ALERT_MIN_REQUESTS = 10
    _forget_request_stats()
    yield
    _forget_request_stats()


def _traffic(requests: int, errors: int = 0, seconds: float = 0.01):
    for n in range(requests):
        alerts.record_request(seconds=seconds, status=500 if n < errors else 200)
    alerts.flush_request_stats()


def _check():
    # Alert emails are queued on commit, which a test's transaction never reaches: run that work here.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return alerts.alerts_check()


def _subjects():
    return [message.subject for message in mail.outbox]


def test_an_error_rate_above_one_percent_fires_once_and_recovers_once(db):
    _traffic(100, errors=5)

    assert _check()["error_rate"] is True
    _check()  # still firing: no second email
    assert _subjects() == ["[Allumi] FIRING: error_rate"]
    assert Alert.objects.get(name="error_rate").firing

    _forget_request_stats()
    _traffic(200)
    assert _check()["error_rate"] is False
    assert _subjects() == ["[Allumi] FIRING: error_rate", "[Allumi] RESOLVED: error_rate"]
    assert mail.outbox[0].to == ["ops@allumi.example"]


def test_a_slow_p95_fires(db):
    _traffic(50, seconds=0.005)
    _traffic(10, seconds=2.5)

    assert _check()["latency_p95"] is True
    assert Alert.objects.get(name="latency_p95").last_value == 2500.0


def test_little_traffic_never_fires(db):
    _traffic(3, errors=3)

    assert _check()["error_rate"] is False
    assert mail.outbox == []


def test_a_failed_payment_delivery_fires(alice):
    connection = whop_connection_create(creator=alice)
    WhopEvent.objects.create(
        endpoint=f"creator:{alice.id}", connection=connection, webhook_id="msg_1", event_type="payment.succeeded",
        body="{}", status=WhopEvent.Status.FAILED,
    )

    assert _check()["payment_webhook_failures"] is True
    assert "[Allumi] FIRING: payment_webhook_failures" in _subjects()


def test_a_low_attribution_rate_fires(alice):
    now = timezone.now()
    for n in range(25):
        Conversion.objects.create(
            creator=alice, event="purchase", source="track", occurred_at=now - timedelta(minutes=n),
            status=Conversion.Status.ATTRIBUTED if n < 10 else Conversion.Status.UNATTRIBUTED,
        )

    assert _check()["attribution_rate"] is True
    assert Alert.objects.get(name="attribution_rate").last_value == pytest.approx(10 / 25)


def test_a_lost_database_fires(db, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise OSError("connection refused")

    monkeypatch.setattr(alerts, "connection", Unreachable())

    assert alerts._database().firing is True


def test_requests_are_counted_by_the_middleware(client, db):
    for _ in range(3):
        client.get("/healthz")
    alerts.flush_request_stats()

    assert alerts.request_stats(minutes=1)["requests"] >= 3
