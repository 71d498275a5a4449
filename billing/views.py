"""The creator's Whop settings: endpoint URL and instructions, secrets, recent deliveries, plan."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from attribution.selectors import creator_click_total_since
from billing.models import Plan, WhopConnection, WhopEvent
from billing.services import whop_connection_create, whop_connection_update, whop_event_reprocess


class WhopConnectionForm(forms.Form):
    signing_secret = forms.CharField(
        required=False, max_length=255, widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Paste the webhook secret Whop shows for this endpoint. Leave empty to keep the current one.",
    )
    api_key = forms.CharField(
        required=False, max_length=255, label="Whop API key", widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Optional: a Whop API key with read access to payments, so Allumi can fetch payments a webhook missed.",
    )
    company_id = forms.CharField(required=False, max_length=64, label="Whop company id", help_text="biz_…, needed with the API key.")


def _connection_for(creator) -> WhopConnection:
    connection = WhopConnection.objects.filter(creator=creator).first()
    return connection or whop_connection_create(creator=creator)


@login_required
def whop_settings_page(request):
    connection = _connection_for(request.user)
    form = WhopConnectionForm(request.POST or None, initial={"company_id": connection.company_id})
    if request.method == "POST" and form.is_valid():
        whop_connection_update(connection=connection, **form.cleaned_data)
        messages.success(request, "Whop connection saved.")
        return redirect("billing:whop_settings")
    events = connection.events.order_by("-received_at")[:50]
    counts = dict(connection.events.values_list("status").annotate(n=Count("id")))
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    subscription = getattr(request.user, "subscription", None)
    plan = subscription.plan if subscription and subscription.active else Plan.objects.filter(is_default=True).first()
    clicks_this_month = creator_click_total_since(creator=request.user, since=month_start)
    return render(
        request,
        "billing/whop_settings.html",
        {
            "connection": connection,
            "form": form,
            "events": events,
            "counts": counts,
            "plan": plan,
            "clicks_this_month": clicks_this_month,
            "over_limit": bool(plan and plan.monthly_click_limit and clicks_this_month > plan.monthly_click_limit),
        },
    )


@login_required
@require_POST
def whop_event_reprocess_page(request, event_id: int):
    event = get_object_or_404(WhopEvent, pk=event_id, connection__creator=request.user)
    whop_event_reprocess(event=event)
    messages.success(request, "The delivery is queued to be processed again.")
    return redirect("billing:whop_settings")
