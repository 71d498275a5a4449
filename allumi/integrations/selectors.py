from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from allumi.accounts.models import Creator
from allumi.integrations.models import WebhookDelivery, WebhookEndpoint


def endpoint_list(*, creator: Creator) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(creator=creator).order_by("-created_at", "-id")


def endpoint_get_for_creator(*, creator: Creator, endpoint_id) -> WebhookEndpoint:
    """The creator's own endpoint, or 404: another creator's id is indistinguishable from none."""
    return get_object_or_404(WebhookEndpoint, pk=endpoint_id, creator=creator)


def delivery_list(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return endpoint.deliveries.defer("payload", "response_excerpt").order_by("-created_at", "-id")


def delivery_get_for_creator(*, creator: Creator, endpoint_id, delivery_id) -> WebhookDelivery:
    return get_object_or_404(
        WebhookDelivery.objects.select_related("endpoint"), pk=delivery_id, endpoint_id=endpoint_id, endpoint__creator=creator
    )
