"""The durable click buffer: a Redis list that the redirect appends to and a flusher drains.

Redis is never the only copy for long: the flusher moves clicks into PostgreSQL every second, and
when Redis does not answer the redirect writes the click to the database itself.
"""

import functools

import redis
from django.conf import settings

CLICK_BUFFER_KEY = "allumi:clicks:buffer"
FLUSH_LOCK_KEY = "allumi:clicks:flush-lock"


def buffer_enabled() -> bool:
    return bool(settings.REDIS_URL)


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=1.0, health_check_interval=30)


def client() -> redis.Redis:
    # One pool per process and URL; gunicorn forks before the first request, so no pool is shared.
    return _client_for(settings.REDIS_URL)
