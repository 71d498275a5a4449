"""One long-lived redis-py client per process for the hot paths (link lookups, the click buffer).

Django's Redis cache builds a client object on every call, which costs more than the round trip
itself on the redirect path; this pool is created once per process (gunicorn forks first).
"""

import functools

import redis
from django.conf import settings


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=1.0, health_check_interval=30)


def shared_redis() -> redis.Redis | None:
    """The client for REDIS_URL, or None when Allumi runs without Redis."""
    return _client_for(settings.REDIS_URL) if settings.REDIS_URL else None
