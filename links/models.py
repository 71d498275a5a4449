from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from links.destinations import merge_utm
from links.validators import validate_destination, validate_slug

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


class Tag(models.Model):
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=40)

    class Meta:
        constraints = [models.UniqueConstraint("creator", Lower("name"), name="tag_creator_name_ci_unique")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class Link(models.Model):
    """A tracked short link: `/l/<short_id>` redirects to `url` with the UTM fields merged in."""

    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="links")
    short_id = models.CharField(max_length=64, unique=True, validators=[validate_slug])
    url = models.CharField("destination", max_length=2048, validators=[validate_destination])
    title = models.CharField(max_length=200, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    utm_term = models.CharField(max_length=100, blank=True)
    utm_content = models.CharField(max_length=100, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="links")
    pass_click_id = models.BooleanField(
        default=True, help_text="Add allumi_cid=<click id> to the destination so a later sale can name the click."
    )
    is_active = models.BooleanField(default=True, help_text="A disabled link answers 404 instead of redirecting.")
    expires_at = models.DateTimeField(null=True, blank=True)
    expired_url = models.CharField(
        "fallback URL", max_length=2048, blank=True, validators=[validate_destination],
        help_text="Where visitors go once the link has expired (otherwise a 404 page).",
    )
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["creator", "-created_at"], name="link_creator_created"),
            models.Index(fields=["creator", "archived_at"], name="link_creator_archived"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(url=""), name="link_url_not_empty"
            ),
        ]

    def __str__(self):
        return self.short_id

    @property
    def short_url(self) -> str:
        return f"{settings.SITE_URL}/l/{self.short_id}"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def utm(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in UTM_FIELDS if getattr(self, name)}

    @property
    def destination(self) -> str:
        """The destination with the link's UTM fields merged in (before any click id)."""
        return merge_utm(self.url, self.utm())
