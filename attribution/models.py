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

    public_id = models.CharField("click id", max_length=24, unique=True)
    link = models.ForeignKey("links.Link", on_delete=models.PROTECT, related_name="clicks")
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clicks")
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

    class Meta:
        indexes = [
            models.Index(fields=["link", "occurred_at"], name="click_link_time"),
            models.Index(fields=["creator", "occurred_at"], name="click_creator_time"),
            models.Index(fields=["visitor_id", "link", "occurred_at"], name="click_visitor_link_time"),
            models.Index(fields=["fingerprint", "occurred_at"], name="click_fingerprint_time"),
        ]

    def __str__(self):
        return self.public_id
