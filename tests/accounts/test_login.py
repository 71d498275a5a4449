import pytest
from django.urls import reverse

from tests.conftest import PASSWORD

LOGIN = reverse("accounts:login")
LOGOUT = reverse("accounts:logout")
LINKS = reverse("links:list")
OVERVIEW = reverse("reports:overview")  # where log-in leads


def _log_in(client, email, password=PASSWORD, **extra):
    return client.post(LOGIN, {"username": email, "password": password, **extra})


@pytest.mark.parametrize("email", ["alice@example.com", "Alice@EXAMPLE.com", "  alice@example.com  "])
def test_it_logs_in_with_the_email_in_any_case(client, alice, email):
    response = _log_in(client, email)

    assert response.status_code == 302 and response["Location"] == OVERVIEW
    assert client.session["_auth_user_id"] == str(alice.pk)
    alice.refresh_from_db()
    assert alice.last_login is not None
    assert client.get(LINKS).status_code == 200


def test_it_follows_a_safe_next_parameter_and_ignores_a_foreign_one(client, alice):
    profile = reverse("accounts:profile")
    assert _log_in(client, "alice@example.com", next=profile)["Location"] == profile

    client.post(LOGOUT)
    assert _log_in(client, "alice@example.com", next="https://evil.example/")["Location"] == OVERVIEW


@pytest.mark.parametrize(
    ("email", "password"),
    [("alice@example.com", "wrong-password-123"), ("nobody@example.com", PASSWORD), ("alice@example.com", "")],
)
def test_it_refuses_a_wrong_password_or_unknown_email(client, alice, email, password):
    response = _log_in(client, email, password)

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    if password:
        assert "Please enter a correct email and password." in response.content.decode()
    alice.refresh_from_db()
    assert alice.last_login is None


def test_it_refuses_a_deactivated_creator(client, alice):
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    response = _log_in(client, "alice@example.com")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_logs_out_on_post(alice_client):
    response = alice_client.post(LOGOUT)

    assert response.status_code == 302 and response["Location"] == LOGIN
    assert "_auth_user_id" not in alice_client.session
    page = alice_client.get(LINKS)
    assert page.status_code == 302 and page["Location"].startswith(LOGIN)


def test_it_does_not_log_out_on_get(alice_client):
    # A GET must not end the session: an <img src=".../logout/"> on any page could otherwise do it.
    response = alice_client.get(LOGOUT)

    assert response.status_code == 405
    assert alice_client.get(LINKS).status_code == 200


def test_it_sends_a_signed_in_creator_from_the_login_page_to_their_overview(alice_client):
    response = alice_client.get(LOGIN)

    assert response.status_code == 302 and response["Location"] == OVERVIEW


def test_it_shows_the_login_form(client, db):
    response = client.get(LOGIN)

    assert response.status_code == 200
    body = response.content.decode()
    assert 'type="email"' in body and 'name="username"' in body and 'name="password"' in body
