from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone


class CreatorManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("A creator needs an email address.")
        creator = self.model(email=self.normalize_email(email).lower(), **extra)
        creator.set_password(password)
        creator.save(using=self._db)
        return creator

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_confirmed_at", timezone.now())
        return self.create_user(email, password, **extra)


class Weekday(models.IntegerChoices):
    """Python's date.weekday() numbering."""

    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class Creator(AbstractBaseUser, PermissionsMixin):
    """A creator's account: they sign in with their email. Operators are creators with is_staff."""

    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=120, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    email_confirmed_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # Email the creator may turn off (the unsubscribe link in each one does it too).
    conversion_alerts = models.BooleanField(
        "conversion alerts", default=False,
        help_text="An email when sales come in: one per ten minutes at most, listing them all.",
    )
    weekly_report = models.BooleanField(
        "weekly report", default=True, help_text="Clicks, conversions, revenue and top links of the week."
    )
    weekly_report_weekday = models.PositiveSmallIntegerField(
        "weekly report day", choices=Weekday.choices, default=Weekday.MONDAY
    )

    objects = CreatorManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="creator_email_ci_unique"),
            models.CheckConstraint(condition=Q(weekly_report_weekday__lte=6), name="creator_weekly_report_weekday_valid"),
        ]

    def __str__(self):
        return self.email

    @property
    def email_confirmed(self) -> bool:
        return self.email_confirmed_at is not None


class ApiKey(models.Model):
    """A secret key (servers, `Authorization: Bearer`) or publishable key (browsers, the snippet).

    Only a SHA-256 of the key is stored: keys are 190 bits from a CSPRNG, so a fast hash is enough
    and lookups stay one indexed equality. `prefix` keeps the first characters for recognition.
    """

    class Kind(models.TextChoices):
        SECRET = "secret", "Secret"
        PUBLISHABLE = "publishable", "Publishable"

    creator = models.ForeignKey(Creator, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["creator", "kind"], name="apikey_creator_kind")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class EmailLog(models.Model):
    """One email to one recipient: queued when it is rendered, then sent (or failed) by a Celery task.

    The bodies are kept only until the message is sent, so a sent row holds no reset or confirmation
    link. `dedupe_key` makes a message once-only (a weekly report per creator per week).
    """

    class Kind(models.TextChoices):
        CONFIRM_EMAIL = "confirm_email", "Email confirmation"
        PASSWORD_RESET = "password_reset", "Password reset"
        CONVERSION_ALERT = "conversion_alert", "Conversion alert"
        WEEKLY_REPORT = "weekly_report", "Weekly report"
        OPERATOR_ALERT = "operator_alert", "Operator alert"
        DEMO_REQUEST = "demo_request", "Demo request"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    creator = models.ForeignKey(Creator, null=True, blank=True, on_delete=models.SET_NULL, related_name="emails")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    recipient = models.EmailField(max_length=254)
    subject = models.CharField(max_length=255)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, help_text="The last delivery error.")
    dedupe_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key", "recipient"], condition=~Q(dedupe_key=""), name="emaillog_dedupe_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="emaillog_status_created"),
            models.Index(fields=["creator", "kind", "created_at"], name="emaillog_creator_kind"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} to {self.recipient} ({self.status})"


class EmailBatch(models.Model):
    """A window collecting events for one email, so a burst (fifty sales in a minute) sends one.

    At most one batch per creator and kind is open: the constraint, not a check, decides which of
    two concurrent events opens it.
    """

    creator = models.ForeignKey(Creator, on_delete=models.CASCADE, related_name="email_batches")
    kind = models.CharField(max_length=32, choices=EmailLog.Kind.choices)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creator", "kind"], condition=Q(closed_at__isnull=True), name="emailbatch_one_open_per_kind"
            ),
        ]
        indexes = [models.Index(fields=["kind", "opened_at"], condition=Q(closed_at__isnull=True), name="emailbatch_open")]


class DemoRequest(models.Model):
    """A demo request from the marketing site. The same email again within a day is merged into
    its row (latest details, `submissions` counted) rather than stored twice."""

    name = models.CharField(max_length=120)
    email = models.EmailField(max_length=254)
    company = models.CharField(max_length=120, blank=True)
    community_size = models.CharField(max_length=40, blank=True)
    message = models.TextField(blank=True)
    submissions = models.PositiveIntegerField(default=1)
    ip = models.GenericIPAddressField(null=True, blank=True)
    received_on = models.DateField(help_text="The day of the first submission (UTC).")
    created_at = models.DateTimeField(default=timezone.now)
    last_submitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "received_on"], name="demorequest_one_per_email_per_day")]
        indexes = [models.Index(fields=["email", "last_submitted_at"], name="demorequest_email_recent")]

    def __str__(self):
        return f"{self.name} <{self.email}>"
