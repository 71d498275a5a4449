"""Alert checks: each app registers checks; a periodic task runs them, and an alert emails the
operators and goes to Sentry once when it starts firing and once when it recovers.

Request figures (error rate, p95 latency) come from RequestStatsMiddleware, which counts in memory
and adds to per-minute buckets in Redis every few seconds, so the hot path pays no round trip.
"""

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection
from django.utils import timezone

from allumi.core.redis_client import shared_redis

logger = logging.getLogger(__name__)

_BUCKET_TTL = 3600
_FLUSH_SECONDS = 5.0
_MAX_SAMPLES_PER_FLUSH = 200


@dataclass
class CheckResult:
    firing: bool
    value: float | None
    message: str


_checks: dict[str, Callable[[], CheckResult]] = {}


def register_check(name: str, check: Callable[[], CheckResult]) -> None:
    _checks[name] = check


def registered_checks() -> dict[str, Callable[[], CheckResult]]:
    return dict(_checks)


# --- request statistics -----------------------------------------------------------------------


class _Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        self.flushed_at = time.monotonic()

    def reset(self):
        self.requests = 0
        self.errors = 0
        self.samples: list[float] = []


_stats = _Stats()
_local_buckets: dict[int, dict] = {}  # without Redis (one process), buckets live here


def _minute(now: float | None = None) -> int:
    return int((now or time.time()) // 60)


def flush_request_stats() -> None:
    with _stats.lock:
        requests, errors, samples = _stats.requests, _stats.errors, _stats.samples[:_MAX_SAMPLES_PER_FLUSH]
        _stats.reset()
        _stats.flushed_at = time.monotonic()
    if not requests:
        return
    minute = _minute()
    client = shared_redis()
    if client is None:
        bucket = _local_buckets.setdefault(minute, {"requests": 0, "errors": 0, "latency": []})
        bucket["requests"] += requests
        bucket["errors"] += errors
        bucket["latency"].extend(samples)
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.hincrby(f"allumi:stats:{minute}", "requests", requests)
            pipe.hincrby(f"allumi:stats:{minute}", "errors", errors)
            pipe.expire(f"allumi:stats:{minute}", _BUCKET_TTL)
            if samples:
                pipe.rpush(f"allumi:latency:{minute}", *samples)
                pipe.expire(f"allumi:latency:{minute}", _BUCKET_TTL)
            pipe.execute()
    except Exception as error:  # statistics must never break a request
        logger.warning("could not store request statistics: %r", error)


def record_request(*, seconds: float, status: int) -> None:
    with _stats.lock:
        _stats.requests += 1
        if status >= 500:
            _stats.errors += 1
        if len(_stats.samples) < _MAX_SAMPLES_PER_FLUSH * 5:
            _stats.samples.append(round(seconds * 1000, 2))
        due = time.monotonic() - _stats.flushed_at >= _FLUSH_SECONDS
    if due:
        flush_request_stats()


class RequestStatsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        except Exception:
            record_request(seconds=time.perf_counter() - started, status=500)
            raise
        record_request(seconds=time.perf_counter() - started, status=response.status_code)
        return response


def request_stats(*, minutes: int) -> dict:
    """Requests, errors and p95 latency (ms) over the last `minutes` whole-or-current minutes."""
    now = _minute()
    requests = errors = 0
    latencies: list[float] = []
    client = shared_redis()
    for minute in range(now - minutes + 1, now + 1):
        if client is None:
            bucket = _local_buckets.get(minute, {})
            requests += bucket.get("requests", 0)
            errors += bucket.get("errors", 0)
            latencies += bucket.get("latency", [])
            continue
        counts = client.hgetall(f"allumi:stats:{minute}")
        requests += int(counts.get(b"requests", 0))
        errors += int(counts.get(b"errors", 0))
        latencies += [float(value) for value in client.lrange(f"allumi:latency:{minute}", 0, -1)]
    p95 = None
    if latencies:
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)]
    return {"requests": requests, "errors": errors, "p95_ms": p95}


# --- the core checks --------------------------------------------------------------------------


def _error_rate() -> CheckResult:
    stats = request_stats(minutes=settings.ALERT_WINDOW_MINUTES)
    if stats["requests"] < settings.ALERT_MIN_REQUESTS:
        return CheckResult(False, None, f"only {stats['requests']} requests in the window")
    rate = stats["errors"] / stats["requests"]
    return CheckResult(rate > settings.ALERT_ERROR_RATE, rate, f"{rate:.2%} of {stats['requests']} requests failed (5xx)")


def _latency() -> CheckResult:
    stats = request_stats(minutes=settings.ALERT_WINDOW_MINUTES)
    if stats["p95_ms"] is None or stats["requests"] < settings.ALERT_MIN_REQUESTS:
        return CheckResult(False, stats["p95_ms"], "not enough requests in the window")
    return CheckResult(stats["p95_ms"] > settings.ALERT_P95_MS, stats["p95_ms"], f"p95 latency {stats['p95_ms']:.0f} ms")


def _database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return CheckResult(True, None, f"database connection failed: {error.__class__.__name__}")
    return CheckResult(False, None, "database answers")


register_check("error_rate", _error_rate)
register_check("latency_p95", _latency)
register_check("database", _database)


# --- running them -----------------------------------------------------------------------------


# The app that owns outgoing email (accounts: logged, sent from Celery with retries) registers
# itself here; core cannot import it. Without one, or when it fails, alerts are sent directly.
_operator_mailer: Callable[[str, str], None] | None = None


def register_operator_mailer(mailer: Callable[[str, str], None]) -> None:
    global _operator_mailer
    _operator_mailer = mailer


def _email_operators(subject: str, body: str) -> None:
    if _operator_mailer is not None:
        try:
            _operator_mailer(subject, body)
            return
        except Exception as error:  # an alert must still go out when the email log cannot be written
            logger.warning("operator mailer failed, sending the alert directly: %r", error)
    send_mail(subject=subject, message=body, from_email=None, recipient_list=settings.OPERATOR_EMAILS)


def _notify(subject: str, body: str) -> None:
    if settings.OPERATOR_EMAILS:
        _email_operators(subject, body)
    if settings.SENTRY_DSN:
        import sentry_sdk

        sentry_sdk.capture_message(f"{subject}: {body}", level="error" if "FIRING" in subject else "info")


def alerts_check() -> dict[str, bool]:
    """Run every registered check; announce changes of state. Returns name -> firing."""
    from allumi.core.models import Alert

    flush_request_stats()
    states = {}
    for name, check in registered_checks().items():
        try:
            result = check()
        except Exception as error:  # a broken check is itself worth an alert
            result = CheckResult(True, None, f"the check itself failed: {error!r}")
        alert, _ = Alert.objects.get_or_create(name=name)
        if result.firing and not alert.firing:
            alert.since = timezone.now()
            _notify(f"[Allumi] FIRING: {name}", result.message)
        elif not result.firing and alert.firing:
            _notify(f"[Allumi] RESOLVED: {name}", f"{result.message} (firing since {alert.since:%Y-%m-%d %H:%M} UTC)")
            alert.since = None
        alert.firing = result.firing
        alert.last_value = result.value
        alert.last_message = result.message[:1000]
        alert.last_checked_at = timezone.now()
        alert.save()
        states[name] = result.firing
    return states


@shared_task(name="allumi.core.alerts.check_alerts", ignore_result=True, soft_time_limit=50, time_limit=60)
def check_alerts() -> dict:
    return alerts_check()
