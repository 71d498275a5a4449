import re
from urllib.parse import urlsplit

from django.core import mail
from django.test import TestCase
from django.urls import reverse

from tests.conftest import PASSWORD

RESET = reverse("accounts:password_reset")
SENT = reverse("accounts:password_reset_done")
COMPLETE = reverse("accounts:password_reset_complete")
LOGIN = reverse("accounts:login")
LINKS = reverse("links:list")
OVERVIEW = reverse("reports:overview")  # where log-in leads
NEW_PASSWORD = "a-brand-new-passphrase-42"


def _reset_path(message) -> str:
    links = re.findall(r"https?://\S+/accounts/password-reset/[^\s\"<]+/[^\s\"<]+/", message.body)
    assert len(links) == 1, message.body
    assert f'href="{links[0]}"' in message.alternatives[0][0]
    return urlsplit(links[0]).path


def _ask_reset(client, email, **options):
    # The email is queued on commit, which a test's transaction never reaches: run that work here.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(RESET, {"email": email}, **options)


def _log_in(client, email, password):
    return client.post(LOGIN, {"username": email, "password": password})


def test_it_emails_a_link_that_sets_a_new_password(client, alice):
    response = _ask_reset(client, "Alice@Example.com")

    assert response.status_code == 302 and response["Location"] == SENT
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert message.subject == "Reset your Allumi password"
    # The link carries the token once; the confirm view swaps it for a session and redirects.
    form_page = client.get(_reset_path(message), follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    set_url = form_page.redirect_chain[-1][0]

    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done.status_code == 302 and done["Location"] == COMPLETE
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD) and not alice.check_password(PASSWORD)
    assert _log_in(client, "alice@example.com", PASSWORD).status_code == 200
    response = _log_in(client, "alice@example.com", NEW_PASSWORD)
    assert response.status_code == 302 and response["Location"] == OVERVIEW


def test_it_refuses_a_used_reset_link(client, alice):
    _ask_reset(client, "alice@example.com")
    path = _reset_path(mail.outbox[0])
    set_url = client.get(path, follow=True).redirect_chain[-1][0]
    client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    again = client.get(path, follow=True)

    assert again.status_code == 200 and not again.context["validlink"]
    assert "This reset link is no longer valid." in again.content.decode()


def test_it_refuses_a_weak_new_password(client, alice):
    _ask_reset(client, "alice@example.com")
    set_url = client.get(_reset_path(mail.outbox[0]), follow=True).redirect_chain[-1][0]

    response = client.post(set_url, {"new_password1": "12345", "new_password2": "12345"})

    assert response.status_code == 200
    assert "This password is too short." in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_it_refuses_a_tampered_reset_link(client, alice):
    _ask_reset(client, "alice@example.com")
    path = _reset_path(mail.outbox[0])
    tampered = path[:-2] + ("a" if path[-2] != "a" else "b") + "/"

    response = client.get(tampered, follow=True)

    assert response.status_code == 200 and not response.context["validlink"]
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_it_answers_an_unknown_email_with_the_same_page_and_sends_nothing(client, alice):
    known = _ask_reset(client, "alice@example.com", follow=True)
    mail.outbox.clear()

    unknown = _ask_reset(client, "nobody@example.com", follow=True)

    assert unknown.redirect_chain == known.redirect_chain == [(SENT, 302)]
    assert unknown.content == known.content
    assert "If an account uses that address" in unknown.content.decode()
    assert mail.outbox == []
