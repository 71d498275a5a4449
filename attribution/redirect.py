"""`GET|HEAD /l/<short_id>`: the hot path. Look the link up in cache, make the click durable (one
line appended to this process's spool file, attribution/spool.py), answer 302. No identity work,
no Celery or Redis round trip, no counters here."""

import time

from django.conf import settings
from django.http import Http404, HttpResponse

from attribution.services import (
    click_capture,
    click_payload,
    new_click_id,
    new_visitor_id,
    visitor_cookie_value,
    visitor_id_from_cookie,
)
from links.cache import link_entry
from links.destinations import with_click_id


def _redirect(location: str) -> HttpResponse:
    response = HttpResponse(status=302)
    response["Location"] = location
    response["Cache-Control"] = "private, no-store"
    return response


def follow_link(request, short_id: str):
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(status=405)
        response["Allow"] = "GET, HEAD"
        return response
    entry = link_entry(short_id)
    if entry is None or not entry["active"]:
        raise Http404("No such link.")
    now = time.time()
    if entry["expires_at"] is not None and entry["expires_at"] <= now:
        if entry["expired_url"]:
            return _redirect(entry["expired_url"])
        raise Http404("This link has expired.")

    cookie = request.COOKIES.get(settings.VISITOR_COOKIE_NAME)
    visitor_id = visitor_id_from_cookie(cookie)
    if visitor_id is None:
        visitor_id = new_visitor_id()
        cookie = visitor_cookie_value(visitor_id)
    click_id = new_click_id()
    click_capture(
        payload=click_payload(
            request=request,
            link_id=entry["id"],
            creator_id=entry["creator_id"],
            click_id=click_id,
            visitor_id=visitor_id,
            occurred_at=now,
        )
    )
    response = _redirect(with_click_id(entry["prefix"], entry["fragment"], click_id if entry["pass_click_id"] else None))
    response.set_cookie(
        settings.VISITOR_COOKIE_NAME,
        cookie,
        max_age=settings.VISITOR_COOKIE_MAX_AGE,
        httponly=True,
        secure=settings.VISITOR_COOKIE_SECURE,
        samesite="None" if settings.VISITOR_COOKIE_SECURE else "Lax",
    )
    return response
