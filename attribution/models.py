from django.conf import settings
from django.db import models


class Click(models.Model):
    """One request to a short link, with every signal the server could see.

    Bots (crawlers, link-preview fetchers, HEAD requests) are stored too, flagged with `is_bot`,
    and left out of counts and credit.
    """

    class Device(models.TextChoices):
        DESKTOP = "desktop", "Desktop"
        MOBILE = "mobile", "Mobile"
        TABLET = "tablet", "Tablet"
        BOT = "bot", "Bot"
        OTHER = "other", "Other"

    public_id = models.CharField("click id", max_length=24)
    # No foreign-key constraints in the database: they checked and locked the link and the creator
    # row once per stored click, a third of PostgreSQL's work per click, and the creator's row is
    # the hottest of all. Django still applies on_delete; the click flusher checks and locks each
    # batch's links in one statement (attribution.services._of_existing_links).
    link = models.ForeignKey("links.Link", on_delete=models.PROTECT, related_name="clicks", db_index=False, db_constraint=False)
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clicks", db_index=False, db_constraint=False
    )
    occurred_at = models.DateTimeField()
    method = models.CharField(max_length=8, default="GET")
    ip = models.GenericIPAddressField(null=True, blank=True)
    network = models.CharField(max_length=64, blank=True, help_text="The /24 (IPv4) or /48 (IPv6) of the client.")
    user_agent = models.TextField(blank=True)
    browser = models.CharField(max_length=64, blank=True)
    os = models.CharField(max_length=64, blank=True)
    device_type = models.CharField(max_length=16, choices=Device.choices, blank=True)
    device_model = models.CharField(max_length=64, blank=True)
    accept_language = models.CharField(max_length=255, blank=True)
    language = models.CharField(max_length=16, blank=True, help_text="The first language the browser asks for.")
    referrer = models.TextField(blank=True)
    referrer_domain = models.CharField(max_length=255, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    utm_term = models.CharField(max_length=100, blank=True)
    utm_content = models.CharField(max_length=100, blank=True)
    visitor_id = models.CharField(max_length=32, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    country = models.CharField(max_length=2, blank=True)
    is_bot = models.BooleanField(default=False)
    bot_reason = models.CharField(max_length=32, blank=True)
    is_unique = models.BooleanField(
        default=False, help_text="The visitor's first human click on this link within an hour."
    )

    # Every click is written once into each index below, so the table carries no index that another
    # already covers: the foreign keys are served by the composites that lead with them, and the
    # click id's uniqueness is a plain unique index (a `unique=True` field would add a second,
    # LIKE-pattern index on PostgreSQL that no query uses).
    class Meta:
        constraints = [models.UniqueConstraint(fields=["public_id"], name="click_public_id_unique")]
        indexes = [
            models.Index(fields=["link", "occurred_at"], name="click_link_time"),
            models.Index(fields=["creator", "occurred_at"], name="click_creator_time"),
            models.Index(fields=["visitor_id", "link", "occurred_at"], name="click_visitor_link_time"),
            models.Index(fields=["fingerprint", "occurred_at"], name="click_fingerprint_time"),
            models.Index(fields=["network", "occurred_at"], name="click_network_time"),
        ]

    def __str__(self):
        return self.public_id


class AttributionModel(models.TextChoices):
    FIRST_TOUCH = "first_touch", "First touch"
    LAST_TOUCH = "last_touch", "Last touch"
    LINEAR = "linear", "Linear"
    TIME_DECAY = "time_decay", "Time decay"
    POSITION_BASED = "position_based", "Position based (40/20/40)"


class AttributionSettings(models.Model):
    """A creator's attribution choices. Changing window or half-life starts a recompute."""

    creator = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attribution_settings")
    default_model = models.CharField(max_length=32, choices=AttributionModel.choices, default=AttributionModel.LAST_TOUCH)
    window_days = models.PositiveSmallIntegerField(default=30, help_text="How far back clicks can earn credit (1–90 days).")
    half_life_days = models.DecimalField(max_digits=5, decimal_places=2, default=7, help_text="Time decay: a click this many days older gets half the weight.")
    respect_do_not_track = models.BooleanField(default=False, help_text="The snippet sends nothing from browsers with Do Not Track on.")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(window_days__gte=1, window_days__lte=90), name="attribution_window_1_90"),
            models.CheckConstraint(condition=models.Q(half_life_days__gt=0), name="attribution_half_life_positive"),
        ]


class Identity(models.Model):
    """A person as Allumi knows them: the identifiers below, and the clicks and conversions they tie.

    Merged identities point at the survivor (`merged_into`); the merge is recorded in IdentityMerge
    with its evidence and can be undone by an operator.
    """

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identities")
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "identities"

    def __str__(self):
        return f"identity {self.pk}"


class Identifier(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        VISITOR = "visitor", "Visitor cookie"
        CLICK = "click", "Click id"
        WHOP_USER = "whop_user", "Whop user"
        EXTERNAL = "external", "External customer id"
        FINGERPRINT = "fingerprint", "Fingerprint"

    DETERMINISTIC = (Kind.EMAIL, Kind.VISITOR, Kind.CLICK, Kind.WHOP_USER, Kind.EXTERNAL)

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="identifiers", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=255)
    first_seen = models.DateTimeField()

    class Meta:
        constraints = [
            # A deterministic identifier belongs to one identity; a fingerprint may be shared.
            models.UniqueConstraint(
                fields=["creator", "kind", "value"], condition=~models.Q(kind="fingerprint"), name="identifier_unique_deterministic"
            ),
            models.UniqueConstraint(fields=["identity", "kind", "value"], name="identifier_unique_per_identity"),
        ]
        indexes = [models.Index(fields=["creator", "kind", "value"], name="identifier_lookup")]

    def __str__(self):
        return f"{self.kind}:{self.value}"


class IdentityMerge(models.Model):
    """The record of one merge: which identifier tied two identities, when, and what moved."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    survivor = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="merges_won")
    merged = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="merges_lost")
    evidence_kind = models.CharField(max_length=16)
    evidence_value = models.CharField(max_length=255)
    moved_identifier_ids = models.JSONField(default=list)
    moved_conversion_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    reverted_at = models.DateTimeField(null=True, blank=True)


class Conversion(models.Model):
    class Source(models.TextChoices):
        TRACK = "track", "Track API"
        WHOP = "whop", "Whop"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ATTRIBUTED = "attributed", "Attributed"
        UNATTRIBUTED = "unattributed", "Unattributed"

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversions")
    external_id = models.CharField(max_length=255, null=True, blank=True)
    event = models.CharField(max_length=64)
    source = models.CharField(max_length=16, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    refunded_amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="USD")
    occurred_at = models.DateTimeField()
    # Signals that arrived with the conversion.
    email = models.CharField(max_length=254, blank=True)
    click_id = models.CharField(max_length=64, blank=True)
    visitor_id = models.CharField(max_length=32, blank=True)
    whop_user_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    network = models.CharField(max_length=64, blank=True)
    user_agent = models.TextField(blank=True)
    accept_language = models.CharField(max_length=255, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # What attribution concluded.
    identity = models.ForeignKey(Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversions", db_index=False)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    attributed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creator", "external_id"], condition=models.Q(external_id__isnull=False), name="conversion_unique_external_id"
            ),
            models.CheckConstraint(condition=models.Q(confidence__isnull=True) | models.Q(confidence__lte=100), name="conversion_confidence_0_100"),
            models.CheckConstraint(condition=models.Q(refunded_amount__gte=0), name="conversion_refund_not_negative"),
        ]
        indexes = [
            models.Index(fields=["creator", "-id"], name="conversion_creator_id"),
            # Covering: the overview's conversion counts and average confidence read only the index.
            models.Index(fields=["creator", "occurred_at"], include=["status", "confidence", "id"], name="conversion_creator_time_cover"),
            models.Index(fields=["status", "created_at"], name="conversion_status_created"),
            models.Index(fields=["identity"], name="conversion_identity"),
        ]

    def __str__(self):
        return f"{self.event} {self.external_id or self.pk}"


class Credit(models.Model):
    """The share of one conversion's revenue a link earned under one model."""

    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="credits", db_index=False)
    model = models.CharField(max_length=32, choices=AttributionModel.choices)
    link = models.ForeignKey("links.Link", on_delete=models.PROTECT, related_name="credits", db_index=False)
    weight = models.DecimalField(max_digits=7, decimal_places=6)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversion", "model", "link"], name="credit_unique_conversion_model_link"),
        ]
        indexes = [models.Index(fields=["link", "model"], name="credit_link_model")]


class Recompute(models.Model):
    """A creator-wide re-attribution (after a change of window or half-life), resumable by cursor."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recomputes")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    last_conversion_id = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    @property
    def progress(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)


# --- rollups: what the dashboard reads -------------------------------------------------------


class RollupCursor(models.Model):
    """How far a rollup has read its source table (by id), and the id horizon it may read up to.

    Ids are handed out when a row is inserted but become visible when its transaction commits,
    so a rollup only reads ids that were already allocated a settling period ago (`horizon_id`
    recorded at `horizon_at`): by then every transaction holding a lower id has committed.
    """

    name = models.CharField(max_length=32, unique=True)
    last_id = models.BigIntegerField(default=0)
    horizon_id = models.BigIntegerField(default=0)
    horizon_at = models.DateTimeField(null=True, blank=True)
    next_horizon_id = models.BigIntegerField(default=0)


class HourlyLinkClicks(models.Model):
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    link = models.ForeignKey("links.Link", on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    clicks = models.IntegerField(default=0)
    unique_clicks = models.IntegerField(default=0)
    bot_clicks = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["link", "hour"], name="hourly_link_clicks_unique")]
        indexes = [models.Index(fields=["creator", "hour"], name="hourly_link_clicks_creator")]


class DailyLinkClicks(models.Model):
    """The hourly rollup by whole (UTC) days: periods of a week or more read 24 times fewer rows."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    link = models.ForeignKey("links.Link", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    clicks = models.IntegerField(default=0)
    unique_clicks = models.IntegerField(default=0)
    bot_clicks = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["link", "day"], name="daily_link_clicks_unique")]
        indexes = [models.Index(fields=["creator", "day"], name="daily_link_clicks_creator")]


class DailyClickDimension(models.Model):
    """Human clicks per link, day and value of one dimension (referrer, country, device, …)."""

    class Dimension(models.TextChoices):
        REFERRER = "referrer", "Referrer"
        COUNTRY = "country", "Country"
        DEVICE = "device", "Device"
        BROWSER = "browser", "Browser"
        OS = "os", "Operating system"
        UTM_SOURCE = "utm_source", "UTM source"
        UTM_MEDIUM = "utm_medium", "UTM medium"
        UTM_CAMPAIGN = "utm_campaign", "UTM campaign"

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    link = models.ForeignKey("links.Link", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    dimension = models.CharField(max_length=16, choices=Dimension.choices)
    value = models.CharField(max_length=255)
    clicks = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["link", "day", "dimension", "value"], name="daily_dimension_unique")]
        indexes = [models.Index(fields=["creator", "dimension", "day"], name="daily_dimension_creator")]


class DailyCreatorDimension(models.Model):
    """Human clicks per creator, day and value of one dimension: the overview's breakdowns, fifty
    times fewer rows to read than per link for a creator with fifty links."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    dimension = models.CharField(max_length=16, choices=DailyClickDimension.Dimension.choices)
    value = models.CharField(max_length=255)
    clicks = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["creator", "day", "dimension", "value"], name="daily_creator_dimension_unique")]


class CreditLedger(models.Model):
    """Append-only changes of credit: every (re)attribution or refund writes what it added and
    took away per link and model, so rollups can read new rows by id exactly once."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    link = models.ForeignKey("links.Link", on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=32)
    day = models.DateField(help_text="The conversion's day.")
    conversions = models.IntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    created_at = models.DateTimeField(auto_now_add=True)


class DailyLinkCredit(models.Model):
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    link = models.ForeignKey("links.Link", on_delete=models.CASCADE, related_name="+", db_index=False)
    model = models.CharField(max_length=32)
    day = models.DateField()
    conversions = models.IntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["link", "model", "day"], name="daily_link_credit_unique")]
        indexes = [models.Index(fields=["creator", "model", "day"], name="daily_link_credit_creator")]
