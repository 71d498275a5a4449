from django.conf import settings
from django.db import models
from django.utils import timezone


class WhopConnection(models.Model):
    """Where a creator's Whop store posts its webhooks, and the secret that signs them.

    The token in the endpoint URL only routes a delivery; the signature proves it.
    """

    creator = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="whop_connection")
    token = models.CharField(max_length=64, unique=True)
    signing_secret = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Whop connection of {self.creator}"

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/whop/{self.token}"

    @property
    def masked_secret(self) -> str:
        return f"{self.signing_secret[:6]}…" if self.signing_secret else ""
