"""Outgoing email: rendered with text and HTML parts, logged, sent from Celery with retries, and
never sent to a creator who opted out; unsubscribe links work without logging in."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from smtplib import SMTPServerDisconnected
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from allumi.accounts.emails import email_send, unsubscribe_token, unsubscribe_url
from allumi.accounts.models import EmailLog
from allumi.accounts.services import email_confirmation_send
from allumi.accounts.tasks import EMAIL_MAX_RETRIES, deliver_email, sweep_queued_emails
from allumi.celery import app as celery_app
from allumi.core import alerts

PROFILE = reverse("accounts:profile")
PREFERENCES = reverse("accounts:email_preferences")
REPORT = EmailLog.Kind.WEEKLY_REPORT
ALERTS = EmailLog.Kind.CONVERSION_ALERT


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what a call queued with transaction.on_commit, as its commit would."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


@pytest.fixture
def retrying_celery():
    """Eager Celery that retries as a worker does. With task_eager_propagates (the test default)
    Celery raises a task's Retry to the caller instead of running the retry."""
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = propagates


def _send_report_email(creator, **extra):
    """A non-essential email to `creator`, with the weekly report's kind and a tiny template."""
    return email_send(
        to=creator.email, template="attribution/email/conversion_alert", kind=extra.pop("kind", REPORT), creator=creator,
        context={"creator": creator, "count": 1, "rows": [], "more": 0, "revenue": [], "model_label": "Last touch", "conversions_url": "https://x.example/c"},
        **extra,
    )


def _html(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


# --- content, recipients, the log ---------------------------------------------------------------


def test_a_confirmation_email_has_both_parts_and_is_logged_as_sent(alice, run_on_commit):
    run_on_commit(email_confirmation_send, creator=alice)

    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == "Confirm your email for Allumi"
    assert message.from_email == django_settings.DEFAULT_FROM_EMAIL
    link = re.search(r"https?://\S+/accounts/confirm/\S+/", message.body).group(0)
    assert "Hi Alice," in message.body
    assert f'href="{link}"' in _html(message)
    assert "List-Unsubscribe" not in message.extra_headers  # essential: no opt-out
    email = EmailLog.objects.get()
    assert (email.kind, email.recipient, email.creator, email.subject) == (
        EmailLog.Kind.CONFIRM_EMAIL, "alice@example.com", alice, "Confirm your email for Allumi"
    )
    assert (email.status, email.attempts, email.error) == (EmailLog.Status.SENT, 1, "")
    assert email.sent_at is not None
    # The link is a credential: a sent row does not keep it.
    assert email.text_body == email.html_body == ""


def test_a_password_reset_is_queued_through_the_log_for_that_creator(client, alice, run_on_commit):
    run_on_commit(client.post, reverse("accounts:password_reset"), {"email": "alice@example.com"})

    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and message.subject == "Reset your Allumi password"
    assert "/accounts/password-reset/" in message.body and "/accounts/password-reset/" in _html(message)
    email = EmailLog.objects.get()
    assert (email.kind, email.creator, email.status) == (EmailLog.Kind.PASSWORD_RESET, alice, EmailLog.Status.SENT)


def test_nothing_is_sent_when_the_transaction_rolls_back(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                email_confirmation_send(creator=alice)
                raise RuntimeError("the sign-up failed after all")
        except RuntimeError:
            pass

    assert mail.outbox == []
    assert not EmailLog.objects.exists()


def test_each_recipient_gets_a_message_and_a_row_of_their_own(settings, db, run_on_commit):
    settings.OPERATOR_EMAILS = ["ops@allumi.example", "oncall@allumi.example"]

    run_on_commit(alerts._notify, "[Allumi] FIRING: latency_p95", "p95 latency 2500 ms")

    assert sorted(message.to[0] for message in mail.outbox) == ["oncall@allumi.example", "ops@allumi.example"]
    assert all(len(message.to) == 1 for message in mail.outbox)
    message = mail.outbox[0]
    assert message.subject == "[Allumi] FIRING: latency_p95"
    assert "p95 latency 2500 ms" in message.body and "p95 latency 2500 ms" in _html(message)
    assert "/admin/core/alert/" in message.body
    assert set(EmailLog.objects.values_list("kind", "status")) == {(EmailLog.Kind.OPERATOR_ALERT, EmailLog.Status.SENT)}
    assert EmailLog.objects.count() == 2


def test_an_operator_alert_still_goes_out_when_the_email_log_fails(settings, db, monkeypatch):
    settings.OPERATOR_EMAILS = ["ops@allumi.example"]

    def broken(subject, body):
        raise RuntimeError("database is down")

    monkeypatch.setattr(alerts, "_operator_mailer", broken)

    alerts._notify("[Allumi] FIRING: database", "database connection failed")

    assert [message.subject for message in mail.outbox] == ["[Allumi] FIRING: database"]
    assert not EmailLog.objects.exists()


def test_text_parts_are_not_html_escaped(alice, run_on_commit):
    alice.name = "Tom & Jerry <Co>"
    alice.save(update_fields=["name"])

    run_on_commit(email_confirmation_send, creator=alice)

    [message] = mail.outbox
    assert "Hi Tom & Jerry <Co>," in message.body
    assert "Tom &amp; Jerry &lt;Co&gt;" in _html(message)


# --- retries ------------------------------------------------------------------------------------


def test_a_failing_backend_is_retried_and_the_email_then_sent(alice, run_on_commit, retrying_celery):
    real_send = EmailBackend.send_messages
    answers = iter([SMTPServerDisconnected("connection lost"), None])

    def flaky(backend, messages):
        failure = next(answers)
        if failure is not None:
            raise failure
        return real_send(backend, messages)

    with mock.patch.object(EmailBackend, "send_messages", autospec=True, side_effect=flaky) as send:
        run_on_commit(email_confirmation_send, creator=alice)

    assert send.call_count == 2
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    email = EmailLog.objects.get()
    assert (email.status, email.attempts) == (EmailLog.Status.SENT, 2)
    assert "connection lost" in email.error  # the last failure stays on the row


def test_it_gives_up_after_the_last_retry_and_marks_the_email_failed(alice, run_on_commit, retrying_celery):
    with mock.patch.object(EmailBackend, "send_messages", autospec=True, side_effect=SMTPServerDisconnected("down")) as send:
        run_on_commit(email_confirmation_send, creator=alice)  # no exception reaches the caller

    assert send.call_count == EMAIL_MAX_RETRIES + 1
    assert mail.outbox == []
    email = EmailLog.objects.get()
    assert (email.status, email.attempts, email.sent_at) == (EmailLog.Status.FAILED, EMAIL_MAX_RETRIES + 1, None)
    assert "down" in email.error


def test_a_sent_email_is_never_sent_twice(alice, run_on_commit):
    run_on_commit(email_confirmation_send, creator=alice)
    email = EmailLog.objects.get()

    deliver_email.delay(email.id)  # a redelivered message

    assert len(mail.outbox) == 1
    email.refresh_from_db()
    assert email.attempts == 1


def test_the_sweep_sends_an_email_whose_enqueue_was_lost(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the broker never got it
        email_confirmation_send(creator=alice)
    assert mail.outbox == []
    assert sweep_queued_emails() == 0  # not stale yet: its task may still be on the way

    EmailLog.objects.update(created_at=timezone.now() - timedelta(minutes=15))
    assert sweep_queued_emails() == 1

    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    assert EmailLog.objects.get().status == EmailLog.Status.SENT


# --- opting out ---------------------------------------------------------------------------------


def test_a_non_essential_email_carries_unsubscribe_links_and_headers(alice, run_on_commit):
    run_on_commit(_send_report_email, alice)

    [message] = mail.outbox
    link = unsubscribe_url(creator=alice, kind=REPORT)
    assert message.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Unsubscribe: {link}" in message.body
    assert f'href="{link}"' in _html(message)


def test_nothing_goes_to_a_creator_who_opted_out(alice, run_on_commit):
    alice.weekly_report = False
    alice.save(update_fields=["weekly_report"])

    assert run_on_commit(_send_report_email, alice) == []

    assert mail.outbox == []
    assert not EmailLog.objects.exists()


def test_the_opt_out_is_read_fresh_not_from_a_stale_instance(alice, run_on_commit):
    stale = type(alice).objects.get(pk=alice.pk)
    alice.conversion_alerts = True
    alice.save(update_fields=["conversion_alerts"])
    type(alice).objects.filter(pk=alice.pk).update(conversion_alerts=False)

    assert run_on_commit(_send_report_email, stale, kind=ALERTS) == []
    assert mail.outbox == []


def test_an_inactive_creator_gets_no_non_essential_email(alice, run_on_commit):
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert run_on_commit(_send_report_email, alice) == []


def test_a_dedupe_key_sends_once(alice, run_on_commit):
    first = run_on_commit(_send_report_email, alice, dedupe_key="weekly_report:2026-W05")
    again = run_on_commit(_send_report_email, alice, dedupe_key="weekly_report:2026-W05")

    assert len(first) == 1 and again == []
    assert len(mail.outbox) == 1


def test_unsubscribing_works_logged_out_after_a_confirmation_page(alice):
    browser = Client(enforce_csrf_checks=True)
    path = reverse("accounts:unsubscribe", args=[unsubscribe_token(creator=alice, kind=REPORT)])

    page = browser.get(path)

    assert page.status_code == 200
    body = page.content.decode()
    assert "Stop sending weekly report emails to <strong>alice@example.com</strong>?" in body
    alice.refresh_from_db()
    assert alice.weekly_report is True  # a link preview or scanner fetching the page changes nothing

    done = browser.post(path)

    assert done.status_code == 200
    assert "gets no more weekly report emails" in done.content.decode()
    alice.refresh_from_db()
    assert alice.weekly_report is False


def test_a_one_click_unsubscribe_from_a_mail_client_works(alice):
    alice.conversion_alerts = True
    alice.save(update_fields=["conversion_alerts"])
    path = reverse("accounts:unsubscribe", args=[unsubscribe_token(creator=alice, kind=ALERTS)])

    response = Client(enforce_csrf_checks=True).post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.conversion_alerts is False
    assert alice.weekly_report is True  # only the kind the link names


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + "xx", lambda t: "nonsense", lambda t: t.replace(":", ".", 1)])
def test_a_tampered_unsubscribe_link_is_a_400_and_changes_nothing(alice, mangle):
    token = unsubscribe_token(creator=alice, kind=REPORT)

    response = Client().post(reverse("accounts:unsubscribe", args=[mangle(token)]))

    assert response.status_code == 400
    assert "This unsubscribe link is not valid." in response.content.decode()
    alice.refresh_from_db()
    assert alice.weekly_report is True


def test_a_link_for_an_essential_kind_is_refused(alice):
    from django.core import signing

    token = signing.Signer(salt="allumi.accounts.unsubscribe").sign_object({"c": alice.pk, "k": "password_reset"})

    assert Client().post(reverse("accounts:unsubscribe", args=[token])).status_code == 400


# --- preferences on the profile page ------------------------------------------------------------


def test_the_profile_page_shows_the_email_preferences(alice_client):
    body = alice_client.get(PROFILE).content.decode()

    assert f'action="{PREFERENCES}"' in body
    assert 'name="conversion_alerts"' in body and 'name="weekly_report"' in body
    assert '<option value="0" selected>Monday</option>' in body


def test_a_creator_changes_their_email_preferences(alice_client, alice, bob):
    response = alice_client.post(PREFERENCES, {"conversion_alerts": "on", "weekly_report_weekday": "4"})

    assert response.status_code == 302 and response["Location"] == PROFILE
    alice.refresh_from_db()
    assert (alice.conversion_alerts, alice.weekly_report, alice.weekly_report_weekday) == (True, False, 4)
    assert "Email preferences saved." in alice_client.get(PROFILE).content.decode()
    bob.refresh_from_db()
    assert (bob.conversion_alerts, bob.weekly_report, bob.weekly_report_weekday) == (False, True, 0)


@pytest.mark.parametrize("weekday", ["7", "-1", "friday", ""])
def test_a_weekday_that_is_not_one_is_refused(alice_client, alice, weekday):
    response = alice_client.post(PREFERENCES, {"weekly_report": "on", "weekly_report_weekday": weekday})

    assert response.status_code == 200
    assert response.context["email_form"].errors["weekly_report_weekday"]
    alice.refresh_from_db()
    assert alice.weekly_report_weekday == 0


def test_preferences_need_a_log_in_and_a_post(client, alice_client):
    assert Client().post(PREFERENCES, {"weekly_report": "on", "weekly_report_weekday": "1"}).status_code == 302
    assert alice_client.get(PREFERENCES).status_code == 405


# --- settings -----------------------------------------------------------------------------------


def _settings_in_a_fresh_process(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("EMAIL_BACKEND", "ANYMAIL_PROVIDER", "ANYMAIL_API_KEY", "DJANGO_SETTINGS_MODULE")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import allumi.settings as s; print(s.EMAIL_BACKEND); print(getattr(s, 'ANYMAIL', None))"],
        cwd=django_settings.BASE_DIR, env=clean, capture_output=True, text=True, timeout=60,
    )


def test_the_console_backend_is_the_default():
    result = _settings_in_a_fresh_process()

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["django.core.mail.backends.console.EmailBackend", "None"]


def test_an_email_provider_is_chosen_by_the_environment():
    result = _settings_in_a_fresh_process(ANYMAIL_PROVIDER="postmark", ANYMAIL_API_KEY="pm-test-token")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["anymail.backends.postmark.EmailBackend", "{'POSTMARK_SERVER_TOKEN': 'pm-test-token'}"]


@pytest.mark.parametrize(("env", "complaint"), [({"ANYMAIL_PROVIDER": "carrier-pigeon", "ANYMAIL_API_KEY": "k"}, "ANYMAIL_PROVIDER"), ({"ANYMAIL_PROVIDER": "postmark"}, "ANYMAIL_API_KEY")])
def test_a_bad_email_provider_setting_stops_the_start(env, complaint):
    result = _settings_in_a_fresh_process(**env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and complaint in result.stderr
