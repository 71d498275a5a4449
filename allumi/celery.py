"""The Celery app, configured from Django settings (the CELERY_* names)."""

import contextlib
import os

from celery import Celery
from celery.signals import task_failure, task_prerun
from celery.worker.consumer import Consumer
from django.db import close_old_connections, connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allumi.settings")

app = Celery("allumi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _in_worker(task) -> bool:
    """False for eager tasks: they run inside their caller's request or test, on its connection."""
    return task is not None and not getattr(task.request, "is_eager", False)


@task_prerun.connect
def _database_checked(task=None, **kwargs):
    """With CELERY_DB_REUSE_MAX the worker keeps its connection between tasks: before each one,
    drop it if it is broken or older than CONN_MAX_AGE, as Django does between requests."""
    if _in_worker(task):
        close_old_connections()


@task_failure.connect
def _database_dropped(sender=None, **kwargs):
    """A failed task may have been interrupted mid-query (a time limit): start the next one on a
    new connection."""
    if _in_worker(sender):
        connections.close_all()


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
