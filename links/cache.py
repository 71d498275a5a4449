"""Links as the redirect needs them: in-process first, then Redis, then the database.

An entry is a small JSON-safe dict. Unknown short ids are cached too, so a flood of made-up ids
costs the database one query per id and cache period, not one per request.

Each process keeps entries in memory and, at most once a second, reads a shared version number
that every change to a link increments; a new number empties the process's copy. An edit reaches
every worker within about a second, and a hot link costs no round trip at all. Without Redis
(the embedded default, one process) the in-process copy is forgotten directly.
"""

import itertools
import json
import logging
import time

from django.conf import settings
from django.db import transaction

from allumi.core.breaker import redis_breaker
from allumi.core.redis_client import shared_redis
from links.destinations import split_for_click_id
from links.models import UTM_FIELDS, Link

logger = logging.getLogger(__name__)

_MISSING = {"missing": True}
_MISSING_SHARED_TTL = 60
_LOCAL_MAX_ENTRIES = 50_000
_VERSION_KEY = "allumi:links:version"
_VERSION_CHECK_SECONDS = 1.0
_local: dict[str, tuple[float, dict]] = {}
_seen = {"version": None, "checked_at": 0.0}


_KEY_PREFIX = "allumi:link:"


def _key(short_id: str) -> str:
    return _KEY_PREFIX + short_id


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


def _usable_redis():
    client = shared_redis()
    return None if client is None or redis_breaker.is_open else client


def _check_version(now: float) -> None:
    """Forget this process's copies when any link changed since the last look (once a second)."""
    if now - _seen["checked_at"] < _VERSION_CHECK_SECONDS:
        return
    _seen["checked_at"] = now
    client = _usable_redis()
    if client is None:
        return
    try:
        version = client.get(_VERSION_KEY)
    except Exception as error:  # Redis down: keep serving from memory and the database
        redis_breaker.trip(error)
        return
    if version != _seen["version"]:
        _local.clear()
        _seen["version"] = version


def _shared_get(short_id: str) -> dict | None:
    client = _usable_redis()
    if client is None:
        return None
    try:
        raw = client.get(_key(short_id))
    except Exception as error:
        redis_breaker.trip(error)
        return None
    return json.loads(raw) if raw else None


def _shared_set(short_id: str, entry: dict) -> None:
    client = _usable_redis()
    if client is None:
        return
    try:
        ttl = _MISSING_SHARED_TTL if entry is _MISSING else settings.LINK_CACHE_SHARED_TTL
        client.set(_key(short_id), json.dumps(entry, separators=(",", ":")), ex=ttl)
    except Exception as error:
        redis_breaker.trip(error)


def link_entry(short_id: str) -> dict | None:
    """The redirect entry for `short_id`, or None when no such link exists."""
    now = time.monotonic()
    _check_version(now)
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


def link_cache_warm(*, batch: int = 1000) -> int:
    """Fill this process's copy with every entry the shared cache holds (the links followed in the
    last LINK_CACHE_SHARED_TTL seconds), up to the local limit; returns how many were loaded.

    A web worker calls this once it has started (gunicorn.conf.py), so a worker that has just been
    forked or recycled serves hot links from memory at once instead of asking Redis for each.
    """
    client = _usable_redis()
    if client is None:
        return 0
    now = time.monotonic()
    expires = now + settings.LINK_CACHE_LOCAL_TTL
    loaded = 0
    try:
        # The version first: an edit made while the entries are read then empties them again.
        _seen.update(version=client.get(_VERSION_KEY), checked_at=now)
        keys = list(itertools.islice(client.scan_iter(match=_KEY_PREFIX + "*", count=batch), _LOCAL_MAX_ENTRIES))
        for first in range(0, len(keys), batch):
            chunk = keys[first : first + batch]
            for key, raw in zip(chunk, client.mget(chunk), strict=True):
                if raw is not None:  # expired since the scan
                    _local[key.decode().removeprefix(_KEY_PREFIX)] = (expires, json.loads(raw))
                    loaded += 1
    except Exception as error:  # Redis down: start cold, entries come on demand
        redis_breaker.trip(error)
    return loaded


def link_cache_invalidate(short_id: str) -> None:
    """Forget `short_id` everywhere once the current transaction commits."""

    def _forget():
        _local.pop(short_id, None)
        client = shared_redis()
        if client is None:
            return
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.delete(_key(short_id))
                pipe.incr(_VERSION_KEY)
                pipe.execute()
        except Exception as error:
            # The shared entry expires after LINK_CACHE_SHARED_TTL; log so operators know.
            logger.warning("could not clear the shared cache for link %s: %r", short_id, error)

    transaction.on_commit(_forget)


def link_cache_clear_local() -> None:
    _local.clear()
    _seen.update(version=None, checked_at=0.0)
