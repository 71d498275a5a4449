from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from allumi.accounts.models import Creator
from links.models import Link


def link_list(*, creator: Creator, search: str = "", tag: str = "", archived: bool | None = False) -> QuerySet[Link]:
    links = Link.objects.filter(creator=creator).prefetch_related("tags")
    if archived is not None:
        links = links.filter(archived_at__isnull=not archived)
    if search:
        links = links.filter(Q(title__icontains=search) | Q(short_id__icontains=search) | Q(url__icontains=search))
    if tag:
        links = links.filter(tags__name__iexact=tag)
    return links.order_by("-created_at", "-id")


def link_get_for_creator(*, creator: Creator, link_id) -> Link:
    """The creator's own link, or 404: another creator's id is indistinguishable from none."""
    return get_object_or_404(Link.objects.prefetch_related("tags"), pk=link_id, creator=creator)
