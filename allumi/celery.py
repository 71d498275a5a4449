"""The Celery app, configured from Django settings (the CELERY_* names)."""

import contextlib
import os

from celery import Celery
from celery.worker.consumer import Consumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allumi.settings")

app = Celery("allumi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
