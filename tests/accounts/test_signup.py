import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from allumi.accounts.models import Creator
from allumi.accounts.services import email_confirmation_token
from tests.conftest import PASSWORD

SIGNUP = reverse("accounts:signup")
LOGIN = reverse("accounts:login")
LINKS = reverse("links:list")
OVERVIEW = reverse("reports:overview")  # where log-in leads


def _sign_up(client, email="carol@example.com", password=PASSWORD, name="Carol"):
    # Emails are queued on commit, which a test's transaction never reaches: run that work here.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(SIGNUP, {"name": name, "email": email, "password": password})


def _confirmation_path(message) -> str:
    """The path of the confirmation link in an email, checked in both its text and HTML parts."""
    links = re.findall(r"https?://\S+/accounts/confirm/[^\s\"<]+/", message.body)
    assert len(links) == 1, message.body
    html = message.alternatives[0][0]
    assert f'href="{links[0]}"' in html
    return urlsplit(links[0]).path


def _log_in(client, email, password=PASSWORD):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(LOGIN, {"username": email, "password": password})


@pytest.mark.django_db
def test_it_creates_an_unconfirmed_creator_and_emails_a_confirmation_link(client):
    response = _sign_up(client, email="  Carol@Example.COM ")

    assert response.status_code == 200
    assert "Check your email" in response.content.decode()
    creator = Creator.objects.get()
    assert creator.email == "carol@example.com"
    assert creator.name == "Carol"
    assert creator.check_password(PASSWORD)
    assert not creator.email_confirmed and not creator.is_staff
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["carol@example.com"]
    assert message.subject == "Confirm your email for Allumi"
    assert _confirmation_path(message).startswith("/accounts/confirm/")
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_refuses_to_log_in_before_confirming_and_sends_a_new_link(client):
    _sign_up(client)
    mail.outbox.clear()

    response = _log_in(client, "carol@example.com")

    assert response.status_code == 200
    assert "Confirm your email first" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["carol@example.com"]
    assert _confirmation_path(mail.outbox[0])
    assert client.get(LINKS).status_code == 302


@pytest.mark.django_db
def test_it_sends_no_link_for_a_wrong_password_of_an_unconfirmed_creator(client):
    _sign_up(client)
    mail.outbox.clear()

    response = _log_in(client, "carol@example.com", "not-the-password")

    assert response.status_code == 200
    assert "Confirm your email" not in response.content.decode()
    assert mail.outbox == []


@pytest.mark.django_db
def test_it_confirms_the_email_and_logs_in_when_the_link_is_followed(client):
    _sign_up(client)
    path = _confirmation_path(mail.outbox[0])

    response = client.get(path)

    assert response.status_code == 302 and response["Location"] == LINKS
    creator = Creator.objects.get()
    assert creator.email_confirmed_at is not None
    assert client.session["_auth_user_id"] == str(creator.pk)
    page = client.get(LINKS)
    assert page.status_code == 200
    assert "Your email is confirmed" in page.content.decode()


@pytest.mark.django_db
def test_it_lets_a_creator_log_in_once_confirmed(client):
    _sign_up(client)
    client.get(_confirmation_path(mail.outbox[0]))
    client.post(reverse("accounts:logout"))
    mail.outbox.clear()

    response = _log_in(client, "carol@example.com")

    assert response.status_code == 302 and response["Location"] == OVERVIEW
    assert mail.outbox == []


@pytest.mark.django_db
def test_it_refuses_a_confirmation_link_already_used_and_logs_nobody_in(client):
    _sign_up(client)
    path = _confirmation_path(mail.outbox[0])
    client.get(path)
    first = Creator.objects.get().email_confirmed_at
    stranger = Client()

    response = stranger.get(path)

    assert response.status_code == 400
    assert "already confirmed" in response.content.decode()
    assert "_auth_user_id" not in stranger.session
    assert Creator.objects.get().email_confirmed_at == first


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"), id="signature"),
        pytest.param(lambda token: "x" + token, id="payload"),
        pytest.param(lambda token: "not-a-token", id="garbage"),
    ],
)
def test_it_answers_a_tampered_link_with_a_400_page_and_changes_nothing(client, mangle):
    _sign_up(client)
    token = _confirmation_path(mail.outbox[0]).split("/")[-2]

    response = client.get(reverse("accounts:confirm_email", args=[mangle(token)]))

    assert response.status_code == 400
    assert "This confirmation link is not valid." in response.content.decode()
    assert Creator.objects.get().email_confirmed_at is None
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_answers_an_expired_link_with_a_400_page_and_changes_nothing(client, settings):
    _sign_up(client)
    path = _confirmation_path(mail.outbox[0])
    settings.EMAIL_CONFIRMATION_MAX_AGE = -1

    response = client.get(path)

    assert response.status_code == 400
    assert "This confirmation link has expired" in response.content.decode()
    assert Creator.objects.get().email_confirmed_at is None
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_refuses_a_link_made_for_an_address_the_creator_no_longer_has(client):
    _sign_up(client)
    creator = Creator.objects.get()
    token = email_confirmation_token(creator=creator)
    Creator.objects.filter(pk=creator.pk).update(email="carol@elsewhere.example")

    response = client.get(reverse("accounts:confirm_email", args=[token]))

    assert response.status_code == 400
    creator.refresh_from_db()
    assert creator.email_confirmed_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@Example.com"])
def test_it_refuses_an_email_that_already_has_an_account(client, alice, email):
    response = _sign_up(client, email=email)

    assert response.status_code == 200
    assert "An account with this email already exists. Sign in instead." in response.content.decode()
    assert Creator.objects.count() == 1
    alice.refresh_from_db()
    assert alice.name == "Alice" and alice.check_password(PASSWORD)
    assert mail.outbox == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "error"),
    [
        ("short1", "This password is too short."),
        ("1234567890123", "This password is entirely numeric."),
        ("password1234", "This password is too common."),
        ("carol@example.com", "The password is too similar to the email."),
    ],
)
def test_it_refuses_a_weak_password(client, password, error):
    response = _sign_up(client, password=password)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Creator.objects.exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_it_sends_a_signed_in_creator_to_their_links(alice_client):
    response = alice_client.get(SIGNUP)

    assert response.status_code == 302 and response["Location"] == LINKS

