"""A creator's whole Whop journey: connect the store on the settings page, share a link, a visitor
clicks and buys on Whop, the signed webhook arrives, the API shows the sale credited to the link;
then Whop refunds it and the link's revenue goes back to zero."""

import re
from decimal import Decimal
from html import unescape
from types import SimpleNamespace

from attribution.credit import MODELS
from attribution.models import Credit
from billing.models import WhopEvent
from links.services import link_create
from tests.billing.whop import PAYMENT_ID, assert_error, encode, payment, refund, signed_headers

WHOPS_SECRET = "ws_shown_once_in_whops_dashboard_Tb71"


def test_a_click_a_whop_sale_and_its_refund(alice_client, alice_api, follow, post_webhook, settings, bob_api):
    settings.SITE_URL = "https://allumi.example"
    # The creator connects her store: the page gives the endpoint, she pastes Whop's secret.
    page = unescape(alice_client.get("/settings/billing/whop/").content.decode())
    webhook_url = re.search(r'<code id="webhook-url">([^<]*)</code>', page).group(1)
    assert webhook_url.startswith("https://allumi.example/webhooks/whop/")
    webhook_path = webhook_url.removeprefix("https://allumi.example")
    assert alice_client.post("/settings/billing/whop/", {"signing_secret": WHOPS_SECRET}).status_code == 302
    # She makes a link; a visitor follows it and lands on Whop's checkout with the click id.
    created = alice_api.post("/api/v1/links", {"url": "https://whop.example/growth-lab/checkout", "title": "Launch video"}, format="json")
    assert created.status_code == 201
    link = created.json()
    click_id = follow(SimpleNamespace(short_id=link["short_id"]))

    # Whop reports the sale, carrying the click id in the checkout metadata.
    body = encode(payment(click_id=click_id))
    sale = post_webhook(webhook_path, body, signed_headers(WHOPS_SECRET, body))

    assert sale.status_code == 200
    listed = alice_api.get("/api/v1/conversions")
    assert listed.status_code == 200
    [conversion] = listed.json()["results"]
    assert conversion["external_id"] == PAYMENT_ID
    assert (conversion["event"], conversion["source"], conversion["status"]) == ("purchase", "whop", "attributed")
    assert conversion["confidence"] == 97
    assert (conversion["amount"], conversion["refunded_amount"], conversion["currency"]) == ("49.00", "0.00", "USD")
    assert conversion["identity_id"] is not None
    [credit] = conversion["credits"]
    assert (credit["link_id"], credit["short_id"]) == (link["id"], link["short_id"])
    assert Decimal(credit["weight"]) == 1 and credit["revenue"] == "49.00"
    stats = alice_api.get(f"/api/v1/links/{link['id']}/stats").json()
    assert (stats["clicks"], stats["conversions"], stats["revenue"]) == (1, 1, "49.00")

    # Whop refunds it in full.
    body = encode(refund(amount=49.0))
    refunded = post_webhook(webhook_path, body, signed_headers(WHOPS_SECRET, body))

    assert refunded.status_code == 200
    [conversion] = alice_api.get("/api/v1/conversions").json()["results"]
    assert conversion["refunded_amount"] == "49.00"
    assert [credit["revenue"] for credit in conversion["credits"]] == ["0.00"]
    for model in MODELS:
        stats = alice_api.get(f"/api/v1/links/{link['id']}/stats", {"model": model}).json()
        assert stats["revenue"] == "0.00", model
        assert stats["conversions"] == 1
    assert set(WhopEvent.objects.values_list("event_type", "status")) == {("payment.succeeded", "processed"), ("refund.created", "processed")}

    # Bob sees none of it.
    assert bob_api.get("/api/v1/conversions").json()["results"] == []
    assert_error(bob_api.get(f"/api/v1/links/{link['id']}/stats"), 404)



def test_a_sale_naming_another_creators_click_is_not_credited_to_that_creators_link(
    alice_api, bob, connection, follow, post_webhook
):
    bobs_link = link_create(creator=bob, url="https://whop.example/bobs-course")
    body = encode(payment(click_id=follow(bobs_link)))

    assert post_webhook(connection.webhook_path, body, signed_headers(connection.signing_secret, body)).status_code == 200

    [conversion] = alice_api.get("/api/v1/conversions").json()["results"]
    assert conversion["credits"] == []
    assert conversion["confidence"] != 97
    assert not Credit.objects.filter(link=bobs_link).exists()
