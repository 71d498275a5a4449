"""Dashboard pages that change links: create, edit, archive. Traffic pages live in attribution."""

import io

import segno
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from links.forms import LinkForm
from links.selectors import link_get_for_creator
from links.services import link_archive, link_create, link_unarchive, link_update


def _apply_errors(form: LinkForm, error: ValidationError) -> None:
    for field, messages_ in getattr(error, "message_dict", {"__all__": error.messages}).items():
        field = "slug" if field == "short_id" else field
        form.add_error(field if field in form.fields else None, messages_)


@login_required
def link_create_page(request):
    form = LinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = {name: value for name, value in form.cleaned_data.items() if name not in ("tags", "slug")}
        try:
            link = link_create(creator=request.user, slug=form.cleaned_data["slug"], tags=form.tag_names(), **data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, f"Link created: {link.short_url}")
            return redirect("links:detail", link_id=link.id)
    return render(request, "links/form.html", {"form": form, "editing": False})


@login_required
def link_edit_page(request, link_id: int):
    link = link_get_for_creator(creator=request.user, link_id=link_id)
    form = LinkForm(request.POST or None, instance=link, editing=True)
    if request.method == "POST" and form.is_valid():
        changes = {name: value for name, value in form.cleaned_data.items() if name != "tags"}
        try:
            link_update(link=link, tags=form.tag_names(), **changes)
        except ValidationError as error:
            link.refresh_from_db()
            _apply_errors(form, error)
        else:
            messages.success(request, "Link saved.")
            return redirect("links:detail", link_id=link.id)
    return render(request, "links/form.html", {"form": form, "editing": True, "link": link})


@login_required
@require_POST
def link_archive_page(request, link_id: int):
    link = link_get_for_creator(creator=request.user, link_id=link_id)
    if request.POST.get("action") == "unarchive":
        link_unarchive(link=link)
        messages.success(request, "Link restored to your list.")
    else:
        link_archive(link=link)
        messages.success(request, "Link archived. It still redirects; find it under “Archived”.")
    return redirect("links:detail", link_id=link.id)


@login_required
def link_qr(request, link_id: int, fmt: str):
    """The short URL as a QR code, PNG or SVG, for print and slides."""
    if fmt not in ("png", "svg"):
        raise Http404
    link = link_get_for_creator(creator=request.user, link_id=link_id)
    buffer = io.BytesIO()
    segno.make(link.short_url, error="m").save(buffer, kind=fmt, scale=8 if fmt == "png" else 4, border=2)
    response = HttpResponse(buffer.getvalue(), content_type="image/png" if fmt == "png" else "image/svg+xml")
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="allumi-{link.short_id}.{fmt}"'
    return response
