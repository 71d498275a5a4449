"""`manage.py create_creator --email EMAIL [--password PASSWORD] [--whop-secret SECRET] [--json]`

Provisions a creator with one secret API key, one publishable key and one Whop connection. It
lives in billing because it is the one room that may use accounts, links and billing together.
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from allumi.accounts.models import ApiKey
from allumi.accounts.services import CreatorExists, api_key_create, creator_create
from billing.services import whop_connection_create


class Command(BaseCommand):
    help = "Create a creator with a secret API key, a publishable key and a Whop connection."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", default=None, help="Without it the creator sets one by password reset.")
        parser.add_argument("--whop-secret", default="", help="The signing secret from Whop's webhook settings.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object and nothing else.")

    def handle(self, *args, **options):
        email, password, whop_secret = options["email"], options["password"], options["whop_secret"]
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not a valid email address.") from None
        try:
            with transaction.atomic():
                creator = creator_create(email=email, password=password, confirmed=True)
                _, api_key = api_key_create(creator=creator, kind=ApiKey.Kind.SECRET, name="Default secret key")
                _, publishable_key = api_key_create(
                    creator=creator, kind=ApiKey.Kind.PUBLISHABLE, name="Default publishable key"
                )
                connection = whop_connection_create(creator=creator, signing_secret=whop_secret)
        except CreatorExists:
            raise CommandError(f"A creator with the email {email} already exists.") from None
        result = {
            "creator_id": str(creator.pk),
            "email": creator.email,
            "api_key": api_key,
            "publishable_key": publishable_key,
            "whop_webhook_url": connection.webhook_path,
            "whop_webhook_secret": connection.signing_secret,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        for name, value in result.items():
            self.stdout.write(f"{name}: {value}")
