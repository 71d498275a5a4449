"""The dashboard under /settings/integrations/: endpoints, the secret shown once, the delivery log,
test events, redelivery, disabling and deleting — and bob gets 404 on every one of alice's."""

import re
from html import unescape

import pytest

from allumi.integrations.models import EventType, WebhookDelivery, WebhookEndpoint
from allumi.integrations.services import webhook_event_emit
from tests.integrations.conftest import Reply

PAGE = "/settings/integrations/"


def _text(response) -> str:
    return unescape(response.content.decode())


@pytest.fixture
def delivery(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    """A delivery to alice's endpoint that failed (the receiver answered 500)."""
    receiver.reply(Reply(status=500, body=b"CRM is down"))
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={"link": {"id": 3}})
    delivery.refresh_from_db()
    return delivery


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PAGE, f"{PAGE}1/", f"{PAGE}1/deliveries/1/"])
def test_pages_require_login(client, db, path):
    response = client.get(path)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_creating_requires_login(client, db, receiver, allow_private):
    response = client.post(PAGE, {"url": receiver.url(), "events": EventType.values})

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not WebhookEndpoint.objects.exists()


def _bobs_attempts(endpoint, delivery):
    base = f"{PAGE}{endpoint.pk}/"
    return [
        ("get", base),
        ("get", f"{base}deliveries/{delivery.pk}/"),
        ("post", f"{base}disable/"),
        ("post", f"{base}enable/"),
        ("post", f"{base}test/"),
        ("post", f"{base}delete/"),
        ("post", f"{base}deliveries/{delivery.pk}/redeliver/"),
    ]


def test_bob_gets_404_on_every_one_of_alices_endpoint_pages_and_actions(bob_client, alice_endpoint, delivery, receiver):
    endpoint, _ = alice_endpoint
    sent = len(receiver.requests)

    for method, path in _bobs_attempts(endpoint, delivery):
        response = getattr(bob_client, method)(path)
        assert response.status_code == 404, (method, path)

    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert endpoint.is_active and delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == 1
    assert len(receiver.requests) == sent
    assert endpoint.url not in _text(bob_client.get(PAGE))


def test_a_delivery_is_only_found_under_its_own_endpoint(alice, alice_client, alice_endpoint, delivery, receiver, allow_private):
    from allumi.integrations.services import endpoint_create

    other, _ = endpoint_create(creator=alice, url=receiver.url("/other"), events=[EventType.CONVERSION_CREATED])

    assert alice_client.get(f"{PAGE}{other.pk}/deliveries/{delivery.pk}/").status_code == 404


# --- creating: the secret is shown once -------------------------------------------------------------


def test_creating_an_endpoint_shows_its_secret_once(alice_client, receiver, allow_private, django_capture_on_commit_callbacks):
    response = alice_client.post(
        PAGE, {"url": receiver.url(), "description": "HubSpot", "events": [EventType.LINK_CREATED, EventType.CONVERSION_ATTRIBUTED]}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'<code id="new-secret" class="break">(whsec_[A-Za-z0-9+/=]+)</code>', response.content.decode()).group(1)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.creator.email == "alice@example.com" and endpoint.description == "HubSpot"
    assert endpoint.events == ["link.created", "conversion.attributed"]
    assert endpoint.secret == secret and secret not in endpoint.secret_encrypted

    later = _text(alice_client.get(PAGE))
    assert secret not in later and f"whsec_…{secret[-4:]}" in later
    assert secret not in _text(alice_client.get(f"{PAGE}{endpoint.pk}/"))

    # the secret shown is the one that signs
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(f"{PAGE}{endpoint.pk}/test/")
    assert receiver.requests[0].verify(secret)["type"] == "webhook.test"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://localhost/hook", "http://169.254.169.254/latest/meta-data/", "ftp://crm.example.com/"])
def test_a_url_allumi_may_not_call_is_refused_on_the_form(alice_client, url):
    response = alice_client.post(PAGE, {"url": url, "events": EventType.values})

    assert response.status_code == 200
    assert 'class="error"' in response.content.decode()
    assert "new-secret" not in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_at_least_one_event_is_needed(alice_client, receiver, allow_private):
    response = alice_client.post(PAGE, {"url": receiver.url(), "events": []})

    assert response.status_code == 200 and "This field is required." in _text(response)
    assert not WebhookEndpoint.objects.exists()


def test_the_form_offers_every_event_checked(alice_client):
    page = alice_client.get(PAGE).content.decode()

    for event in EventType.values:
        assert re.search(rf'<input type="checkbox" name="events" value="{re.escape(event)}"[^>]*checked', page), event


def test_the_settings_page_links_here(alice_client):
    assert f'href="{PAGE}"' in alice_client.get("/settings/").content.decode()


# --- the delivery log -----------------------------------------------------------------------------


def test_the_log_shows_each_delivery_with_its_response_code_and_error(alice_client, alice_endpoint, delivery):
    endpoint, _ = alice_endpoint

    page = _text(alice_client.get(f"{PAGE}{endpoint.pk}/"))

    row = re.search(rf"<tr>\s*<td><a href=\"{PAGE}{endpoint.pk}/deliveries/{delivery.pk}/\">.*?</tr>", page, re.S).group(0)
    assert "link.created" in row and delivery.event_id in row
    assert "Failed, will retry" in row and '<td class="num">500</td>' in row and "HTTP 500" in row
    assert "Redeliver" in row


def test_a_delivery_page_shows_the_payload_and_the_answer(alice_client, alice_endpoint, delivery):
    endpoint, _ = alice_endpoint

    page = _text(alice_client.get(f"{PAGE}{endpoint.pk}/deliveries/{delivery.pk}/"))

    assert '"type": "link.created"' in page and '"id": 3' in page
    assert "CRM is down" in page


def test_redeliver_sends_the_same_event_again_now(alice_client, alice_endpoint, delivery, receiver, django_capture_on_commit_callbacks):
    endpoint, secret = alice_endpoint

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"{PAGE}{endpoint.pk}/deliveries/{delivery.pk}/redeliver/")

    assert response.status_code == 302 and response["Location"] == f"{PAGE}{endpoint.pk}/"
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event_id
    assert second.verify(secret) == first.verify(secret)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED and delivery.attempts == 2


def test_redelivering_a_delivered_event_makes_one_more_attempt(alice_client, alice_endpoint, delivery, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = alice_endpoint
    url = f"{PAGE}{endpoint.pk}/deliveries/{delivery.pk}/redeliver/"
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(url)
    receiver.reply(Reply(status=500))

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(url)

    delivery.refresh_from_db()
    assert len(receiver.requests) == 3
    # sent by hand: one attempt, no retries, and it does not count towards switching the endpoint off
    assert delivery.status == WebhookDelivery.Status.GIVEN_UP and delivery.manual and delivery.next_attempt_at is None
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_send_test_event_posts_a_signed_test_event(alice_client, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    endpoint, secret = alice_endpoint

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"{PAGE}{endpoint.pk}/test/", follow=True)

    (event,) = receiver.events(secret)
    assert event["type"] == "webhook.test" and event["data"]["endpoint_id"] == endpoint.pk
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.status == WebhookDelivery.Status.DELIVERED and delivery.manual
    assert "Test event sent" in _text(response)
    assert "webhook.test" in _text(response)


def test_pages_need_no_inline_script_or_style(alice_client, alice_endpoint, delivery):
    endpoint, _ = alice_endpoint

    for path in (PAGE, f"{PAGE}{endpoint.pk}/", f"{PAGE}{endpoint.pk}/deliveries/{delivery.pk}/"):
        page = alice_client.get(path).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path
        assert " style=" not in page and "<style" not in page, path
        assert not re.search(r"<[^>]+\son[a-z]+=", page), path  # no inline event handlers


# --- disable, enable, delete ----------------------------------------------------------------------


def test_disable_stops_events_and_enable_starts_them_again(alice, alice_client, alice_endpoint, delivery, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = alice_endpoint

    response = alice_client.post(f"{PAGE}{endpoint.pk}/disable/")

    assert response.status_code == 302
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_reason == "Disabled by you."
    assert delivery.status == WebhookDelivery.Status.GIVEN_UP
    page = _text(alice_client.get(f"{PAGE}{endpoint.pk}/"))
    assert "Disabled: Disabled by you." in page and "Send test event" not in page and "Redeliver" not in page
    assert alice_client.post(f"{PAGE}{endpoint.pk}/test/").status_code == 302
    assert not WebhookDelivery.objects.filter(event_type="webhook.test").exists()

    alice_client.post(f"{PAGE}{endpoint.pk}/enable/")
    with django_capture_on_commit_callbacks(execute=True):
        webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.disabled_reason == ""
    assert len(receiver.requests) == 2


def test_delete_removes_the_endpoint_and_its_log(alice_client, alice_endpoint, delivery):
    endpoint, _ = alice_endpoint

    response = alice_client.post(f"{PAGE}{endpoint.pk}/delete/")

    assert response.status_code == 302 and response["Location"] == PAGE
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("action", ["disable", "enable", "delete", "test"])
def test_actions_only_accept_post(alice_client, alice_endpoint, action):
    endpoint, _ = alice_endpoint

    assert alice_client.get(f"{PAGE}{endpoint.pk}/{action}/").status_code == 405
