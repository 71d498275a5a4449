"""Enqueueing from a request while the broker is down: one slow failure, then a few seconds of
not trying, and the stored work is left for the sweeps."""

import pytest
from django.test import override_settings

from allumi.core.queue import broker_breaker, enqueue


class _Task:
    """A task whose broker refuses every message (what Celery raises when Redis is gone)."""

    name = "tests.unreachable"

    def __init__(self):
        self.attempts = 0

    def delay(self, *args):
        self.attempts += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.fixture(autouse=True)
def _closed_breaker():
    broker_breaker.reset()
    yield
    broker_breaker.reset()


@override_settings(CELERY_TASK_ALWAYS_EAGER=False)
def test_after_one_failure_the_broker_is_not_tried_for_a_while():
    task = _Task()

    assert enqueue(task, 1) is False
    assert enqueue(task, 2) is False
    assert enqueue(task, 3) is False

    assert task.attempts == 1
    assert broker_breaker.is_open


@override_settings(CELERY_TASK_ALWAYS_EAGER=False)
def test_the_broker_is_tried_again_once_the_cooldown_is_over(monkeypatch):
    task = _Task()
    enqueue(task, 1)
    broker_breaker.reset()  # the cooldown has passed

    enqueue(task, 2)

    assert task.attempts == 2


def test_a_task_failing_in_process_does_not_stop_the_next_ones():
    task = _Task()  # eager (the embedded default): the exception is the task's own, not a broker's

    assert enqueue(task, 1) is False
    assert enqueue(task, 2) is False

    assert task.attempts == 2
    assert not broker_breaker.is_open


def test_a_sent_message_says_so(alice):
    from attribution.tasks import sweep_pending_conversions

    assert enqueue(sweep_pending_conversions) is True
