"""Sending work to Celery from a request without waiting, request after request, on a broker that
is down: each attempt then costs most of a second (connection retries). After one failure,
messages are not even tried for a few seconds; the work they carry is stored already, and the
periodic sweeps (pending conversions, Whop events) send it once the broker is back."""

import logging

from django.conf import settings

from allumi.core.breaker import Breaker

logger = logging.getLogger(__name__)

broker_breaker = Breaker("the Celery broker", cooldown=5.0)


def enqueue(task, *args) -> bool:
    """`task.delay(*args)`; False when the message was not sent (never raises)."""
    if broker_breaker.is_open:
        return False
    try:
        task.delay(*args)
    except Exception as error:
        logger.warning("could not enqueue %s%r: %r", getattr(task, "name", task), args, error)
        if not settings.CELERY_TASK_ALWAYS_EAGER:  # a task failing in-process says nothing of a broker
            broker_breaker.trip(error)
        return False
    return True
