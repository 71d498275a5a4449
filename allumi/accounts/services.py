from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from allumi.accounts.emails import email_send
from allumi.accounts.keys import PUBLISHABLE_PREFIX, SECRET_PREFIX, hash_key, new_key
from allumi.accounts.models import ApiKey, Creator, DemoRequest, EmailLog

_CONFIRM_SALT = "allumi.accounts.confirm-email"
# last_used_at is a hint for the creator, not an audit log: write it at most once a minute per key.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# The same email asking for a demo again within this long updates its request.
DEMO_REQUEST_MERGE_WINDOW = timedelta(days=1)


class CreatorExists(Exception):
    pass


def creator_create(*, email: str, password: str | None, name: str = "", confirmed: bool = False) -> Creator:
    email = Creator.objects.normalize_email(email).strip().lower()
    if Creator.objects.filter(email__iexact=email).exists():
        raise CreatorExists(email)
    try:
        with transaction.atomic():
            return Creator.objects.create_user(
                email=email,
                password=password,
                name=name,
                email_confirmed_at=timezone.now() if confirmed else None,
            )
    except IntegrityError:
        # Two sign-ups raced past the check above: the unique constraint decides.
        raise CreatorExists(email) from None


def email_confirmation_token(*, creator: Creator) -> str:
    return signing.dumps({"id": creator.pk, "email": creator.email}, salt=_CONFIRM_SALT)


def email_confirmation_send(*, creator: Creator) -> None:
    token = email_confirmation_token(creator=creator)
    link = settings.SITE_URL + reverse("accounts:confirm_email", args=[token])
    email_send(
        to=creator.email, template="accounts/email/confirm_email", context={"creator": creator, "link": link},
        kind=EmailLog.Kind.CONFIRM_EMAIL, creator=creator,
    )


def creator_confirm_email(*, token: str) -> Creator:
    """Mark the creator named by `token` as confirmed; ValidationError if it is bad or expired."""
    try:
        data = signing.loads(token, salt=_CONFIRM_SALT, max_age=settings.EMAIL_CONFIRMATION_MAX_AGE)
    except signing.SignatureExpired:
        raise ValidationError("This confirmation link has expired. Sign in to get a new one.") from None
    except signing.BadSignature:
        raise ValidationError("This confirmation link is not valid.") from None
    creator = Creator.objects.filter(pk=data.get("id"), email=data.get("email")).first()
    if creator is None:
        raise ValidationError("This confirmation link is not valid.")
    # A link confirms once: a used link in an old inbox must not keep signing its holder in.
    confirmed = Creator.objects.filter(pk=creator.pk, email_confirmed_at__isnull=True).update(email_confirmed_at=timezone.now())
    if not confirmed:
        raise ValidationError("This email is already confirmed: log in with your password.")
    creator.refresh_from_db()
    return creator


def api_key_create(*, creator: Creator, kind: str, name: str) -> tuple[ApiKey, str]:
    """A new key for `creator`; returns the row and the key itself, which is never stored."""
    raw = new_key(SECRET_PREFIX if kind == ApiKey.Kind.SECRET else PUBLISHABLE_PREFIX)
    api_key = ApiKey.objects.create(
        creator=creator, kind=kind, name=name.strip() or kind.title(), prefix=raw[:12], key_hash=hash_key(raw)
    )
    return api_key, raw


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_authenticate(*, raw: str, kind: str) -> ApiKey | None:
    """The active key of `kind` matching `raw`, with its creator; None if there is none."""
    if not raw or len(raw) > 100:
        return None
    api_key = (
        ApiKey.objects.select_related("creator")
        .filter(key_hash=hash_key(raw), kind=kind, revoked_at__isnull=True, creator__is_active=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def demo_request_capture(
    *, name: str, email: str, company: str = "", community_size: str = "", message: str = "", ip: str | None = None
) -> tuple[DemoRequest, bool]:
    """Store a demo request from the marketing site and email the team; (request, created).

    The same email within a day updates the existing request (the latest non-empty details win,
    `submissions` counts them) and emails nobody again.
    """
    email = email.strip().lower()
    details = {"name": name.strip(), "company": company.strip(), "community_size": community_size.strip(), "message": message.strip()}
    for _ in range(3):
        now = timezone.now()
        with transaction.atomic():
            existing = (
                DemoRequest.objects.select_for_update()
                .filter(email=email, last_submitted_at__gte=now - DEMO_REQUEST_MERGE_WINDOW)
                .order_by("-last_submitted_at")
                .first()
            )
            if existing is not None:
                changes = {field: value for field, value in details.items() if value}
                DemoRequest.objects.filter(pk=existing.pk).update(
                    **changes, ip=ip or existing.ip, submissions=F("submissions") + 1, last_submitted_at=now
                )
                existing.refresh_from_db()
                return existing, False
            try:
                with transaction.atomic():
                    demo_request = DemoRequest.objects.create(
                        email=email, **details, ip=ip, received_on=now.date(), created_at=now, last_submitted_at=now
                    )
            except IntegrityError:
                continue  # the same email a moment ago, from another request: merge into that one
            email_send(
                to=settings.DEMO_REQUEST_RECIPIENTS, template="accounts/email/demo_request",
                context={"demo_request": demo_request, "admin_url": settings.SITE_URL + reverse("admin:accounts_demorequest_change", args=[demo_request.pk])},
                kind=EmailLog.Kind.DEMO_REQUEST, reply_to=email,
            )
            return demo_request, True
    raise RuntimeError(f"could not store the demo request of {email}")
