"""`POST /webhooks/whop/<token>` (a creator's store) and `POST /webhooks/whop` (Allumi's own plans).

Verify → store the raw delivery once → answer 2xx within milliseconds → Celery processes it.
Only deliveries that fail verification count towards the per-address limit: a correctly signed
delivery is never refused for rate.
"""

import hashlib
import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_ratelimit.core import is_ratelimited

from allumi.core.api import error_response
from allumi.core.client_ip import client_ip
from allumi.core.metrics import webhook_deliveries
from allumi.core.queue import enqueue
from billing.models import WhopConnection, WhopEvent
from billing.services import connection_for_token
from billing.signatures import InvalidSignature, verify_delivery

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
_KEPT_HEADERS = ("webhook-id", "webhook-timestamp", "user-agent", "content-type")


def _client_key(group, request) -> str:
    return client_ip(request) or "unknown"


_OUTCOMES = {401: "invalid_signature", 400: "malformed", 404: "unknown_endpoint", 413: "too_large", 429: "rate_limited"}


def _receive(request, **kwargs):
    response = _store_if_genuine(request, **kwargs)
    outcome = _OUTCOMES.get(response.status_code) or json.loads(response.content).get("status", "other")
    webhook_deliveries.labels(outcome=outcome).inc()
    return response


def _store_if_genuine(request, *, endpoint: str, secret: str, connection: WhopConnection | None):
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        return error_response("payload_too_large", f"Webhook bodies may be at most {MAX_BODY_BYTES} bytes.", 413)
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return error_response("payload_too_large", f"Webhook bodies may be at most {MAX_BODY_BYTES} bytes.", 413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # Nothing we could store or parse, signed or not: malformed, and refused before any work.
        return error_response("malformed_body", "The body must be UTF-8 encoded JSON.", 400)
    try:
        webhook_id = verify_delivery(secret, request.headers, body)
    except InvalidSignature as error:
        if is_ratelimited(request, group="whop-webhook-failures", key=_client_key, rate=settings.RATELIMITS["webhook_failures"], increment=True):
            response = error_response("rate_limited", "Too many deliveries with bad signatures from this address.", 429)
            response["Retry-After"] = "60"
            return response
        return error_response("invalid_signature", f"Signature check failed: {error}.", 401)
    try:
        payload = json.loads(body)
        event_type = payload["type"]
        data = payload.get("data") or {}
        if not isinstance(event_type, str) or not isinstance(data, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        return error_response("malformed_body", "The body must be a JSON object with a 'type' and a 'data' object.", 400)
    webhook_id = webhook_id or str(payload.get("id") or "") or "sha256:" + hashlib.sha256(body).hexdigest()
    object_id = data.get("id") if isinstance(data.get("id"), str) else ""
    try:
        # One INSERT, committed on its own: the unique (endpoint, webhook-id) decides duplicates,
        # and no other row is locked, so deliveries to one store never queue behind each other.
        with transaction.atomic():
            event = WhopEvent.objects.create(
                endpoint=endpoint,
                connection_id=connection.id if connection else None,
                webhook_id=webhook_id[:128],
                event_type=event_type[:64],
                object_id=object_id[:64],
                headers={name: request.headers.get(name, "") for name in _KEPT_HEADERS if request.headers.get(name)},
                body=text,
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate"}, status=200)
    if connection is not None:
        _note_delivery(connection, event.received_at)
    from billing.tasks import process_whop_event

    # Not sent (broker down): the event is stored, and the sweep retries pending events.
    transaction.on_commit(lambda: enqueue(process_whop_event, event.id))
    return JsonResponse({"status": "received", "id": event.id}, status=200)


def _note_delivery(connection: WhopConnection, when) -> None:
    """Last delivery time for the settings page, written at most once a minute per store.

    `connection` is this process's cached copy: once it has noted a delivery, the next minute of
    deliveries costs no query at all.
    """
    if connection.last_delivery_at is not None and when - connection.last_delivery_at < timedelta(minutes=1):
        return
    WhopConnection.objects.filter(pk=connection.id).filter(
        Q(last_delivery_at__isnull=True) | Q(last_delivery_at__lt=when - timedelta(minutes=1))
    ).update(last_delivery_at=when)
    connection.last_delivery_at = when


@csrf_exempt
@require_POST
def whop_webhook(request, token: str):
    found = connection_for_token(token)
    if found is None:
        webhook_deliveries.labels(outcome="unknown_endpoint").inc()
        return error_response("unknown_endpoint", "No Whop connection has this webhook URL.", 404)
    connection, secret = found
    return _receive(request, endpoint=f"creator:{connection.creator_id}", secret=secret, connection=connection)


@csrf_exempt
@require_POST
def platform_webhook(request):
    if not settings.WHOP_WEBHOOK_SECRET:
        return error_response("unknown_endpoint", "Allumi's own plans webhook is not configured.", 404)
    return _receive(request, endpoint=WhopEvent.PLATFORM, secret=settings.WHOP_WEBHOOK_SECRET, connection=None)
