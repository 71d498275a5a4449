"""Dashboard pages that report: overview, links with their traffic, conversions with evidence,
journeys, model comparison, attribution settings and CSV exports."""

import csv
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q, Sum
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse

from attribution import reports
from attribution.charts import bar_chart
from attribution.conversions import attribution_settings_for, recompute_start
from attribution.credit import MODELS
from attribution.forms import AttributionSettingsForm, ConversionFilterForm, PeriodForm
from attribution.models import AttributionModel, Click, Conversion, Credit, DailyLinkCredit, Identity, Recompute
from attribution.selectors import link_click_counts, link_recent_clicks
from links.forms import LinkFilterForm
from links.selectors import link_get_for_creator, link_list

_MODEL_LABELS = dict(AttributionModel.choices)


def _period_and_model(request, form_class=PeriodForm):
    prefs = attribution_settings_for(request.user.id)
    form = form_class(request.GET or None, initial={"range": "30d", "model": prefs.default_model})
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    period = reports.period_for(data.get("range") or "30d", data.get("start"), data.get("end"))
    model = data.get("model") or prefs.default_model
    return form, data, period, model


def _chart(rows, key, title, hourly):
    for row in rows:
        row["label"] = row["at"].strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")
    labels = [row["at"].strftime("%H:00" if hourly else "%b %d") for row in rows]
    return bar_chart([float(row[key] or 0) for row in rows], title=title, labels=labels, css_class=key)


@login_required
def overview_page(request):
    form, _, period, model = _period_and_model(request)
    rows = reports.series(creator=request.user, period=period, model=model)
    context = {
        "form": form,
        "period": period,
        "model": model,
        "model_label": _MODEL_LABELS[model],
        "kpis": reports.kpis(creator=request.user, period=period, model=model),
        "series": rows,
        "clicks_chart": _chart(rows, "clicks", "Clicks", period.hourly),
        "revenue_chart": None if period.hourly else _chart(rows, "revenue", "Attributed revenue", False),
        "top_links": reports.top_links(creator=request.user, period=period, model=model),
        "breakdowns": [
            (label, reports_rows)
            for (key, label), reports_rows in zip(
                reports.DailyClickDimension.Dimension.choices,
                reports.breakdowns(creator=request.user, period=period).values(),
                strict=True,
            )
        ],
        "has_links": request.user.links.exists(),
        "query": request.GET.urlencode(),
    }
    return render(request, "attribution/overview.html", context)


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
        {"page": page, "rows": rows, "filters": filters, "tags": tags, "has_any_link": request.user.links.exists(), "query": request.GET.urlencode()},
    )


@login_required
def link_detail_page(request, link_id: int):
    link = link_get_for_creator(creator=request.user, link_id=link_id)
    form, _, period, model = _period_and_model(request)
    rows = reports.series(creator=request.user, period=period, model=model, link=link)
    traffic = reports.traffic(creator=request.user, period=period, link=link)
    money = reports.earnings(creator=request.user, period=period, model=model, link=link)
    return render(
        request,
        "links/detail.html",
        {
            "link": link,
            "form": form,
            "model_label": _MODEL_LABELS[model],
            "traffic": traffic,
            "money": money,
            "clicks_chart": _chart(rows, "clicks", f"Clicks on {link.short_id}", period.hourly),
            "series": rows,
            "breakdowns": list(zip((label for _, label in reports.DailyClickDimension.Dimension.choices), reports.breakdowns(creator=request.user, period=period, link=link).values(), strict=True)),
            "recent_clicks": link_recent_clicks(link=link),
        },
    )


def _filtered_conversions(request):
    form, data, period, model = _period_and_model(request, ConversionFilterForm)
    conversions = Conversion.objects.filter(creator=request.user, occurred_at__gte=period.start, occurred_at__lt=period.end)
    for field in ("status", "source"):
        if data.get(field):
            conversions = conversions.filter(**{field: data[field]})
    if data.get("event"):
        conversions = conversions.filter(event=data["event"])
    link = None
    if data.get("link"):
        link = link_get_for_creator(creator=request.user, link_id=data["link"])
        conversions = conversions.filter(credits__link=link, credits__model=model)
    conversions = conversions.prefetch_related(
        Prefetch("credits", queryset=Credit.objects.filter(model=model).select_related("link").order_by("-weight"), to_attr="model_credits")
    ).order_by("-occurred_at", "-id")
    return form, conversions, model, link


@login_required
def conversions_page(request):
    form, conversions, model, link = _filtered_conversions(request)
    page = Paginator(conversions, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "attribution/conversions.html",
        {"form": form, "page": page, "model_label": _MODEL_LABELS[model], "link": link, "query": request.GET.urlencode(),
         "has_any": Conversion.objects.filter(creator=request.user).exists()},
    )


@login_required
def identity_page(request, identity_id: int):
    identity = Identity.objects.filter(pk=identity_id, creator=request.user).first()
    if identity is None:
        raise Http404
    while identity.merged_into_id:
        identity = identity.merged_into
    identifiers = list(identity.identifiers.order_by("first_seen"))
    visitors = [i.value for i in identifiers if i.kind == "visitor"]
    click_ids = [i.value for i in identifiers if i.kind == "click"]
    clicks = Click.objects.filter(creator=request.user).filter(Q(visitor_id__in=visitors) | Q(public_id__in=click_ids)).select_related("link")
    conversions = identity.conversions.all()
    events = sorted(
        [("click", click.occurred_at, click) for click in clicks[:500]] + [("conversion", c.occurred_at, c) for c in conversions[:200]],
        key=lambda event: event[1],
    )
    return render(request, "attribution/identity.html", {"identity": identity, "identifiers": identifiers, "events": events})


@login_required
def models_page(request):
    form, _, period, model = _period_and_model(request)
    revenue: dict[int, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(MODELS, Decimal(0)))
    rows = DailyLinkCredit.objects.filter(creator=request.user, day__gte=period.start.date(), day__lte=period.days[-1])
    for link_id, each_model, amount in rows.values_list("link_id", "model").annotate(r=Sum("revenue")):
        revenue[link_id][each_model] += amount or 0
    for entry in reports.tail_ledger_all(request.user, period):
        revenue[entry["link_id"]][entry["model"]] += entry["r"] or 0
    links = request.user.links.in_bulk(list(revenue))
    table = sorted(
        ({"link": links[link_id], "revenue": [revenue[link_id][m] for m in MODELS],
          "spread": max(revenue[link_id].values()) - min(revenue[link_id].values())} for link_id in revenue if link_id in links),
        key=lambda row: row["revenue"][MODELS.index(model)],
        reverse=True,
    )
    return render(
        request,
        "attribution/models.html",
        {"form": form, "table": table, "models": [(m, _MODEL_LABELS[m]) for m in MODELS], "model": model},
    )


@login_required
def settings_page(request):
    prefs = attribution_settings_for(request.user.id)
    before = (prefs.window_days, prefs.half_life_days)
    form = AttributionSettingsForm(request.POST or None, instance=prefs)
    if request.method == "POST" and form.is_valid():
        prefs = form.save()
        if (prefs.window_days, prefs.half_life_days) != before:
            recompute_start(creator=request.user)
            messages.success(request, "Settings saved. Your conversions are being re-attributed with the new window and half-life.")
        else:
            messages.success(request, "Settings saved.")
        return redirect("reports:settings")
    recompute = Recompute.objects.filter(creator=request.user).order_by("-id").first()
    snippet_src = settings.SITE_URL + static("allumi.js")
    return render(
        request,
        "attribution/settings.html",
        {"form": form, "recompute": recompute, "snippet_src": snippet_src, "respect_dnt": prefs.respect_do_not_track},
    )


# --- CSV exports (streamed: constant memory whatever the row count) --------------------------


class _Echo:
    def write(self, value):
        return value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """A creator's own text must not run as a spreadsheet formula when the export is opened."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def stream():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
def export_links(request):
    filters = LinkFilterForm(request.GET or None)
    params = filters.cleaned_data if filters.is_valid() else {}
    archived = {"archived": True, "all": None}.get(params.get("show"), False)
    links = link_list(creator=request.user, search=params.get("q", ""), tag=params.get("tag", ""), archived=archived)
    rows = (
        [link.id, link.short_id, link.short_url, link.url, link.title, ",".join(t.name for t in link.tags.all()),
         link.is_active, link.is_archived, link.created_at.isoformat()]
        for link in links.iterator(chunk_size=2000)
    )
    return _csv_response("links.csv", ["id", "short_id", "short_url", "url", "title", "tags", "active", "archived", "created_at"], rows)


@login_required
def export_clicks(request):
    _, data, period, _ = _period_and_model(request, ConversionFilterForm)
    clicks = Click.objects.filter(creator=request.user, occurred_at__gte=period.start, occurred_at__lt=period.end)
    if data.get("link"):
        clicks = clicks.filter(link=link_get_for_creator(creator=request.user, link_id=data["link"]))
    columns = ["public_id", "link__short_id", "occurred_at", "is_bot", "bot_reason", "is_unique", "country", "device_type",
               "browser", "os", "referrer_domain", "utm_source", "utm_medium", "utm_campaign", "visitor_id"]
    rows = (
        [value.isoformat() if hasattr(value, "isoformat") else value for value in row]
        for row in clicks.order_by("id").values_list(*columns).iterator(chunk_size=5000)
    )
    return _csv_response("clicks.csv", ["click_id", "short_id", *columns[2:]], rows)


@login_required
def export_conversions(request):
    _, conversions, model, _ = _filtered_conversions(request)

    def rows():
        for conversion in conversions.iterator(chunk_size=2000):
            credits = conversion.model_credits or [None]
            for credit in credits:
                yield [
                    conversion.id, conversion.external_id or "", conversion.event, conversion.source, conversion.status,
                    conversion.occurred_at.isoformat(), conversion.amount if conversion.amount is not None else "",
                    conversion.refunded_amount, conversion.currency, conversion.confidence if conversion.confidence is not None else "",
                    model, credit.link.short_id if credit else "", credit.weight if credit else "", credit.revenue if credit else "",
                ]

    header = ["id", "external_id", "event", "source", "status", "occurred_at", "amount", "refunded_amount", "currency",
              "confidence", "model", "short_id", "weight", "revenue"]
    return _csv_response("conversions.csv", header, rows())


def home(request):
    return redirect(reverse("reports:overview") if request.user.is_authenticated else reverse("accounts:login"))
