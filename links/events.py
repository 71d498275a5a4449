"""What links tell outgoing webhooks (allumi.integrations): the `link.created` event."""

from allumi.integrations.models import EventType
from allumi.integrations.services import webhook_event_emit
from links.models import Link


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def link_event_data(link: Link) -> dict:
    return {
        "link": {
            "id": link.pk,
            "short_id": link.short_id,
            "short_url": link.short_url,
            "url": link.url,
            "destination": link.destination,
            "title": link.title,
            "utm": link.utm(),
            "tags": sorted(tag.name for tag in link.tags.all()),
            "pass_click_id": link.pass_click_id,
            "is_active": link.is_active,
            "expires_at": _iso(link.expires_at),
            "created_at": _iso(link.created_at),
        }
    }


def link_created_emit(*, link: Link) -> None:
    webhook_event_emit(
        creator_id=link.creator_id, event_type=EventType.LINK_CREATED, data=lambda: link_event_data(link), key=str(link.pk)
    )
