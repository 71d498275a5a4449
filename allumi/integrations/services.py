"""Outgoing webhooks: endpoints, events, and delivering them with retries.

Apps below call `webhook_event_emit` inside their own transaction; one delivery row per endpoint
that wants the event is written with it, and a Celery task is enqueued when it commits. A delivery
whose enqueue is lost, and every retry, is picked up by the `deliver_due` sweep from
`next_attempt_at`: nothing depends on the broker keeping a task with a countdown.

Claims: a delivery's `attempts` is its claim token. The sweep and the task each move a delivery
on with a conditional UPDATE that names the attempts they saw, so a duplicate task, a second
worker or a task that arrives late does nothing.
"""

import base64
import hashlib
import json
import logging
import random
import secrets
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from http.client import HTTPException

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from allumi.accounts.models import Creator
from allumi.core.crypto import encrypt
from allumi.integrations import ssrf
from allumi.integrations.models import TEST_EVENT_TYPE, EventType, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
MAX_ENDPOINTS_PER_CREATOR = 10

# Each attempt: connect within 3 s, each read within 5 s, the whole exchange within 15 s, and at
# most 64 KB of the answer read (the first 1 KB is kept for the delivery log).
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
RESPONSE_READ_LIMIT = 64 * 1024
RESPONSE_EXCERPT_CHARS = 1024
USER_AGENT = "Allumi-Webhooks/1.0 (+https://www.standardwebhooks.com)"

# Retries: 30 s, doubling to at most 6 h (±20 % jitter so endpoints that failed together do not
# retry together), for 26 h after the event; then the delivery is given up.
RETRY_FIRST_DELAY = timedelta(seconds=30)
RETRY_MAX_DELAY = timedelta(hours=6)
RETRY_WINDOW = timedelta(hours=26)
RETRY_JITTER = 0.2
# Deliveries given up in a row (each after a day of retries) before an endpoint is switched off.
AUTO_DISABLE_AFTER = 10
# How long a claimed delivery is left alone before the sweep takes it again (a worker died).
ENQUEUE_LEASE = timedelta(minutes=5)
ATTEMPT_LEASE = timedelta(seconds=TOTAL_TIMEOUT * 4)
SWEEP_BATCH = 500


# --- endpoints --------------------------------------------------------------------------------


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def endpoint_url_clean(url: str) -> str:
    """The URL, stripped, or ValidationError when Allumi may not call it."""
    url = url.strip()
    if len(url) > WebhookEndpoint._meta.get_field("url").max_length:
        raise ValidationError({"url": "This URL is too long."})
    try:
        ssrf.target_check(url)
    except ssrf.TargetRefused as error:
        raise ValidationError({"url": str(error)}) from None
    except OSError:
        raise ValidationError({"url": "This host name does not resolve. Check the URL."}) from None
    return url


def _events_clean(events: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(events))
    unknown = [event for event in wanted if event not in EventType.values]
    if unknown:
        raise ValidationError({"events": f"Unknown event types: {', '.join(unknown)}."})
    if not wanted:
        raise ValidationError({"events": "Choose at least one event."})
    return [event for event in EventType.values if event in wanted]


def endpoint_create(
    *, creator: Creator, url: str, events: Iterable[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it with its signing secret, which is not shown again."""
    if WebhookEndpoint.objects.filter(creator=creator).count() >= MAX_ENDPOINTS_PER_CREATOR:
        raise ValidationError(f"You can have at most {MAX_ENDPOINTS_PER_CREATOR} webhook endpoints.")
    events = _events_clean(events)
    url = endpoint_url_clean(url)
    secret = _new_secret()
    endpoint = WebhookEndpoint.objects.create(
        creator=creator,
        url=url,
        description=description.strip()[:200],
        events=events,
        secret_encrypted=encrypt(secret),
        secret_hint=secret[-4:],
    )
    return endpoint, secret


def _deliveries_close(*, endpoint: WebhookEndpoint, reason: str) -> int:
    return WebhookDelivery.objects.filter(endpoint=endpoint, status__in=WebhookDelivery.OPEN).update(
        status=WebhookDelivery.Status.GIVEN_UP, next_attempt_at=None, last_error=reason
    )


@transaction.atomic
def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str = "Disabled by you.") -> WebhookEndpoint:
    """Stop sending to `endpoint`; its waiting deliveries are given up (redeliver them later)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False, disabled_reason=reason[:255])
    _deliveries_close(endpoint=endpoint, reason="The endpoint was disabled.")
    endpoint.refresh_from_db()
    return endpoint


def endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=True, disabled_reason="", consecutive_failures=0)
    endpoint.refresh_from_db()
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery log."""
    endpoint.delete()


def _endpoint_auto_disable(*, endpoint_id: int) -> None:
    """Switch off an endpoint that kept failing, once, and tell its creator."""
    reason = f"Disabled automatically after {AUTO_DISABLE_AFTER} deliveries in a row failed for a day."
    with transaction.atomic():
        if not WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True).update(is_active=False, disabled_reason=reason):
            return  # already off: someone else got here first
        endpoint = WebhookEndpoint.objects.select_related("creator").get(pk=endpoint_id)
        _deliveries_close(endpoint=endpoint, reason="The endpoint was disabled.")
        page = settings.SITE_URL + reverse("integrations:detail", args=[endpoint.pk])
        subject = "Allumi stopped sending webhooks to one of your endpoints"
        body = (
            f"Hi {endpoint.creator.name or endpoint.creator.email},\n\n"
            f"Allumi could not deliver events to {endpoint.url} for more than a day: the last "
            f"{AUTO_DISABLE_AFTER} events each failed every retry. To stop knocking on a closed door we have "
            "disabled this endpoint.\n\n"
            f"When it answers again, enable it and redeliver what it missed here:\n{page}\n\n"
            "— Allumi\n"
        )
        recipient = endpoint.creator.email
        transaction.on_commit(lambda: send_mail(subject, body, None, [recipient], fail_silently=True))
    logger.warning("webhook endpoint %s disabled after repeated failures", endpoint_id)


# --- events -----------------------------------------------------------------------------------


def _event_id(*, creator_id: int, event_type: str, key: str | None) -> str:
    if key is None:
        return "evt_" + secrets.token_hex(12)
    # The same fact (a conversion refunded to the same amount) makes the same event id, and the
    # unique (endpoint, event id) constraint makes a repeated emit a no-op.
    return "evt_" + hashlib.sha256(f"{creator_id}:{event_type}:{key}".encode()).hexdigest()[:24]


def _send(deliveries: list[tuple[int, int]]) -> None:
    """Enqueue a delivery task per (delivery id, attempts) pair."""
    from allumi.integrations.tasks import deliver

    for delivery_id, attempts in deliveries:
        try:
            deliver.delay(delivery_id, attempts)
        except Exception as error:  # broker down: the sweep picks it up from next_attempt_at
            logger.warning("could not enqueue webhook delivery %s: %r", delivery_id, error)


def _enqueue(deliveries: list[tuple[int, int]]) -> None:
    """Enqueue once the transaction that wrote the deliveries commits."""
    if deliveries:
        transaction.on_commit(lambda: _send(deliveries))


def webhook_event_emit(
    *,
    creator_id: int,
    event_type: str,
    data: Mapping | Callable[[], Mapping],
    key: str | None = None,
) -> list[WebhookDelivery]:
    """Queue `event_type` for every active endpoint of the creator that subscribes to it.

    `data` may be a callable, so callers build a payload only when someone listens. With `key`
    the event id is derived from it and emitting the same key again does nothing. Never raises
    into the caller's business: a failure to queue a webhook is logged, not propagated.
    """
    event_type = str(event_type)
    endpoints = [
        endpoint.pk
        for endpoint in WebhookEndpoint.objects.filter(creator_id=creator_id, is_active=True).only("id", "events")
        if endpoint.subscribes_to(event_type)
    ]
    if not endpoints:
        return []
    try:
        with transaction.atomic():
            return _deliveries_create(
                endpoint_ids=endpoints,
                event_type=event_type,
                data=data() if callable(data) else data,
                event_id=_event_id(creator_id=creator_id, event_type=event_type, key=key),
            )
    except Exception:
        logger.exception("could not queue %s webhooks for creator %s", event_type, creator_id)
        return []


def _payload(*, event_type: str, data: Mapping, at: datetime) -> dict:
    # Through the JSON encoder now, so what is stored is exactly what is sent (decimals, dates).
    return json.loads(
        json.dumps({"type": event_type, "timestamp": at.isoformat().replace("+00:00", "Z"), "data": data}, cls=DjangoJSONEncoder)
    )


def _deliveries_create(
    *, endpoint_ids: list[int], event_type: str, data: Mapping, event_id: str, manual: bool = False
) -> list[WebhookDelivery]:
    now = timezone.now()
    payload = _payload(event_type=event_type, data=data, at=now)
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint_id=endpoint_id, event_id=event_id, event_type=event_type, payload=payload,
                manual=manual, next_attempt_at=now, created_at=now,
            )
            for endpoint_id in endpoint_ids
        ],
        ignore_conflicts=True,
    )
    # ignore_conflicts leaves primary keys unset: read back the rows this call made.
    deliveries = list(
        WebhookDelivery.objects.filter(endpoint_id__in=endpoint_ids, event_id=event_id, created_at=now, attempts=0)
    )
    _enqueue([(delivery.pk, delivery.attempts) for delivery in deliveries])
    return deliveries


def webhook_test_send(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a `webhook.test` event to one endpoint: one attempt, shown in its delivery log."""
    if not endpoint.is_active:
        raise ValidationError("Enable the endpoint before sending it a test event.")
    data = {
        "message": "A test event from Allumi. Your endpoint received it and its signature can be checked.",
        "endpoint_id": endpoint.pk,
    }
    with transaction.atomic():
        (delivery,) = _deliveries_create(
            endpoint_ids=[endpoint.pk], event_type=TEST_EVENT_TYPE, data=data,
            event_id=_event_id(creator_id=endpoint.creator_id, event_type=TEST_EVENT_TYPE, key=None), manual=True,
        )
    return delivery


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, with the same event id. A finished delivery gets one attempt;
    one still retrying simply retries now."""
    if not delivery.endpoint.is_active:
        raise ValidationError("Enable the endpoint before redelivering to it.")
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        if delivery.status not in WebhookDelivery.OPEN:
            delivery.status = WebhookDelivery.Status.PENDING
            delivery.manual = True
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["status", "manual", "next_attempt_at"])
        _enqueue([(delivery.pk, delivery.attempts)])
    return delivery


# --- delivering -------------------------------------------------------------------------------


def retry_delay(*, attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt (1-based), with jitter."""
    base = min(RETRY_FIRST_DELAY * 2 ** min(attempts - 1, 30), RETRY_MAX_DELAY)
    return base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)


def _claim(*, delivery_id: int, attempts: int) -> bool:
    now = timezone.now()
    return bool(
        WebhookDelivery.objects.filter(pk=delivery_id, status__in=WebhookDelivery.OPEN, attempts=attempts).update(
            attempts=attempts + 1, next_attempt_at=now + ATTEMPT_LEASE, last_attempt_at=now
        )
    )


def _error_text(error: BaseException) -> str:
    if isinstance(error, ssrf.TargetRefused):
        return f"Refused: {error}"
    if isinstance(error, socket.gaierror):
        return "The host name does not resolve."
    if isinstance(error, TimeoutError):
        return f"Timed out ({error})." if str(error) not in ("", "timed out") else "Timed out."
    if isinstance(error, ConnectionRefusedError):
        return "Connection refused."
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, HTTPException):
        return f"Invalid HTTP answer: {type(error).__name__}"
    return f"{type(error).__name__}: {error}"[:500]


def _signed_headers(*, endpoint: WebhookEndpoint, event_id: str, body: str) -> dict[str, str]:
    now = timezone.now()
    signature = Webhook(endpoint.secret).sign(event_id, now, body)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def delivery_attempt(*, delivery_id: int, attempts: int | None = None) -> WebhookDelivery | None:
    """Make one attempt at a delivery, if it is still open and nobody else has claimed it.

    `attempts` is the count the caller saw (the claim token); None reads the current one.
    Returns the delivery after the attempt, or None when there was nothing to do.
    """
    if attempts is None:
        attempts = WebhookDelivery.objects.filter(pk=delivery_id).values_list("attempts", flat=True).first()
        if attempts is None:
            return None
    if not _claim(delivery_id=delivery_id, attempts=attempts):
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, attempts=attempts + 1)
    if not endpoint.is_active:
        claimed.update(status=WebhookDelivery.Status.GIVEN_UP, next_attempt_at=None, last_error="The endpoint is disabled.")
        delivery.refresh_from_db()
        return delivery
    body = json.dumps(delivery.payload, separators=(",", ":"))
    status_code, excerpt, error_text = None, "", ""
    try:
        target = ssrf.target_check(endpoint.url)
        headers = _signed_headers(endpoint=endpoint, event_id=delivery.event_id, body=body)
        response = ssrf.post(
            target,
            body=body.encode(),
            headers=headers,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            total_timeout=TOTAL_TIMEOUT,
            max_response_bytes=RESPONSE_READ_LIMIT,
        )
    except (ssrf.TargetRefused, OSError, HTTPException, ValueError) as error:  # ValueError: secret unreadable
        error_text = _error_text(error)
    else:
        status_code = response.status
        excerpt = response.body[: RESPONSE_EXCERPT_CHARS * 4].decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS]
        if not 200 <= status_code < 300:
            error_text = f"HTTP {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
    now = timezone.now()
    outcome = {"last_status_code": status_code, "last_error": error_text[:500], "response_excerpt": excerpt}
    if not error_text:
        claimed.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now, next_attempt_at=None, **outcome)
        WebhookEndpoint.objects.filter(pk=endpoint.pk, consecutive_failures__gt=0).update(consecutive_failures=0)
    else:
        deadline = delivery.created_at + RETRY_WINDOW
        if delivery.manual or now >= deadline:
            if claimed.update(status=WebhookDelivery.Status.GIVEN_UP, next_attempt_at=None, **outcome) and not delivery.manual:
                _failure_count(endpoint_id=endpoint.pk)
        else:
            next_at = min(now + retry_delay(attempts=attempts + 1), deadline)
            claimed.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=next_at, **outcome)
    delivery.refresh_from_db()
    return delivery


def _failure_count(*, endpoint_id: int) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=F("consecutive_failures") + 1)
    failures = WebhookEndpoint.objects.filter(pk=endpoint_id).values_list("consecutive_failures", flat=True).first()
    if failures is not None and failures >= AUTO_DISABLE_AFTER:
        _endpoint_auto_disable(endpoint_id=endpoint_id)


def deliveries_enqueue_due(*, limit: int = SWEEP_BATCH) -> int:
    """Enqueue deliveries whose next attempt is due: retries, and first attempts whose enqueue was
    lost. Each is claimed for ENQUEUE_LEASE first, so the next sweep does not send it twice."""
    now = timezone.now()
    due = list(
        WebhookDelivery.objects.filter(status__in=WebhookDelivery.OPEN, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("id", "attempts")[:limit]
    )
    claimed = [
        (delivery_id, attempts)
        for delivery_id, attempts in due
        if WebhookDelivery.objects.filter(
            pk=delivery_id, attempts=attempts, status__in=WebhookDelivery.OPEN, next_attempt_at__lte=now
        ).update(next_attempt_at=now + ENQUEUE_LEASE)
    ]
    _send(claimed)  # each claim above committed on its own: nothing to wait for
    return len(claimed)
