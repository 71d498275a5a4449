"""A Celery worker keeps its database connection between tasks and drops it after a failed one.

The signal handlers of allumi.celery, sent as a worker sends them (not eagerly): a new PostgreSQL
session per task is what CELERY_DB_REUSE_MAX saves, an interrupted query is what a failure may leave.
"""

import time
from types import SimpleNamespace

import pytest
from celery.signals import task_failure, task_prerun
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


class _Task:
    """What the handlers read of a task: its request (signal senders must be hashable)."""

    def __init__(self, *, eager: bool):
        self.request = SimpleNamespace(is_eager=eager)


def _send_prerun(task):
    task_prerun.send(sender=task, task_id="t-1", task=task, args=(), kwargs={})


def test_workers_reuse_connections():
    assert settings.CELERY_DB_REUSE_MAX >= 100


def test_a_task_starts_on_the_connection_the_last_one_used(monkeypatch):
    connection.ensure_connection()
    monkeypatch.setattr(connection, "close_at", time.monotonic() + 60)  # as CONN_MAX_AGE=60 sets it
    before = connection.connection

    _send_prerun(_Task(eager=False))

    assert connection.connection is before


def test_a_connection_older_than_its_max_age_is_replaced_before_the_next_task(monkeypatch):
    connection.ensure_connection()
    monkeypatch.setattr(connection, "close_at", 0.0)  # obsolete: past CONN_MAX_AGE

    _send_prerun(_Task(eager=False))

    assert connection.connection is None  # closed; the task's first query opens a new one


def test_a_failed_task_leaves_no_connection_behind():
    connection.ensure_connection()

    task_failure.send(sender=_Task(eager=False), task_id="t-1", exception=RuntimeError("interrupted"), args=(), kwargs={})

    assert connection.connection is None
    connection.ensure_connection()  # and the next task gets a working one
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_eager_tasks_never_touch_their_callers_connection():
    connection.ensure_connection()
    before = connection.connection

    task_failure.send(sender=_Task(eager=True), task_id="t-1", exception=RuntimeError("boom"), args=(), kwargs={})

    assert connection.connection is before
