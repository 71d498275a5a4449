"""Dashboard pages for outgoing webhooks: endpoints, their delivery log, test events, redelivery."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from allumi.integrations.forms import EndpointCreateForm
from allumi.integrations.selectors import (
    delivery_get_for_creator,
    delivery_list,
    endpoint_get_for_creator,
    endpoint_list,
)
from allumi.integrations.services import (
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    webhook_test_send,
)

DELIVERIES_PER_PAGE = 50


def _apply_errors(form, error: ValidationError) -> None:
    for field, field_messages in getattr(error, "message_dict", {"__all__": error.messages}).items():
        form.add_error(field if field in form.fields else None, field_messages)


@never_cache  # the page that answers a creation shows the secret: no copy of it in any cache
@login_required
def endpoints_page(request):
    form = EndpointCreateForm(request.POST or None)
    new_endpoint = new_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            new_endpoint, new_secret = endpoint_create(creator=request.user, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, "Endpoint created. Copy its signing secret now: it will not be shown again.")
            form = EndpointCreateForm()
    return render(
        request,
        "integrations/endpoints.html",
        {"form": form, "endpoints": endpoint_list(creator=request.user), "new_endpoint": new_endpoint, "new_secret": new_secret},
    )


@login_required
def endpoint_page(request, endpoint_id: int):
    endpoint = endpoint_get_for_creator(creator=request.user, endpoint_id=endpoint_id)
    page = Paginator(delivery_list(endpoint=endpoint), DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "integrations/endpoint_detail.html", {"endpoint": endpoint, "page": page})


@login_required
def delivery_page(request, endpoint_id: int, delivery_id: int):
    delivery = delivery_get_for_creator(creator=request.user, endpoint_id=endpoint_id, delivery_id=delivery_id)
    return render(
        request,
        "integrations/delivery_detail.html",
        {"endpoint": delivery.endpoint, "delivery": delivery, "payload": json.dumps(delivery.payload, indent=2)},
    )


@login_required
@require_POST
def endpoint_disable_page(request, endpoint_id: int):
    endpoint = endpoint_get_for_creator(creator=request.user, endpoint_id=endpoint_id)
    endpoint_disable(endpoint=endpoint)
    messages.success(request, "Endpoint disabled. Events are no longer sent to it.")
    return redirect("integrations:detail", endpoint_id=endpoint.pk)


@login_required
@require_POST
def endpoint_enable_page(request, endpoint_id: int):
    endpoint = endpoint_get_for_creator(creator=request.user, endpoint_id=endpoint_id)
    endpoint_enable(endpoint=endpoint)
    messages.success(request, "Endpoint enabled. New events are sent to it again; redeliver the ones it missed.")
    return redirect("integrations:detail", endpoint_id=endpoint.pk)


@login_required
@require_POST
def endpoint_delete_page(request, endpoint_id: int):
    endpoint = endpoint_get_for_creator(creator=request.user, endpoint_id=endpoint_id)
    endpoint_delete(endpoint=endpoint)
    messages.success(request, "Endpoint deleted, with its delivery log.")
    return redirect("integrations:list")


@login_required
@require_POST
def endpoint_test_page(request, endpoint_id: int):
    endpoint = endpoint_get_for_creator(creator=request.user, endpoint_id=endpoint_id)
    try:
        webhook_test_send(endpoint=endpoint)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, "Test event sent. Its result shows in the log below (reload if it is still pending).")
    return redirect("integrations:detail", endpoint_id=endpoint.pk)


@login_required
@require_POST
def delivery_redeliver_page(request, endpoint_id: int, delivery_id: int):
    delivery = delivery_get_for_creator(creator=request.user, endpoint_id=endpoint_id, delivery_id=delivery_id)
    try:
        delivery_redeliver(delivery=delivery)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, f"Event {delivery.event_id} queued to be sent again.")
    return redirect("integrations:detail", endpoint_id=endpoint_id)
