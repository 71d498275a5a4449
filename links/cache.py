"""Links as the redirect needs them: in-process first, then the shared cache, then the database.

An entry is a small dict (JSON-safe, so it can live in Redis). Unknown short ids are cached too, so
a flood of made-up ids costs the database one query per id and cache period, not one per request.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from allumi.core.breaker import redis_breaker
from links.destinations import split_for_click_id
from links.models import UTM_FIELDS, Link

logger = logging.getLogger(__name__)

_MISSING = {"missing": True}
_MISSING_SHARED_TTL = 60
_LOCAL_MAX_ENTRIES = 20_000
_local: dict[str, tuple[float, dict]] = {}


def _key(short_id: str) -> str:
    return f"link:{short_id}"


def _entry_from_db(short_id: str) -> dict:
    link = (
        Link.objects.filter(short_id=short_id)
        .only("id", "creator_id", "url", "pass_click_id", "is_active", "expires_at", "expired_url", *UTM_FIELDS)
        .first()
    )
    if link is None:
        return _MISSING
    prefix, fragment = split_for_click_id(link.url, link.utm())
    return {
        "id": link.id,
        "creator_id": link.creator_id,
        "prefix": prefix,
        "fragment": fragment,
        "pass_click_id": link.pass_click_id,
        "active": link.is_active,
        "expires_at": link.expires_at.timestamp() if link.expires_at else None,
        "expired_url": link.expired_url,
    }


def _shared_get(short_id: str):
    if not settings.REDIS_URL or redis_breaker.is_open:
        return None
    try:
        return cache.get(_key(short_id))
    except Exception as error:  # Redis down: the database still answers
        redis_breaker.trip(error)
        return None


def _shared_set(short_id: str, entry: dict) -> None:
    if not settings.REDIS_URL or redis_breaker.is_open:
        return
    try:
        ttl = _MISSING_SHARED_TTL if entry is _MISSING else settings.LINK_CACHE_SHARED_TTL
        cache.set(_key(short_id), entry, ttl)
    except Exception as error:
        redis_breaker.trip(error)


def link_entry(short_id: str) -> dict | None:
    """The redirect entry for `short_id`, or None when no such link exists."""
    now = time.monotonic()
    hit = _local.get(short_id)
    if hit is not None and hit[0] > now:
        entry = hit[1]
    else:
        entry = _shared_get(short_id)
        if entry is None:
            entry = _entry_from_db(short_id)
            _shared_set(short_id, entry)
        if len(_local) >= _LOCAL_MAX_ENTRIES:
            _local.clear()
        _local[short_id] = (now + settings.LINK_CACHE_LOCAL_TTL, entry)
    return None if entry.get("missing") else entry


def link_cache_invalidate(short_id: str) -> None:
    """Forget `short_id` here and in the shared cache once the current transaction commits."""

    def _forget():
        _local.pop(short_id, None)
        if settings.REDIS_URL:
            try:
                cache.delete(_key(short_id))
            except Exception as error:
                logger.warning("could not clear the shared cache for link %s: %r", short_id, error)

    transaction.on_commit(_forget)


def link_cache_clear_local() -> None:
    _local.clear()
