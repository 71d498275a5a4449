"""`manage.py recompute_attribution [--creator EMAIL] [--model MODEL]`

Re-attribute conversions now, in this process, with a progress bar. Every model's credits are
stored on each pass, so --model only checks the name and reports that model's totals afterwards.
"""

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum

from allumi.accounts.models import Creator
from attribution.conversions import recompute_run
from attribution.credit import MODELS
from attribution.models import Conversion, Credit, Recompute


class Command(BaseCommand):
    help = "Recompute attribution for one creator or all, with progress."

    def add_arguments(self, parser):
        parser.add_argument("--creator", help="The creator's email (default: every creator).")
        parser.add_argument("--model", choices=MODELS, help="Report this model's revenue when done.")
        parser.add_argument("--chunk", type=int, default=200)

    def handle(self, *args, creator=None, model=None, chunk=200, **options):
        creators = Creator.objects.order_by("id")
        if creator:
            creators = creators.filter(email__iexact=creator)
            if not creators.exists():
                raise CommandError(f"No creator with the email {creator}.")
        for each in creators:
            total = Conversion.objects.filter(creator=each).count()
            if not total:
                continue
            recompute = Recompute.objects.create(creator=each, total=total)
            self.stdout.write(f"{each.email}: {total} conversions")
            recompute_run(recompute_id=recompute.id, chunk=chunk, on_progress=self._bar)
            sys.stdout.write("\n")
            if model:
                revenue = Credit.objects.filter(conversion__creator=each, model=model).aggregate(total=Sum("revenue"))["total"]
                self.stdout.write(f"  {model}: {revenue or 0} credited revenue")

    def _bar(self, recompute):
        filled = recompute.progress * 30 // 100
        sys.stdout.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {recompute.done}/{recompute.total} ({recompute.progress}%)")
        sys.stdout.flush()
