"""The conversions, identities and link stats API, and the public track endpoint, against the contract."""

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_create
from attribution.conversions import attribution_settings_for, conversion_record, conversion_refund
from attribution.models import Click, Conversion
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id, visitor_cookie_value
from links.services import link_create

TRACK = "/api/v1/conversions/track"
CONVERSIONS = "/api/v1/conversions"
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
ORIGIN = "https://creator-shop.example"
CONVERSION_KEYS = {
    "id", "external_id", "event", "amount", "refunded_amount", "currency", "occurred_at", "source", "status",
    "identity_id", "confidence", "credits",
}
CREDIT_KEYS = {"link_id", "short_id", "weight", "revenue"}


# --- helpers ----------------------------------------------------------------------------------


def _now():
    return timezone.now().replace(microsecond=0)


def _click(link, *, at, visitor_id, ua=PHONE, method="get") -> Click:
    request = getattr(RequestFactory(), method)(f"/l/{link.short_id}", HTTP_USER_AGENT=ua, REMOTE_ADDR="81.2.69.142")
    click_id = new_click_id()
    clicks_store(
        payloads=[
            click_payload(
                request=request, link_id=link.id, creator_id=link.creator_id, click_id=click_id, visitor_id=visitor_id,
                occurred_at=at.timestamp(),
            )
        ]
    )
    return Click.objects.get(public_id=click_id)


@pytest.fixture
def convert(django_capture_on_commit_callbacks):
    def _convert(creator, **fields) -> Conversion:
        fields.setdefault("event", "purchase")
        with django_capture_on_commit_callbacks(execute=True):
            conversion, _ = conversion_record(creator=creator, source=Conversion.Source.TRACK, **fields)
        conversion.refresh_from_db()
        return conversion

    return _convert


@pytest.fixture
def links(alice):
    return [link_create(creator=alice, url="https://shop.example/a"), link_create(creator=alice, url="https://shop.example/b")]


@pytest.fixture
def publishable_key(alice):
    return api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="alice site")[1]


def _assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"]
    return error


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


@pytest.fixture
def journey(alice, links, convert):
    """One visitor clicks link a, then link b, then buys for 10 EUR."""
    now = _now()
    visitor = new_visitor_id()
    _click(links[0], at=now - timedelta(days=2), visitor_id=visitor)
    _click(links[1], at=now - timedelta(days=1), visitor_id=visitor)
    return convert(alice, visitor_id=visitor, amount=Decimal("10"), currency="eur", external_id="order-1", occurred_at=now)


# --- GET /api/v1/conversions ------------------------------------------------------------------


def test_the_conversion_list_has_the_contract_shape(alice_api, journey, links):
    response = alice_api.get(CONVERSIONS, {"model": "linear"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next"} and body["next"] is None
    [row] = body["results"]
    assert set(row) == CONVERSION_KEYS
    assert row["id"] == journey.pk
    assert row["external_id"] == "order-1"
    assert row["event"] == "purchase"
    assert row["amount"] == "10.00"
    assert row["refunded_amount"] == "0.00"
    assert row["currency"] == "EUR"
    assert _utc(row["occurred_at"]) == journey.occurred_at
    assert row["source"] == "track"
    assert row["status"] == "attributed"
    assert row["identity_id"] == journey.identity_id and isinstance(row["identity_id"], int)
    assert row["confidence"] == 93
    assert all(set(credit) == CREDIT_KEYS for credit in row["credits"])
    assert sorted((c["link_id"], c["short_id"], Decimal(str(c["weight"])), c["revenue"]) for c in row["credits"]) == sorted(
        [(links[0].id, links[0].short_id, Decimal("0.5"), "5.00"), (links[1].id, links[1].short_id, Decimal("0.5"), "5.00")]
    )
    assert all(isinstance(credit["link_id"], int) for credit in row["credits"])


def test_the_model_parameter_selects_the_credits(alice, alice_api, journey, links):
    def credits(**params):
        [row] = alice_api.get(CONVERSIONS, params).json()["results"]
        return [(c["link_id"], Decimal(str(c["weight"])), c["revenue"]) for c in row["credits"]]

    assert credits(model="first_touch") == [(links[0].id, Decimal(1), "10.00")]
    assert credits(model="last_touch") == [(links[1].id, Decimal(1), "10.00")]
    assert sorted(credits(model="position_based")) == sorted([(links[0].id, Decimal("0.5"), "5.00"), (links[1].id, Decimal("0.5"), "5.00")])
    assert sum(weight for _, weight, _ in credits(model="time_decay")) == Decimal(1)
    # Without model=, the creator's default model (last touch unless changed).
    assert credits() == credits(model="last_touch")
    prefs = attribution_settings_for(alice.id)
    prefs.default_model = "first_touch"
    prefs.save()
    assert credits() == [(links[0].id, Decimal(1), "10.00")]


def test_an_unknown_model_is_a_400(alice_api, journey):
    _assert_error(alice_api.get(CONVERSIONS, {"model": "most_recent_whim"}), 400, "invalid_model")


def test_revenue_in_the_list_is_net_of_refunds(alice_api, journey):
    conversion_refund(conversion=journey, refunded_amount=Decimal("2.50"))

    [row] = alice_api.get(CONVERSIONS, {"model": "linear"}).json()["results"]

    assert row["amount"] == "10.00" and row["refunded_amount"] == "2.50"
    assert sorted(credit["revenue"] for credit in row["credits"]) == ["3.75", "3.75"]


def test_unattributed_and_pending_conversions_have_no_confidence_and_no_credits(alice, alice_api, convert):
    unattributed = convert(alice, email="nobody@example.org")
    pending, _ = conversion_record(creator=alice, event="signup", source=Conversion.Source.TRACK)

    rows = {row["id"]: row for row in alice_api.get(CONVERSIONS).json()["results"]}

    assert (rows[unattributed.pk]["status"], rows[unattributed.pk]["confidence"], rows[unattributed.pk]["credits"]) == ("unattributed", None, [])
    assert (rows[pending.pk]["status"], rows[pending.pk]["confidence"], rows[pending.pk]["credits"]) == ("pending", None, [])
    assert rows[pending.pk]["external_id"] is None and rows[pending.pk]["identity_id"] is None


def test_the_status_filter(alice, alice_api, journey, convert):
    unattributed = convert(alice, email="nobody@example.org")
    pending, _ = conversion_record(creator=alice, event="signup", source=Conversion.Source.TRACK)

    def ids(status):
        return [row["id"] for row in alice_api.get(CONVERSIONS, {"status": status}).json()["results"]]

    assert ids("attributed") == [journey.pk]
    assert ids("unattributed") == [unattributed.pk]
    assert ids("pending") == [pending.pk]
    assert alice_api.get(CONVERSIONS, {"status": "lost"}).status_code == 400


def test_the_list_is_newest_first_and_the_cursor_walks_every_conversion_once(alice, alice_api):
    ids = [conversion_record(creator=alice, event=f"e{n}", source=Conversion.Source.TRACK)[0].pk for n in range(5)]

    seen, pages, cursor = [], 0, None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = alice_api.get(CONVERSIONS, params).json()
        assert len(body["results"]) <= 2
        seen += [row["id"] for row in body["results"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break

    assert seen == sorted(ids, reverse=True)
    assert pages == 3


def test_the_list_returns_50_by_default(alice, alice_api):
    Conversion.objects.bulk_create(
        Conversion(creator=alice, event="signup", source="track", occurred_at=timezone.now()) for _ in range(51)
    )

    body = alice_api.get(CONVERSIONS).json()

    assert len(body["results"]) == 50 and body["next"] is not None


def test_bob_never_sees_alices_conversions(bob_api, journey):
    body = bob_api.get(CONVERSIONS).json()

    assert body == {"results": [], "next": None}


def test_the_list_needs_the_secret_key(journey, publishable_key):
    assert APIClient().get(CONVERSIONS).status_code == 401
    assert APIClient().get(CONVERSIONS, HTTP_X_ALLUMI_KEY=publishable_key).status_code == 401
    assert APIClient().get(CONVERSIONS, HTTP_AUTHORIZATION=f"Bearer {publishable_key}").status_code == 401


# --- GET /api/v1/identities/<id> --------------------------------------------------------------


def test_an_identity_lists_its_identifiers_clicks_and_conversions(alice, alice_api, links, convert):
    now = _now()
    visitor = new_visitor_id()
    human = _click(links[0], at=now - timedelta(days=1), visitor_id=visitor)
    bot = _click(links[1], at=now - timedelta(hours=5), visitor_id=visitor, method="head")
    conversion = convert(alice, visitor_id=visitor, email="Fan@Example.org", occurred_at=now - timedelta(hours=1))
    later = convert(alice, email="fan@example.org", occurred_at=now)

    response = alice_api.get(f"/api/v1/identities/{conversion.identity_id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "identifiers", "clicks", "conversions"}
    assert body["id"] == conversion.identity_id == later.identity_id
    assert all(set(row) == {"kind", "value", "first_seen"} for row in body["identifiers"])
    assert {(row["kind"], row["value"]) for row in body["identifiers"]} == {("visitor", visitor), ("email", "fan@example.org")}
    assert all(row["kind"] in {"email", "visitor", "click", "whop_user", "external", "fingerprint"} for row in body["identifiers"])
    assert all(_utc(row["first_seen"]) for row in body["identifiers"])
    assert all(set(row) == {"click_id", "link_id", "short_id", "occurred_at", "is_bot"} for row in body["clicks"])
    clicks = {row["click_id"]: row for row in body["clicks"]}
    assert set(clicks) == {human.public_id, bot.public_id}
    assert clicks[human.public_id]["link_id"] == links[0].id and clicks[human.public_id]["short_id"] == links[0].short_id
    assert _utc(clicks[human.public_id]["occurred_at"]) == human.occurred_at
    assert (clicks[human.public_id]["is_bot"], clicks[bot.public_id]["is_bot"]) == (False, True)
    assert sorted(body["conversions"]) == sorted([conversion.pk, later.pk])


def test_bob_gets_a_404_on_alices_identity(bob_api, journey):
    _assert_error(bob_api.get(f"/api/v1/identities/{journey.identity_id}"), 404)


def test_an_unknown_identity_is_a_404(alice_api, journey):
    _assert_error(alice_api.get(f"/api/v1/identities/{journey.identity_id + 1000}"), 404)


# --- GET /api/v1/links/<id>/stats -------------------------------------------------------------


@pytest.fixture
def stats_world(alice, links, convert):
    """Link a: three human clicks from two visitors, two bot clicks, two conversions (one partly refunded)."""
    now = _now()
    first, second = new_visitor_id(), new_visitor_id()
    _click(links[0], at=now - timedelta(days=10), visitor_id=first)
    _click(links[0], at=now - timedelta(days=2), visitor_id=first)
    _click(links[0], at=now - timedelta(days=2), visitor_id=second)
    _click(links[0], at=now - timedelta(days=2), visitor_id=new_visitor_id(), method="head")
    _click(links[0], at=now - timedelta(days=1, hours=12), visitor_id=new_visitor_id(), ua=GOOGLEBOT)
    _click(links[1], at=now - timedelta(days=1, hours=6), visitor_id=second)
    refunded = convert(alice, visitor_id=first, amount=Decimal("49.99"), occurred_at=now - timedelta(days=1))
    conversion_refund(conversion=refunded, refunded_amount=Decimal("20.00"))
    convert(alice, visitor_id=second, amount=Decimal("10.00"), occurred_at=now - timedelta(days=1))
    return now


def _stats(api, link, **params):
    return api.get(f"/api/v1/links/{link.id}/stats", params)


def test_link_stats_count_humans_and_bots_apart_and_revenue_net_of_refunds(alice_api, links, stats_world):
    response = _stats(alice_api, links[0], model="first_touch")

    assert response.status_code == 200
    assert response.json() == {"clicks": 3, "unique_visitors": 2, "bot_clicks": 2, "conversions": 2, "revenue": "39.99"}


@pytest.mark.parametrize(
    ("model", "conversions", "revenue"),
    [("first_touch", 2, "39.99"), ("last_touch", 1, "29.99"), ("linear", 2, "34.99"), ("position_based", 2, "34.99")],
)
def test_link_stats_follow_the_model(alice_api, links, stats_world, model, conversions, revenue):
    body = _stats(alice_api, links[0], model=model).json()

    assert (body["conversions"], body["revenue"]) == (conversions, revenue)


def test_link_stats_default_to_the_creators_model(alice, alice_api, links, stats_world):
    assert _stats(alice_api, links[0]).json() == _stats(alice_api, links[0], model="last_touch").json()


def test_link_stats_of_the_other_link(alice_api, links, stats_world):
    body = _stats(alice_api, links[1], model="last_touch").json()

    assert body == {"clicks": 1, "unique_visitors": 1, "bot_clicks": 0, "conversions": 1, "revenue": "10.00"}


def test_link_stats_between_start_and_end(alice_api, links, stats_world):
    cut = (stats_world - timedelta(days=5)).isoformat()

    after = _stats(alice_api, links[0], model="first_touch", start=cut).json()
    before = _stats(alice_api, links[0], model="first_touch", end=cut).json()

    assert after == {"clicks": 2, "unique_visitors": 2, "bot_clicks": 2, "conversions": 2, "revenue": "39.99"}
    assert before == {"clicks": 1, "unique_visitors": 1, "bot_clicks": 0, "conversions": 0, "revenue": "0.00"}


def test_link_stats_with_an_unknown_model_are_a_400(alice_api, links):
    _assert_error(_stats(alice_api, links[0], model="whatever"), 400, "invalid_model")


def test_bob_gets_a_404_on_alices_link_stats(bob_api, links, stats_world):
    _assert_error(_stats(bob_api, links[0]), 404)


# --- POST /api/v1/conversions/track: validation ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "5.00"}, "event"),
        ({"event": "signup", "email": "not-an-email"}, "email"),
        ({"event": "purchase", "amount": "-1.00"}, "amount"),
        ({"event": "purchase", "amount": "ten"}, "amount"),
        ({"event": "purchase", "currency": "dollars"}, "currency"),
        ({"event": "purchase", "click_id": "not a click id"}, "click_id"),
        ({"event": "purchase", "visitor_id": "forged-visitor-value"}, "visitor_id"),
        ({"event": "purchase", "metadata": {"note": "x" * 4100}}, "metadata"),
    ],
)
def test_an_invalid_track_body_is_a_400_naming_the_field_and_records_nothing(alice_api, body, field):
    error = _assert_error(alice_api.post(TRACK, body, format="json"), 400)

    assert field in error.get("fields", {}) or field in error["message"]
    assert not Conversion.objects.exists()


def test_metadata_up_to_4kb_is_accepted(alice_api):
    metadata = {"note": "x" * 3900}

    response = alice_api.post(TRACK, {"event": "purchase", "metadata": metadata}, format="json")

    assert response.status_code == 202
    assert Conversion.objects.get().metadata == metadata


def test_occurred_at_from_a_browser_is_a_400(publishable_key):
    response = APIClient().post(
        TRACK, {"event": "purchase", "occurred_at": "2026-01-02T03:04:05Z"}, format="json", HTTP_X_ALLUMI_KEY=publishable_key
    )

    _assert_error(response, 400)
    assert not Conversion.objects.exists()


def test_occurred_at_from_a_server_is_kept(alice_api):
    response = alice_api.post(TRACK, {"event": "purchase", "occurred_at": "2026-01-02T03:04:05Z"}, format="json")

    assert response.status_code == 202
    assert Conversion.objects.get().occurred_at.isoformat() == "2026-01-02T03:04:05+00:00"


def test_an_unknown_publishable_key_is_a_401(alice):
    response = APIClient().post(TRACK, {"event": "purchase"}, format="json", HTTP_X_ALLUMI_KEY="pk_live_thisisnotakey000000")

    _assert_error(response, 401)
    assert not Conversion.objects.exists()


def test_no_key_at_all_is_a_401(alice):
    _assert_error(APIClient().post(TRACK, {"event": "purchase"}, format="json"), 401)


def test_a_bad_secret_key_is_a_401(alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer sk_live_thisisnotakey000000")

    _assert_error(client.post(TRACK, {"event": "purchase"}, format="json"), 401)


def test_the_publishable_key_may_come_in_the_body(alice, publishable_key):
    response = APIClient().post(TRACK, {"event": "signup", "key": publishable_key}, format="json")

    assert response.status_code == 202
    assert Conversion.objects.get().creator == alice


def test_a_text_plain_json_body_is_accepted_as_sendbeacon_sends_it(alice, publishable_key):
    body = json.dumps({"event": "signup", "key": publishable_key, "email": "fan@example.org", "amount": "5"})

    response = APIClient().post(TRACK, data=body, content_type="text/plain;charset=UTF-8", HTTP_ORIGIN=ORIGIN)

    assert response.status_code == 202
    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert (conversion.creator, conversion.event, conversion.email, conversion.amount) == (alice, "signup", "fan@example.org", Decimal("5"))


def test_a_text_plain_body_that_is_not_json_is_a_400(publishable_key):
    response = APIClient().post(TRACK, data="event=signup", content_type="text/plain", HTTP_X_ALLUMI_KEY=publishable_key)

    _assert_error(response, 400)


def test_the_track_answer_carries_the_id_and_status(alice_api):
    response = alice_api.post(TRACK, {"event": "purchase", "amount": "3.00"}, format="json")

    assert response.status_code == 202
    assert response.json() == {"id": Conversion.objects.get().pk, "status": "pending"}


# --- POST /api/v1/conversions/track: CORS and the visitor cookie --------------------------------


def test_a_preflight_from_any_origin_is_allowed_with_credentials(alice):
    response = APIClient().options(
        TRACK,
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-allumi-key",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "x-allumi-key" in response["Access-Control-Allow-Headers"].lower()


def test_a_browser_track_call_gets_cors_headers_echoing_its_origin(publishable_key):
    response = APIClient().post(TRACK, {"event": "signup"}, format="json", HTTP_X_ALLUMI_KEY=publishable_key, HTTP_ORIGIN=ORIGIN)

    assert response.status_code == 202
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"


def test_other_api_endpoints_get_no_cors_headers(alice_api, links, journey):
    for path in ("/api/v1/links", CONVERSIONS, f"/api/v1/links/{links[0].id}/stats", f"/api/v1/identities/{journey.identity_id}"):
        response = alice_api.get(path, HTTP_ORIGIN=ORIGIN)
        assert response.status_code == 200, path
        assert "Access-Control-Allow-Origin" not in response, path
        assert "Access-Control-Allow-Credentials" not in response, path

    preflight = APIClient().options("/api/v1/links", HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in preflight


def test_the_visitor_cookie_of_a_browser_call_becomes_the_conversions_visitor(alice, links, publishable_key, flush):
    browser = APIClient()
    assert browser.get(f"/l/{links[0].short_id}", HTTP_USER_AGENT=PHONE).status_code == 302
    flush()
    click = Click.objects.get()

    response = browser.post(TRACK, {"event": "signup"}, format="json", HTTP_X_ALLUMI_KEY=publishable_key, HTTP_ORIGIN=ORIGIN)

    assert response.status_code == 202
    assert Conversion.objects.get(pk=response.json()["id"]).visitor_id == click.visitor_id


def test_a_signed_visitor_cookie_is_read_and_a_forged_one_ignored(publishable_key):
    visitor = new_visitor_id()
    browser = APIClient()
    browser.cookies["allumi_vid"] = visitor_cookie_value(visitor)
    signed = browser.post(TRACK, {"event": "signup"}, format="json", HTTP_X_ALLUMI_KEY=publishable_key)

    forger = APIClient()
    forger.cookies["allumi_vid"] = visitor + ":forged-signature"
    forged = forger.post(TRACK, {"event": "signup"}, format="json", HTTP_X_ALLUMI_KEY=publishable_key)

    assert Conversion.objects.get(pk=signed.json()["id"]).visitor_id == visitor
    assert Conversion.objects.get(pk=forged.json()["id"]).visitor_id == ""


def test_a_browser_call_records_its_request_signals(publishable_key):
    response = APIClient().post(
        TRACK, {"event": "signup"}, format="json", HTTP_X_ALLUMI_KEY=publishable_key, HTTP_USER_AGENT=PHONE,
        HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9", REMOTE_ADDR="81.2.69.142",
    )

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert (conversion.ip, conversion.network, conversion.user_agent) == ("81.2.69.142", "81.2.69.0/24", PHONE)
    assert conversion.accept_language == "de-DE,de;q=0.9" and len(conversion.fingerprint) == 64


def test_a_server_call_does_not_take_the_servers_own_signals(alice_api):
    response = alice_api.post(TRACK, {"event": "purchase"}, format="json", HTTP_USER_AGENT="python-requests/2.32", REMOTE_ADDR="10.0.0.5")

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert (conversion.ip, conversion.network, conversion.user_agent, conversion.fingerprint) == (None, "", "", "")


def test_track_refuses_metadata_with_nul_characters(client, alice):
    from allumi.accounts.models import ApiKey
    from allumi.accounts.services import api_key_create
    from attribution.models import Conversion

    key = api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="site")[1]

    response = client.post(
        "/api/v1/conversions/track", {"event": "signup", "metadata": {"note": "a\u0000b"}},
        content_type="application/json", HTTP_X_ALLUMI_KEY=key,
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["metadata"] == ["metadata may not contain NUL characters."]
    assert not Conversion.objects.exists()
