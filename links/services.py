from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from allumi.accounts.keys import random_base62
from allumi.accounts.models import Creator
from links.cache import link_cache_invalidate
from links.events import link_created_emit
from links.models import UTM_FIELDS, Link, Tag

SHORT_ID_LENGTH = 7
_SHORT_ID_ATTEMPTS = 5
EDITABLE_FIELDS = ("url", "title", *UTM_FIELDS, "pass_click_id", "is_active", "expires_at", "expired_url")


def _clean_tags(*, creator: Creator, names) -> list[Tag]:
    wanted = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if len(name) > 40:
            raise ValidationError({"tags": "Tags may be at most 40 characters."})
        if name.lower() not in (w.lower() for w in wanted):
            wanted.append(name)
    tags = []
    for name in wanted:
        tag = Tag.objects.filter(creator=creator, name__iexact=name).first()
        if tag is None:
            try:
                with transaction.atomic():
                    tag = Tag.objects.create(creator=creator, name=name)
            except IntegrityError:
                tag = Tag.objects.get(creator=creator, name__iexact=name)
        tags.append(tag)
    return tags


def _check_expiry(link: Link) -> None:
    if link.expired_url and not link.expires_at:
        raise ValidationError({"expired_url": "A fallback URL needs an expiry time."})


@transaction.atomic
def link_create(
    *,
    creator: Creator,
    url: str,
    title: str = "",
    slug: str = "",
    tags=(),
    utm_source: str = "",
    utm_medium: str = "",
    utm_campaign: str = "",
    utm_term: str = "",
    utm_content: str = "",
    pass_click_id: bool = True,
    expires_at: datetime | None = None,
    expired_url: str = "",
) -> Link:
    """Create a link with the creator's `slug`, or a generated short id when none is given."""
    link = Link(
        creator=creator,
        url=url.strip(),
        title=title.strip(),
        utm_source=utm_source.strip(),
        utm_medium=utm_medium.strip(),
        utm_campaign=utm_campaign.strip(),
        utm_term=utm_term.strip(),
        utm_content=utm_content.strip(),
        pass_click_id=pass_click_id,
        expires_at=expires_at,
        expired_url=expired_url.strip(),
        short_id=slug.strip() or random_base62(SHORT_ID_LENGTH),
    )
    _check_expiry(link)
    link.full_clean(validate_unique=False, validate_constraints=False)
    tag_rows = _clean_tags(creator=creator, names=tags)
    for attempt in range(_SHORT_ID_ATTEMPTS):
        try:
            with transaction.atomic():
                link.save(force_insert=True)
            break
        except IntegrityError:
            if slug:
                raise ValidationError({"slug": "This slug is already taken."}) from None
            # A generated id collided: the unique constraint told us, so draw again.
            link.pk = None
            link.short_id = random_base62(SHORT_ID_LENGTH + attempt // 2)
    else:
        raise RuntimeError("could not draw a free short id")
    link.tags.set(tag_rows)
    link_cache_invalidate(link.short_id)  # a cached "unknown id" must not outlive the link
    link_created_emit(link=link)
    return link


@transaction.atomic
def link_update(*, link: Link, tags=None, **changes) -> Link:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    for name, value in changes.items():
        setattr(link, name, value.strip() if isinstance(value, str) else value)
    _check_expiry(link)
    link.full_clean(validate_unique=False, validate_constraints=False)
    link.save()
    if tags is not None:
        link.tags.set(_clean_tags(creator=link.creator, names=tags))
    link_cache_invalidate(link.short_id)
    return link


def link_archive(*, link: Link) -> Link:
    """Hide a link from the list. It keeps redirecting: its posts are still out there."""
    if link.archived_at is None:
        link.archived_at = timezone.now()
        link.save(update_fields=["archived_at", "updated_at"])
    return link


def link_unarchive(*, link: Link) -> Link:
    if link.archived_at is not None:
        link.archived_at = None
        link.save(update_fields=["archived_at", "updated_at"])
    return link


@transaction.atomic
def link_delete(*, link: Link) -> Link:
    """The API's DELETE: stop redirecting and archive. Clicks and credits keep their link."""
    link.is_active = False
    link.archived_at = link.archived_at or timezone.now()
    link.save(update_fields=["is_active", "archived_at", "updated_at"])
    link_cache_invalidate(link.short_id)
    return link
