"""What attribution tells outgoing webhooks (allumi.integrations): conversions recorded, credited
to links, and refunded. Payloads are built only when an endpoint listens (see EVENTS.md there)."""

from decimal import Decimal

from allumi.integrations.models import EventType
from allumi.integrations.services import webhook_event_emit
from attribution.models import AttributionModel, AttributionSettings, Conversion, Credit


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _money(value):
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


def _conversion(conversion: Conversion) -> dict:
    amount = conversion.amount
    return {
        "id": conversion.pk,
        "external_id": conversion.external_id,
        "event": conversion.event,
        "source": conversion.source,
        "status": conversion.status,
        "amount": _money(amount),
        "refunded_amount": _money(conversion.refunded_amount),
        "net_amount": _money(None if amount is None else amount - conversion.refunded_amount),
        "currency": conversion.currency,
        "occurred_at": _iso(conversion.occurred_at),
        "email": conversion.email,
        "click_id": conversion.click_id,
        "visitor_id": conversion.visitor_id,
        "whop_user_id": conversion.whop_user_id,
        "metadata": conversion.metadata,
    }


def _attribution(conversion: Conversion) -> dict:
    """Credits under the creator's default model, with how sure Allumi is of the journey."""
    model = (
        AttributionSettings.objects.filter(creator_id=conversion.creator_id).values_list("default_model", flat=True).first()
        or AttributionModel.LAST_TOUCH
    )
    credits = Credit.objects.filter(conversion=conversion, model=model).select_related("link").order_by("id")
    return {
        "model": str(model),
        "confidence": conversion.confidence,
        "method": (conversion.evidence or {}).get("method"),
        "identity_id": conversion.identity_id,
        "attributed_at": _iso(conversion.attributed_at),
        "credits": [
            {"link_id": credit.link_id, "short_id": credit.link.short_id, "weight": str(credit.weight), "revenue": str(credit.revenue)}
            for credit in credits
        ],
    }


def conversion_created_emit(*, conversion: Conversion) -> None:
    webhook_event_emit(
        creator_id=conversion.creator_id, event_type=EventType.CONVERSION_CREATED,
        data=lambda: {"conversion": _conversion(conversion)}, key=str(conversion.pk),
    )


def conversion_attributed_emit(*, conversion: Conversion) -> None:
    """Sent after every attribution that found a journey; a re-attribution (an identity merge, a
    change of window) sends it again with the credits as they now stand."""
    webhook_event_emit(
        creator_id=conversion.creator_id, event_type=EventType.CONVERSION_ATTRIBUTED,
        data=lambda: {"conversion": _conversion(conversion), "attribution": _attribution(conversion)},
    )


def conversion_refunded_emit(*, conversion: Conversion) -> None:
    """Sent once per refunded total: the same refund reported twice is one event."""
    if not conversion.refunded_amount:
        return
    webhook_event_emit(
        creator_id=conversion.creator_id, event_type=EventType.CONVERSION_REFUNDED,
        data=lambda: {
            "conversion": _conversion(conversion),
            "attribution": _attribution(conversion) if conversion.status == Conversion.Status.ATTRIBUTED else None,
        },
        key=f"{conversion.pk}:{_money(conversion.refunded_amount)}",
    )
