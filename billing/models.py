from django.conf import settings
from django.db import models
from django.utils import timezone

from allumi.core.crypto import decrypt


class WhopConnection(models.Model):
    """Where a creator's Whop store posts its webhooks, and the secret that signs them.

    The token in the endpoint URL only routes a delivery; the signature proves it. The signing
    secret and the optional API key are stored encrypted and never shown again in full.
    """

    creator = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="whop_connection")
    token = models.CharField(max_length=64, unique=True)
    signing_secret_encrypted = models.TextField(blank=True)
    secret_hint = models.CharField(max_length=16, blank=True, help_text="The last characters of the signing secret.")
    api_key_encrypted = models.TextField(blank=True)
    company_id = models.CharField(max_length=64, blank=True, help_text="Whop company id (biz_…), for reconciliation.")
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Whop connection of {self.creator}"

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/whop/{self.token}"

    @property
    def webhook_url(self) -> str:
        return settings.SITE_URL + self.webhook_path

    @property
    def signing_secret(self) -> str:
        return decrypt(self.signing_secret_encrypted)

    @property
    def api_key(self) -> str:
        return decrypt(self.api_key_encrypted)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class WhopEvent(models.Model):
    """One genuine webhook delivery, stored raw before it is answered, then processed in Celery."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        WAITING = "waiting", "Waiting for its payment"
        FAILED = "failed", "Failed"

    PLATFORM = "platform"  # `endpoint` of deliveries to Allumi's own plans webhook

    endpoint = models.CharField(max_length=32, help_text="creator:<id> or platform")
    connection = models.ForeignKey(WhopConnection, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    webhook_id = models.CharField(max_length=128)
    event_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True, help_text="data.id: the payment, refund or membership.")
    headers = models.JSONField(default=dict)
    body = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "webhook_id"], name="whop_event_unique_delivery")]
        indexes = [
            models.Index(fields=["connection", "-received_at"], name="whop_event_connection_time"),
            models.Index(fields=["status", "received_at"], name="whop_event_status_time"),
            models.Index(fields=["object_id"], name="whop_event_object"),
            # Refunds waiting for their payment are few; finding them must not scan a store's history.
            models.Index(fields=["connection"], condition=models.Q(status="waiting"), name="whop_event_waiting"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.webhook_id}"


class WhopRefund(models.Model):
    """A refund as Whop reported it; applied to its payment's conversion, now or when it arrives."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    refund_id = models.CharField(max_length=64)
    payment_id = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["creator", "refund_id"], name="whop_refund_unique")]
        indexes = [models.Index(fields=["creator", "payment_id"], name="whop_refund_payment")]


class WhopMembership(models.Model):
    """Membership lifecycle per Whop member, for churn and lifetime value per link."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    membership_id = models.CharField(max_length=64)
    whop_user_id = models.CharField(max_length=64, blank=True)
    email = models.CharField(max_length=254, blank=True)
    identity_id = models.BigIntegerField(null=True, blank=True, help_text="The attribution identity of the member.")
    product_id = models.CharField(max_length=64, blank=True)
    plan_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True, help_text="Time of the newest event applied.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["creator", "membership_id"], name="whop_membership_unique")]


class Plan(models.Model):
    """Allumi's own plans, which creators buy through Whop."""

    name = models.CharField(max_length=40, unique=True)
    whop_plan_id = models.CharField(max_length=64, blank=True, help_text="Whop plan ids (plan_…) that grant it, comma-separated.")
    monthly_click_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: unlimited.")
    is_default = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True), name="plan_one_default")]

    def __str__(self):
        return self.name


class Subscription(models.Model):
    """Which Allumi plan a creator is on, as Allumi's own Whop webhook reported it."""

    creator = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT)
    membership_id = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
