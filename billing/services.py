"""Whop services: connections, processing stored deliveries, reconciliation, Allumi's own plans."""

import json
import logging
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from allumi.accounts.models import Creator
from allumi.core.crypto import encrypt
from attribution.conversions import conversion_record, conversion_refund, identity_observe
from attribution.models import Conversion, Identifier
from billing.models import Plan, Subscription, WhopConnection, WhopEvent, WhopMembership, WhopRefund

logger = logging.getLogger(__name__)

# Refund statuses that do not (or no longer) take money back.
_REFUND_NOT_TAKEN = {"failed", "canceled", "cancelled"}
_RECORDED_ONLY = ("payment.failed", "payment.pending", "dispute.")


class EventError(Exception):
    """A delivery that cannot be processed as it stands (its status becomes failed)."""


# --- connections ------------------------------------------------------------------------------

_CONNECTION_CACHE_SECONDS = 10.0
_connections_by_token: dict[str, tuple[float, WhopConnection, str]] = {}


def connection_for_token(token: str) -> tuple[WhopConnection, str] | None:
    """The connection behind a webhook URL and its decrypted signing secret, kept in this
    process for a few seconds: a burst of deliveries costs one query and one decryption."""
    now = time.monotonic()
    hit = _connections_by_token.get(token)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    connection = WhopConnection.objects.filter(token=token).first()
    if connection is None:
        return None
    try:
        secret = connection.signing_secret
    except ValueError:  # encrypted under another SECRET_KEY: every signature will fail
        secret = ""
    if len(_connections_by_token) > 10_000:
        _connections_by_token.clear()
    _connections_by_token[token] = (now + _CONNECTION_CACHE_SECONDS, connection, secret)
    return connection, secret


def whop_connection_create(*, creator: Creator, signing_secret: str = "") -> WhopConnection:
    secret = signing_secret or "ws_" + secrets.token_urlsafe(32)
    return WhopConnection.objects.create(
        creator=creator,
        token=secrets.token_urlsafe(24),
        signing_secret_encrypted=encrypt(secret),
        secret_hint=secret[-4:],
    )


def whop_connection_update(
    *, connection: WhopConnection, signing_secret: str | None = None, api_key: str | None = None, company_id: str | None = None
) -> WhopConnection:
    """Replace what the creator pasted; an empty or None value leaves that part as it was."""
    fields = []
    if signing_secret:
        connection.signing_secret_encrypted = encrypt(signing_secret.strip())
        connection.secret_hint = signing_secret.strip()[-4:]
        fields += ["signing_secret_encrypted", "secret_hint"]
    if api_key:
        connection.api_key_encrypted = encrypt(api_key.strip())
        fields.append("api_key_encrypted")
    if company_id is not None:
        connection.company_id = company_id.strip()
        fields.append("company_id")
    if fields:
        connection.save(update_fields=fields)
        _connections_by_token.pop(connection.token, None)  # other processes follow within seconds
    return connection


# --- reading Whop's payloads ------------------------------------------------------------------


def _money(value) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, TypeError, ValueError):
        raise EventError(f"not an amount: {value!r}") from None


def _when(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise EventError(f"not a time: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _nested(data: dict, *path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


# --- processing -------------------------------------------------------------------------------


def _payment_refunded_total(creator: Creator, payment_id: str, reported: Decimal) -> Decimal:
    refunds = (
        WhopRefund.objects.filter(creator=creator, payment_id=payment_id)
        .exclude(status__in=_REFUND_NOT_TAKEN)
        .aggregate(total=Sum("amount"))["total"]
    )
    return max(refunds or Decimal(0), reported)


def payment_record(*, creator: Creator, payment: dict, envelope_time=None) -> Conversion:
    """A succeeded Whop payment as a purchase conversion (once per payment id)."""
    payment_id = payment.get("id")
    if not isinstance(payment_id, str) or not payment_id:
        raise EventError("payment without an id")
    metadata = payment.get("metadata") if isinstance(payment.get("metadata"), dict) else {}
    click_id = metadata.get("allumi_cid") if isinstance(metadata.get("allumi_cid"), str) else ""
    conversion, _ = conversion_record(
        creator=creator,
        event="purchase",
        source=Conversion.Source.WHOP,
        external_id=payment_id,
        email=_nested(payment, "user", "email") or "",
        whop_user_id=_nested(payment, "user", "id") or "",
        click_id=click_id[:64],
        amount=_money(payment.get("total")),
        currency=str(payment.get("currency") or "usd")[:3],
        occurred_at=_when(payment.get("paid_at")) or _when(payment.get("created_at")) or _when(envelope_time) or timezone.now(),
        metadata={
            key: value
            for key, value in {
                "product_id": _nested(payment, "product", "id"),
                "product_title": _nested(payment, "product", "title"),
                "plan_id": _nested(payment, "plan", "id"),
                "membership_id": _nested(payment, "membership", "id"),
                "billing_reason": payment.get("billing_reason"),
            }.items()
            if value
        },
    )
    reported = _money(payment.get("refunded_amount") or 0)
    # Deliveries come in any order: a late copy of the payment never lowers what is refunded.
    refunded = max(_payment_refunded_total(creator, payment_id, reported), conversion.refunded_amount)
    if refunded != conversion.refunded_amount:
        conversion = conversion_refund(conversion=conversion, refunded_amount=refunded)
    _refunds_waiting_done(creator=creator, payment_id=payment_id)
    return conversion


def refund_record(*, creator: Creator, refund: dict) -> bool:
    """Store a refund and apply it to its payment's conversion; False while that payment is unknown."""
    payment_id = _nested(refund, "payment", "id") or refund.get("payment_id")
    if not refund.get("id") or not payment_id:
        raise EventError("refund without an id or a payment id")
    WhopRefund.objects.update_or_create(
        creator=creator,
        refund_id=refund["id"],
        defaults={
            "payment_id": payment_id,
            "amount": _money(refund.get("amount")),
            "currency": str(refund.get("currency") or "usd").upper()[:3],
            "status": str(refund.get("status") or "succeeded")[:32],
            "created_at": _when(refund.get("created_at")) or timezone.now(),
        },
    )
    conversion = Conversion.objects.filter(creator=creator, external_id=payment_id).first()
    if conversion is None:
        return False  # applied when the payment arrives (payment_record adds stored refunds)
    total = _payment_refunded_total(creator, payment_id, Decimal(0))
    if str(refund.get("status") or "").lower() not in _REFUND_NOT_TAKEN:
        # Whop's own refunded_amount on the payment may already count refunds we never saw.
        total = max(total, conversion.refunded_amount)
    conversion_refund(conversion=conversion, refunded_amount=total)
    return True


def membership_record(*, creator: Creator, membership: dict, active: bool, event_time=None) -> WhopMembership:
    user_id = _nested(membership, "user", "id") or ""
    email = (_nested(membership, "user", "email") or "").strip().lower()
    keys = [(Identifier.Kind.WHOP_USER, user_id), (Identifier.Kind.EMAIL, email)]
    identity = None
    if user_id or email:
        identity = identity_observe(creator=creator, keys=keys, seen_at=timezone.now())
    started = _when(membership.get("created_at"))
    happened = _when(event_time) or timezone.now()
    row, _ = WhopMembership.objects.select_for_update().get_or_create(
        creator=creator, membership_id=membership["id"], defaults={"status": "new"}
    )
    if row.last_event_at and row.last_event_at > happened:
        return row  # an older event arriving late does not undo a newer one
    row.last_event_at = happened
    row.whop_user_id = user_id
    row.email = email
    row.identity_id = identity.id if identity else None
    row.product_id = _nested(membership, "product", "id") or ""
    row.plan_id = _nested(membership, "plan", "id") or ""
    row.status = str(membership.get("status") or ("active" if active else "inactive"))[:32]
    row.started_at = row.started_at or started or timezone.now()
    row.ended_at = None if active else happened
    row.save()
    return row


def _plan_membership(*, membership: dict, active: bool) -> None:
    """Allumi's own plans: the member's email names the creator; the Whop plan names the plan."""
    email = (_nested(membership, "user", "email") or "").strip().lower()
    creator = Creator.objects.filter(email__iexact=email).first() if email else None
    if creator is None:
        logger.info("plan membership for an email with no creator account: ignored")
        return
    whop_plan = _nested(membership, "plan", "id") or ""
    plan = next((p for p in Plan.objects.all() if whop_plan and whop_plan in [x.strip() for x in p.whop_plan_id.split(",")]), None)
    current = Subscription.objects.filter(creator=creator).first()
    if not active and current is not None and current.membership_id and current.membership_id != membership.get("id"):
        return  # the end of a membership the creator already replaced changes nothing
    if plan is None or not active:
        plan = Plan.objects.filter(is_default=True).first()
    if plan is not None:
        Subscription.objects.update_or_create(
            creator=creator, defaults={"plan": plan, "membership_id": membership.get("id") or "", "active": active}
        )


def _dispatch(event: WhopEvent, payload: dict) -> str:
    data = payload.get("data") or {}
    kind = event.event_type
    if event.endpoint == WhopEvent.PLATFORM:
        if kind in ("membership.activated", "membership.went_valid"):
            _plan_membership(membership=data, active=True)
        elif kind in ("membership.deactivated", "membership.went_invalid"):
            _plan_membership(membership=data, active=False)
        else:
            return WhopEvent.Status.IGNORED
        return WhopEvent.Status.PROCESSED
    creator = event.connection.creator
    if kind == "payment.succeeded":
        payment_record(creator=creator, payment=data, envelope_time=payload.get("timestamp"))
    elif kind in ("refund.created", "refund.updated"):
        if not refund_record(creator=creator, refund=data):
            return WhopEvent.Status.WAITING
    elif kind in ("membership.activated", "membership.went_valid"):
        membership_record(creator=creator, membership=data, active=True, event_time=payload.get("timestamp"))
    elif kind in ("membership.deactivated", "membership.went_invalid"):
        membership_record(creator=creator, membership=data, active=False, event_time=payload.get("timestamp"))
    elif kind.startswith(_RECORDED_ONLY):
        pass  # kept and shown on the settings page; nothing to attribute
    else:
        return WhopEvent.Status.IGNORED
    return WhopEvent.Status.PROCESSED


def whop_event_process(*, event_id: int) -> WhopEvent:
    """Process one stored delivery. Safe to repeat: every effect is keyed by Whop's own ids.

    Its effects commit together with its new status; a failure rolls the effects back and is
    recorded (status, attempts, last error) outside that transaction, then raised for a retry.
    """
    try:
        with transaction.atomic():
            event = WhopEvent.objects.select_for_update(of=("self",)).select_related("connection__creator").get(pk=event_id)
            if event.status in (WhopEvent.Status.PROCESSED, WhopEvent.Status.IGNORED):
                return event
            event.status = _dispatch(event, json.loads(event.body))
            event.attempts += 1
            event.last_error = ""
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "attempts", "last_error", "processed_at"])
            return event
    except WhopEvent.DoesNotExist:
        raise
    except Exception as error:
        WhopEvent.objects.filter(pk=event_id).update(
            status=WhopEvent.Status.FAILED, attempts=F("attempts") + 1, last_error=f"{error.__class__.__name__}: {error}"[:2000]
        )
        raise


def whop_event_reprocess(*, event: WhopEvent) -> None:
    """An operator's or creator's retry: back to pending and into the queue."""
    from billing.tasks import process_whop_event

    WhopEvent.objects.filter(pk=event.pk).exclude(status=WhopEvent.Status.PROCESSED).update(status=WhopEvent.Status.PENDING)
    transaction.on_commit(lambda: process_whop_event.delay(event.pk))


def _refunds_waiting_done(*, creator: Creator, payment_id: str) -> None:
    """Deliveries of refunds that waited for this payment are applied now (payment_record added them)."""
    waiting = WhopEvent.objects.filter(
        connection__creator=creator, status=WhopEvent.Status.WAITING, event_type__startswith="refund."
    ).only("id", "body")
    done = [event.id for event in waiting if _nested(json.loads(event.body), "data", "payment", "id") == payment_id]
    WhopEvent.objects.filter(id__in=done).update(status=WhopEvent.Status.PROCESSED, processed_at=timezone.now())
