from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from allumi.accounts.emails import email_unsubscribe, unsubscribe_token_read
from allumi.accounts.forms import ApiKeyCreateForm, EmailPreferencesForm, ProfileForm, SignUpForm
from allumi.accounts.models import ApiKey, EmailLog
from allumi.accounts.services import (
    CreatorExists,
    api_key_create,
    api_key_revoke,
    creator_confirm_email,
    creator_create,
    email_confirmation_send,
)
from allumi.core.ratelimits import ip_key, rate_for


@ratelimit(key=ip_key, rate=rate_for("signup"), method="POST", block=True, group="signup")
def signup(request):
    if request.user.is_authenticated:
        return redirect("links:list")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            creator = creator_create(
                email=form.cleaned_data["email"], password=form.cleaned_data["password"], name=form.cleaned_data["name"]
            )
        except CreatorExists:
            form.add_error("email", "An account with this email already exists. Sign in instead.")
        else:
            email_confirmation_send(creator=creator)
            return render(request, "accounts/check_email.html", {"email": creator.email})
    return render(request, "accounts/signup.html", {"form": form})


def confirm_email(request, token):
    try:
        creator = creator_confirm_email(token=token)
    except ValidationError as error:
        return render(request, "accounts/confirm_failed.html", {"message": error.messages[0]}, status=400)
    login(request, creator, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, "Your email is confirmed. Welcome to Allumi: create your first tracked link.")
    return redirect("links:list")


@login_required
def profile(request):
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Profile saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form, "email_form": EmailPreferencesForm(instance=request.user)})


@login_required
@require_POST
def email_preferences(request):
    email_form = EmailPreferencesForm(request.POST, instance=request.user)
    if email_form.is_valid():
        email_form.save()
        messages.success(request, "Email preferences saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": ProfileForm(instance=request.user), "email_form": email_form})


# The signed token in the URL is the credential (no session needed), and mail clients POST one-click
# unsubscribes (RFC 8058) without a CSRF token: a forged request could only do what the link does.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    try:
        creator, kind = unsubscribe_token_read(token=token)
    except ValidationError as error:
        return render(request, "accounts/unsubscribe.html", {"error": error.messages[0]}, status=400)
    context = {"email": creator.email, "kind_label": EmailLog.Kind(kind).label.lower(), "done": False}
    if request.method == "POST":
        email_unsubscribe(creator=creator, kind=kind)
        context["done"] = True
    return render(request, "accounts/unsubscribe.html", context)


@login_required
def api_keys(request):
    form = ApiKeyCreateForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        api_key, new_key = api_key_create(
            creator=request.user, kind=form.cleaned_data["kind"], name=form.cleaned_data["name"]
        )
        messages.success(request, f"Key “{api_key.name}” created. Copy it now: it will not be shown again.")
        form = ApiKeyCreateForm()
    keys = request.user.api_keys.order_by("revoked_at", "-created_at")
    return render(request, "accounts/api_keys.html", {"form": form, "keys": keys, "new_key": new_key})


@login_required
@require_POST
def api_key_revoke_view(request, key_id):
    api_key = get_object_or_404(ApiKey, pk=key_id, creator=request.user)
    api_key_revoke(api_key=api_key)
    messages.success(request, f"Key “{api_key.name}” revoked. Requests using it are refused from now on.")
    return redirect("accounts:api_keys")
