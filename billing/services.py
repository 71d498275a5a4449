import secrets

from allumi.accounts.models import Creator
from billing.models import WhopConnection


def whop_connection_create(*, creator: Creator, signing_secret: str = "") -> WhopConnection:
    return WhopConnection.objects.create(
        creator=creator,
        token=secrets.token_urlsafe(24),
        signing_secret=signing_secret or "ws_" + secrets.token_urlsafe(32),
    )
