"""Sentry for server and Celery errors and performance, only when SENTRY_DSN is set.

Personal data never leaves: `scrub` removes emails, addresses, keys, cookies and request bodies
(webhook bodies included) from every event before it is sent.
"""

import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_KEY = re.compile(r"\b(?:sk|pk)_live_[A-Za-z0-9]+|\bws_[A-Za-z0-9_-]{8,}|whsec_[A-Za-z0-9+/=_-]+")
_SENSITIVE_HEADERS = {"authorization", "cookie", "x-allumi-key", "x-forwarded-for", "x-real-ip", "webhook-signature", "x-whop-signature"}
FILTERED = "[Filtered]"


def _scrub_text(value: str) -> str:
    return _IPV4.sub(FILTERED, _EMAIL.sub(FILTERED, _KEY.sub(FILTERED, value)))


def _scrub(value):
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {key: (FILTERED if str(key).lower() in _SENSITIVE_HEADERS else _scrub(item)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def scrub(event, hint=None):
    """before_send: drop bodies, cookies and the user; mask emails, IPs and keys everywhere else."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        request.pop("env", None)
    event.pop("user", None)
    return _scrub(event)


def sentry_init(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.redis import RedisIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        integrations=[DjangoIntegration(), CeleryIntegration(), RedisIntegration()],
        before_send=scrub,
        before_send_transaction=scrub,
    )
