"""The durable click buffer: a Redis list that the web processes' click spools (or, without a
spool, the redirect itself) append to and a flusher drains.

Redis is never the only copy for long: the flusher moves clicks into PostgreSQL every second, and
when Redis does not answer the clicks are written to the database directly.
"""

import os
import threading

import redis
from django.conf import settings

from allumi.core.redis_client import shared_redis

CLICK_BUFFER_KEY = "allumi:clicks:buffer"
FLUSH_LOCK_KEY = "allumi:clicks:flush-lock"


def buffer_enabled() -> bool:
    return bool(settings.REDIS_URL)


def client() -> redis.Redis:
    return shared_redis()


_hot = threading.local()


def append(value: str) -> None:
    """RPUSH one click onto the buffer, the redirect's only round trip.

    Each thread keeps one connection of its own for this and sends the command on it directly,
    past the pool's per-command checks and redis-py's retry, observability and response-callback
    layers: about half the CPU of `client().rpush()` on the hot path. A failure drops the
    connection and raises; the caller then writes the click to the database instead, and the next
    append connects again.
    """
    pool = shared_redis().connection_pool
    connection = getattr(_hot, "connection", None)
    # A new one after a fork (never share a socket with the parent) or for another REDIS_URL.
    if connection is None or _hot.pid != os.getpid() or _hot.pool is not pool:
        if connection is not None and _hot.pid == os.getpid():
            connection.disconnect()
        connection = pool.make_connection()
        _hot.connection, _hot.pid, _hot.pool = connection, os.getpid(), pool
    try:
        connection.send_command("RPUSH", CLICK_BUFFER_KEY, value)
        connection.read_response()
    except BaseException:
        _hot.connection = None
        connection.disconnect()
        raise


def append_many(values: list[bytes], *, chunk: int = 1000) -> None:
    """RPUSH a batch of clicks (a spool shipment) in one transaction: all of them or none."""
    with client().pipeline(transaction=True) as pipe:
        for first in range(0, len(values), chunk):
            pipe.rpush(CLICK_BUFFER_KEY, *values[first : first + chunk])
        pipe.execute()
