"""Outgoing webhooks: the endpoints a creator's CRM listens on, and every delivery made to them.

Events are signed the Standard Webhooks way (https://www.standardwebhooks.com): the secret is
`whsec_<base64>`, shown once when the endpoint is made and stored encrypted after that.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from allumi.core.crypto import decrypt


class EventType(models.TextChoices):
    LINK_CREATED = "link.created", "A link is created"
    CONVERSION_CREATED = "conversion.created", "A conversion is recorded"
    CONVERSION_ATTRIBUTED = "conversion.attributed", "A conversion is credited to links"
    CONVERSION_REFUNDED = "conversion.refunded", "A conversion is refunded"


# Sent by the "Send test event" button only; an endpoint does not subscribe to it.
TEST_EVENT_TYPE = "webhook.test"


class WebhookEndpoint(models.Model):
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField("URL", max_length=2048)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="The event types this endpoint receives.")
    secret_encrypted = models.TextField()
    secret_hint = models.CharField(max_length=8, blank=True, help_text="The last characters of the secret.")
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Deliveries given up in a row since the last success."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["creator", "is_active"], name="webhook_endpoint_creator")]

    def __str__(self):
        return self.url

    @property
    def secret(self) -> str:
        return decrypt(self.secret_encrypted)

    def subscribes_to(self, event_type: str) -> bool:
        return event_type in self.events


class WebhookDelivery(models.Model):
    """One event for one endpoint. The event id is the `webhook-id` header: it stays the same over
    retries and redeliveries, so a receiver can drop duplicates."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed, will retry"
        GIVEN_UP = "given_up", "Given up"

    OPEN = (Status.PENDING, Status.FAILED)

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The body sent: type, timestamp and data.")
    manual = models.BooleanField(
        default=False, help_text="A test event or a redelivery by hand: one attempt, no retries."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_unique_event"),
            models.CheckConstraint(
                condition=~models.Q(status__in=["pending", "failed"]) | models.Q(next_attempt_at__isnull=False),
                name="webhook_delivery_open_has_next_attempt",
            ),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
            # The sweep's query: open deliveries by due time.
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(status__in=["pending", "failed"]), name="webhook_delivery_due"
            ),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"
