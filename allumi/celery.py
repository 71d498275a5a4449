"""The Celery app, configured from Django settings (the CELERY_* names)."""

import contextlib
import os

from celery import Celery
from celery.signals import task_failure, task_prerun
from celery.worker.consumer import Consumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allumi.settings")

app = Celery("allumi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _worker_connections(task):
    """The worker's open database connections outside any transaction; none for eager tasks,
    which run inside their caller's request or test and share its connection."""
    from django.db import connections

    if task is None or getattr(task.request, "is_eager", False):
        return []
    return [connection for connection in connections.all(initialized_only=True) if not connection.in_atomic_block]


@task_prerun.connect
def _database_checked(task=None, **kwargs):
    """With CELERY_DB_REUSE_MAX the worker keeps its connection between tasks: before each one,
    drop it if it is broken or older than CONN_MAX_AGE, as Django does between requests."""
    for connection in _worker_connections(task):
        connection.close_if_unusable_or_obsolete()


@task_failure.connect
def _database_dropped(sender=None, **kwargs):
    """A failed task may have been interrupted mid-query (a time limit): start the next one on a
    new connection."""
    for connection in _worker_connections(sender):
        connection.close()


class BrokerLossConsumer(Consumer):
    """Celery's consumer, surviving a broker that goes away while a task is unacknowledged.

    On a lost connection Celery 5.7 collects the connection (dropping the transport's client) and
    then closes it; with an acks_late task in flight, which the click flusher makes the usual case,
    the close raises AttributeError instead of a connection error and the worker exits, beat with
    it. A connection whose client is gone is closed already: let the reconnect cycle go on.
    """

    def on_connection_error_after_connected(self, exc):
        connection = self.connection
        if connection is not None:
            close = connection.close

            def _close():
                with contextlib.suppress(AttributeError):
                    close()

            connection.close = _close
        super().on_connection_error_after_connected(exc)
