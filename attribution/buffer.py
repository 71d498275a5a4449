"""The durable click buffer: a Redis list that the redirect appends to and a flusher drains.

Redis is never the only copy for long: the flusher moves clicks into PostgreSQL every second, and
when Redis does not answer the redirect writes the click to the database itself.
"""

import redis
from django.conf import settings

from allumi.core.redis_client import shared_redis

CLICK_BUFFER_KEY = "allumi:clicks:buffer"
FLUSH_LOCK_KEY = "allumi:clicks:flush-lock"


def buffer_enabled() -> bool:
    return bool(settings.REDIS_URL)


def client() -> redis.Redis:
    return shared_redis()
