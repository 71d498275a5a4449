"""Dashboard pages that report traffic: the link list with its counts, and a link's detail."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from attribution.selectors import link_click_counts, link_recent_clicks, link_traffic
from links.forms import LinkFilterForm
from links.selectors import link_get_for_creator, link_list


@login_required
def link_list_page(request):
    filters = LinkFilterForm(request.GET or None)
    params = filters.cleaned_data if filters.is_valid() else {}
    archived = {"archived": True, "all": None}.get(params.get("show"), False)
    links = link_list(creator=request.user, search=params.get("q", ""), tag=params.get("tag", ""), archived=archived)
    page = Paginator(links, 50).get_page(request.GET.get("page"))
    counts = link_click_counts(link_ids=[link.id for link in page])
    rows = [(link, counts.get(link.id, {"clicks": 0, "unique_visitors": 0})) for link in page]
    tags = request.user.tags.order_by("name").values_list("name", flat=True)
    return render(
        request,
        "links/list.html",
        {"page": page, "rows": rows, "filters": filters, "tags": tags, "has_any_link": request.user.links.exists()},
    )


@login_required
def link_detail_page(request, link_id: int):
    link = link_get_for_creator(creator=request.user, link_id=link_id)
    return render(
        request,
        "links/detail.html",
        {"link": link, "traffic": link_traffic(link=link), "recent_clicks": link_recent_clicks(link=link)},
    )
