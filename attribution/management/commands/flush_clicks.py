"""`manage.py flush_clicks [--batch-size N]`: drain the click buffer into the database now.

Beat does this every second; operators run it by hand after an outage of the worker.
"""

from django.core.management.base import BaseCommand

from attribution.services import clicks_buffered, clicks_flush


class Command(BaseCommand):
    help = "Move buffered clicks from Redis into the database."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, batch_size, **options):
        stored = clicks_flush(batch_size=batch_size)
        self.stdout.write(f"stored {stored} clicks; {clicks_buffered()} still buffered")
