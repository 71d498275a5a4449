"""Outgoing email. Every message is rendered here, logged as an EmailLog row per recipient, and sent
by a Celery task (`allumi.accounts.tasks.deliver_email`) that retries with a backoff.

A template is a name without extension: `<name>_subject.txt`, `<name>.txt` and `<name>.html`. The
subject and text parts are rendered without HTML escaping (they are not HTML).

Non-essential kinds (conversion alerts, weekly reports) go only to creators who want them, and carry
an unsubscribe link (in the context as `unsubscribe_url`) and List-Unsubscribe headers, with
one-click unsubscribe (RFC 8058) for mail clients that offer it.
"""

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template import Context
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone

from allumi.accounts.models import Creator, EmailBatch, EmailLog

logger = logging.getLogger(__name__)

# Kind -> the Creator field that turns it off. Every other kind is essential (or not to a creator).
OPT_OUT_FIELDS = {
    EmailLog.Kind.CONVERSION_ALERT: "conversion_alerts",
    EmailLog.Kind.WEEKLY_REPORT: "weekly_report",
}
_UNSUBSCRIBE_SALT = "allumi.accounts.unsubscribe"
# An email whose enqueue was lost (broker down) is picked up by the sweep after this long.
STALE_QUEUED_AFTER = timedelta(minutes=10)
# ...but nothing older than this is sent: an old confirmation link or alert is worse than none.
STALE_QUEUED_GIVE_UP = timedelta(days=1)


class EmailNotSent(Exception):
    """A delivery attempt failed and will be retried."""


# --- unsubscribing ------------------------------------------------------------------------------


def unsubscribe_token(*, creator: Creator, kind: str) -> str:
    """A signed token naming the creator and the kind of email. It carries no timestamp and does not
    expire: links in old emails must keep working, and every email of a kind has the same link."""
    return signing.Signer(salt=_UNSUBSCRIBE_SALT).sign_object({"c": creator.pk, "k": kind}, compress=True)


def unsubscribe_url(*, creator: Creator, kind: str) -> str:
    return settings.SITE_URL + reverse("accounts:unsubscribe", args=[unsubscribe_token(creator=creator, kind=kind)])


def unsubscribe_token_read(*, token: str) -> tuple[Creator, str]:
    """The creator and kind a token names; ValidationError if it is not one of ours."""
    try:
        data = signing.Signer(salt=_UNSUBSCRIBE_SALT).unsign_object(token)
    except signing.BadSignature:
        raise ValidationError("This unsubscribe link is not valid.") from None
    kind = data.get("k") if isinstance(data, dict) else None
    creator = Creator.objects.filter(pk=data.get("c")).first() if kind in OPT_OUT_FIELDS else None
    if creator is None:
        raise ValidationError("This unsubscribe link is not valid.")
    return creator, kind


def email_unsubscribe(*, creator: Creator, kind: str) -> None:
    field = OPT_OUT_FIELDS[kind]
    Creator.objects.filter(pk=creator.pk).update(**{field: False})
    setattr(creator, field, False)
    logger.info("creator %s unsubscribed from %s", creator.pk, kind)


def _wants(creator: Creator, kind: str) -> bool:
    # Read now, not from the instance: it may have been loaded before the creator opted out.
    return Creator.objects.filter(pk=creator.pk, is_active=True, **{OPT_OUT_FIELDS[kind]: True}).exists()


# --- sending ------------------------------------------------------------------------------------


def _render_plain(name: str, context: dict) -> str:
    return get_template(name).template.render(Context(context, autoescape=False))


def _recipients(to: str | Iterable[str]) -> list[str]:
    addresses = [to] if isinstance(to, str) else list(to)
    return list(dict.fromkeys(address.strip() for address in addresses if address and address.strip()))


def email_send(
    *,
    to: str | Iterable[str],
    template: str,
    context: dict,
    kind: str,
    creator: Creator | None = None,
    reply_to: str = "",
    dedupe_key: str = "",
) -> list[EmailLog]:
    """Render `template`, log one queued EmailLog per recipient and send each from Celery once the
    transaction commits. Returns the rows; none when the creator opted out of `kind`, when there
    is nobody to send to, or when `dedupe_key` was already sent to a recipient."""
    recipients = _recipients(to)
    if not recipients:
        return []
    context = {**context, "site_url": settings.SITE_URL, "unsubscribe_url": None}
    headers = {}
    if kind in OPT_OUT_FIELDS:
        if creator is None:
            raise ValueError(f"{kind} email needs the creator it is for (for the opt-out).")
        if not _wants(creator, kind):
            logger.info("not sending %s to creator %s: opted out", kind, creator.pk)
            return []
        context["unsubscribe_url"] = unsubscribe_url(creator=creator, kind=kind)
        headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if reply_to:
        headers["Reply-To"] = reply_to
    subject = " ".join(_render_plain(f"{template}_subject.txt", context).split())[:255]
    text_body = _render_plain(f"{template}.txt", context)
    html_body = render_to_string(f"{template}.html", context)

    emails = []
    for recipient in recipients:
        email = EmailLog(
            creator=creator, kind=kind, recipient=recipient, subject=subject, text_body=text_body,
            html_body=html_body, headers=headers, dedupe_key=dedupe_key,
        )
        try:
            with transaction.atomic():
                email.save(force_insert=True)
        except IntegrityError:
            if not dedupe_key:
                raise
            logger.info("%s %s already sent to %s", kind, dedupe_key, recipient)
            continue
        emails.append(email)
    if emails:
        emails_enqueue([email.id for email in emails])
    return emails


def emails_enqueue(email_ids: list[int]) -> None:
    from allumi.accounts.tasks import deliver_email

    def _send():
        for email_id in email_ids:
            try:
                deliver_email.delay(email_id)
            except Exception as error:  # broker down: the queued-email sweep sends it later
                logger.warning("could not enqueue email %s: %r", email_id, error)

    transaction.on_commit(_send)


def email_deliver(*, email_id: int, last_attempt: bool) -> bool:
    """Send one queued email. True when this call sent it. A failure raises EmailNotSent (the task
    retries) unless this is the last attempt, which marks the email failed."""
    email = EmailLog.objects.filter(pk=email_id).first()
    if email is None or email.status != EmailLog.Status.QUEUED:
        return False  # sent, given up or deleted meanwhile
    # Claim this attempt: of two workers holding the same message, only one sends.
    if not EmailLog.objects.filter(pk=email.pk, status=EmailLog.Status.QUEUED, attempts=email.attempts).update(
        attempts=F("attempts") + 1
    ):
        return False
    headers = dict(email.headers)
    reply_to = headers.pop("Reply-To", "")
    message = EmailMultiAlternatives(
        subject=email.subject, body=email.text_body, to=[email.recipient], headers=headers,
        reply_to=[reply_to] if reply_to else None,
    )
    message.attach_alternative(email.html_body, "text/html")
    try:
        message.send()
    except Exception as error:
        failed = {"error": repr(error)[:2000]}
        if last_attempt:
            EmailLog.objects.filter(pk=email.pk).update(status=EmailLog.Status.FAILED, text_body="", html_body="", **failed)
            logger.error("gave up sending %s email %s to %s: %r", email.kind, email.pk, email.recipient, error)
            return False
        EmailLog.objects.filter(pk=email.pk).update(**failed)
        logger.warning("sending %s email %s failed, will retry: %r", email.kind, email.pk, error)
        raise EmailNotSent(repr(error)) from error
    EmailLog.objects.filter(pk=email.pk).update(
        status=EmailLog.Status.SENT, sent_at=timezone.now(), text_body="", html_body=""
    )
    logger.info("sent %s email %s to %s", email.kind, email.pk, email.recipient)
    return True


def emails_queued_stale() -> list[int]:
    """Queued emails whose first attempt never ran (their enqueue was lost)."""
    now = timezone.now()
    return list(
        EmailLog.objects.filter(
            status=EmailLog.Status.QUEUED, attempts=0,
            created_at__lt=now - STALE_QUEUED_AFTER, created_at__gte=now - STALE_QUEUED_GIVE_UP,
        ).values_list("id", flat=True)[:500]
    )


# --- batches ------------------------------------------------------------------------------------


def email_batch_open(*, creator: Creator, kind: str, opened_at) -> EmailBatch | None:
    """Open the creator's batch of `kind` unless one is open; the new batch, or None."""
    if EmailBatch.objects.filter(creator=creator, kind=kind, closed_at__isnull=True).exists():
        return None
    try:
        with transaction.atomic():
            return EmailBatch.objects.create(creator=creator, kind=kind, opened_at=opened_at)
    except IntegrityError:
        return None  # another event opened it a moment ago


def email_batches_due(*, kind: str, window: timedelta) -> list[int]:
    return list(
        EmailBatch.objects.filter(kind=kind, closed_at__isnull=True, opened_at__lte=timezone.now() - window)
        .order_by("opened_at")
        .values_list("id", flat=True)
    )


def email_batch_close(*, batch_id: int) -> EmailBatch | None:
    """Close an open batch; the closed batch, or None when it was closed already (by a twin task)."""
    now = timezone.now()
    if not EmailBatch.objects.filter(pk=batch_id, closed_at__isnull=True).update(closed_at=now):
        return None
    return EmailBatch.objects.select_related("creator").get(pk=batch_id)


# --- the account's own emails -------------------------------------------------------------------


def operator_alert_send(subject: str, body: str) -> None:
    """Operator alerts (allumi.core.alerts), registered as its mailer when the app is ready."""
    email_send(
        to=settings.OPERATOR_EMAILS, template="accounts/email/operator_alert",
        context={"subject": subject, "body": body}, kind=EmailLog.Kind.OPERATOR_ALERT,
    )
