import pytest
from django.urls import reverse

PROFILE = reverse("accounts:profile")
LOGIN = reverse("accounts:login")


def test_it_shows_the_creators_own_profile(alice_client, alice):
    response = alice_client.get(PROFILE)

    assert response.status_code == 200
    body = response.content.decode()
    assert "alice@example.com" in body
    assert 'value="Alice"' in body and 'value="USD"' in body


def test_it_saves_the_name_and_an_upper_cased_currency(alice_client, alice):
    response = alice_client.post(PROFILE, {"name": "Alice Liddell", "currency": " eur "})

    assert response.status_code == 302 and response["Location"] == PROFILE
    alice.refresh_from_db()
    assert alice.name == "Alice Liddell"
    assert alice.currency == "EUR"
    assert "Profile saved." in alice_client.get(PROFILE).content.decode()


@pytest.mark.parametrize("currency", ["US", "EURO", "12A", "U$D", ""])
def test_it_refuses_a_currency_that_is_not_three_letters(alice_client, alice, currency):
    response = alice_client.post(PROFILE, {"name": "Changed", "currency": currency})

    assert response.status_code == 200
    assert response.context["form"].errors["currency"]
    alice.refresh_from_db()
    assert (alice.name, alice.currency) == ("Alice", "USD")


def test_it_changes_only_the_name_and_currency(alice_client, alice):
    alice_client.post(
        PROFILE,
        {"name": "Alice", "currency": "GBP", "email": "mallory@example.com", "is_staff": "on", "is_superuser": "on"},
    )

    alice.refresh_from_db()
    assert alice.currency == "GBP"
    assert alice.email == "alice@example.com"
    assert not alice.is_staff and not alice.is_superuser


def test_it_leaves_other_creators_alone(alice_client, alice, bob):
    alice_client.post(PROFILE, {"name": "Alice", "currency": "JPY"})

    bob.refresh_from_db()
    assert (bob.name, bob.currency) == ("Bob", "USD")


def test_it_requires_login_to_see_the_profile(client, db):
    response = client.get(PROFILE)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={PROFILE}"


def test_it_requires_login_to_change_the_profile(client, alice):
    response = client.post(PROFILE, {"name": "Mallory", "currency": "EUR"})

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={PROFILE}"
    alice.refresh_from_db()
    assert (alice.name, alice.currency) == ("Alice", "USD")
