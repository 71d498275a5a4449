"""Attribution: who converted, which clicks were their journey, how sure Allumi is, and what each link earned.

Clicks are made at chosen times through the same code as real traffic (a request handed to
click_payload and clicks_store); conversions go through conversion_record and the attribution task,
run when the transaction commits.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_create
from attribution.conversions import (
    attribution_settings_for,
    conversion_attribute,
    conversion_record,
    conversion_refund,
    recompute_start,
)
from attribution.credit import MODELS
from attribution.identities import identity_merge_revert
from attribution.models import Click, Conversion, Credit, CreditLedger, Identifier, Identity, IdentityMerge
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id, visitor_cookie_value
from links.services import link_create

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
LAPTOP = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
ENGLISH = "en-US,en;q=0.9"
ENCODING = "gzip, deflate, br"
HOME_IP = "81.2.69.142"
CARRIER = "172.58.10"  # one carrier /24 behind NAT: many people, one network
TRACK = "/api/v1/conversions/track"

_factory = RequestFactory()


# --- helpers ----------------------------------------------------------------------------------


def _now():
    # Whole seconds, so a click stored from an epoch float lands exactly where the test put it.
    return timezone.now().replace(microsecond=0)


def _click(link, *, at, visitor_id, ua=PHONE, ip=HOME_IP, language=ENGLISH, encoding=ENCODING, method="get") -> Click:
    headers = {"HTTP_USER_AGENT": ua, "HTTP_ACCEPT_LANGUAGE": language, "HTTP_ACCEPT_ENCODING": encoding, "REMOTE_ADDR": ip}
    request = getattr(_factory, method)(f"/l/{link.short_id}", **headers)
    click_id = new_click_id()
    payload = click_payload(
        request=request, link_id=link.id, creator_id=link.creator_id, click_id=click_id, visitor_id=visitor_id,
        occurred_at=at.timestamp(),
    )
    clicks_store(payloads=[payload])
    return Click.objects.get(public_id=click_id)


def _credits(conversion, model="linear") -> dict[int, tuple[Decimal, Decimal]]:
    """link id -> (weight, revenue) under `model`."""
    return {
        credit.link_id: (credit.weight, credit.revenue)
        for credit in Credit.objects.filter(conversion=conversion, model=model).order_by("id")
    }


@pytest.fixture
def convert(django_capture_on_commit_callbacks):
    """Record a conversion and run its attribution as a worker would once the transaction commits."""

    def _convert(creator, **fields) -> Conversion:
        fields.setdefault("event", "purchase")
        fields.setdefault("source", Conversion.Source.TRACK)
        with django_capture_on_commit_callbacks(execute=True):
            conversion, _ = conversion_record(creator=creator, **fields)
        conversion.refresh_from_db()
        return conversion

    return _convert


@pytest.fixture
def links(alice):
    return [link_create(creator=alice, url=f"https://shop.example/{name}", title=name) for name in ("video", "bio", "newsletter")]


@pytest.fixture
def publishable_key(alice):
    return api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="alice site")[1]


def _browser_track(key, body, *, ua=PHONE, ip=HOME_IP, language=ENGLISH, encoding=ENCODING, client=None):
    client = client or APIClient()
    return client.post(
        TRACK, body, format="json", HTTP_X_ALLUMI_KEY=key, HTTP_USER_AGENT=ua, HTTP_ACCEPT_LANGUAGE=language,
        HTTP_ACCEPT_ENCODING=encoding, REMOTE_ADDR=ip,
    )


# --- deterministic evidence -------------------------------------------------------------------


def test_a_conversion_naming_a_click_id_is_credited_to_that_link_at_97(alice, links, convert):
    now = _now()
    click = _click(links[0], at=now - timedelta(hours=2), visitor_id=new_visitor_id())

    conversion = convert(alice, click_id=click.public_id, amount=Decimal("49.00"), occurred_at=now)

    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert conversion.confidence == 97
    assert conversion.evidence["clicks"] == [click.public_id]
    assert conversion.evidence["method"] == "click_id"
    for model in MODELS:
        assert _credits(conversion, model) == {links[0].id: (Decimal("1"), Decimal("49.00"))}


INSTAGRAM_APP = PHONE + " Instagram 330.0.0.0 (iPhone15,2; iOS 17_5; en_US)"


@pytest.mark.parametrize(
    ("later", "confidence", "continued"),
    [
        (None, 97, None),
        ({"ua": LAPTOP}, 65, "nearby"),  # another browser of the home clicked after the journey
        ({"ua": INSTAGRAM_APP}, 40, "in_app"),  # an in-app browser there: likely the person's own phone
        ({"ua": LAPTOP, "before": True}, 97, None),  # clicked before the journey's last click: no sign
    ],
)
def test_a_click_id_is_less_sure_when_the_journeys_network_clicked_on_from_another_browser(
    alice, links, convert, later, confidence, continued
):
    now = _now()
    named = _click(links[0], at=now - timedelta(hours=2), visitor_id=new_visitor_id())
    if later:
        when = now - timedelta(hours=3) if later.get("before") else now - timedelta(hours=1)
        _click(links[1], at=when, visitor_id=new_visitor_id(), ua=later["ua"])

    conversion = convert(alice, click_id=named.public_id, occurred_at=now)

    assert conversion.confidence == confidence
    assert conversion.evidence.get("continued_elsewhere") == continued
    assert _credits(conversion, "last_touch") == {links[0].id: (Decimal("1"), Decimal("0.00"))}  # credit unchanged


def test_on_a_crowded_network_a_later_click_of_someone_else_costs_only_a_little_confidence(alice, links, convert):
    now = _now()
    address = f"{CARRIER}.7"
    named = _click(links[0], at=now - timedelta(hours=2), visitor_id=new_visitor_id(), ip=address)
    for n in range(13):  # a carrier's NAT: more visitors than any home has
        _click(links[n % 3], at=now - timedelta(hours=1, minutes=n), visitor_id=new_visitor_id(), ip=f"{CARRIER}.{n + 20}")

    conversion = convert(alice, click_id=named.public_id, occurred_at=now)

    assert conversion.confidence == 97 - 10
    assert conversion.evidence["continued_elsewhere"] == "crowded"


def test_a_crowded_network_is_told_apart_even_when_its_latest_clicks_come_from_a_few_heavy_clickers(alice, links, convert):
    # Visitors are first counted among a network's latest clicks; when those hold only a few
    # visitors, the earlier ones must still be counted, or a carrier's NAT would pass for a home.
    now = _now()
    named = _click(links[0], at=now - timedelta(hours=5), visitor_id=new_visitor_id(), ip=f"{CARRIER}.7")
    for n in range(13):
        _click(links[0], at=now - timedelta(hours=4, minutes=n), visitor_id=new_visitor_id(), ip=f"{CARRIER}.{n + 20}")
    heavy = [new_visitor_id(), new_visitor_id()]
    for n in range(70):
        _click(links[1], at=now - timedelta(hours=2, seconds=n), visitor_id=heavy[n % 2], ip=f"{CARRIER}.99")

    conversion = convert(alice, click_id=named.public_id, occurred_at=now)

    assert conversion.evidence["continued_elsewhere"] == "crowded"
    assert conversion.confidence == 97 - 10


def test_a_home_whose_other_browser_clicked_many_times_is_still_a_home(alice, links, convert):
    now = _now()
    named = _click(links[0], at=now - timedelta(hours=3), visitor_id=new_visitor_id())
    laptop = new_visitor_id()
    for n in range(70):  # more clicks than the first count reads, from one other browser
        _click(links[1], at=now - timedelta(hours=2, seconds=n), visitor_id=laptop, ua=LAPTOP)

    conversion = convert(alice, click_id=named.public_id, occurred_at=now)

    assert conversion.evidence["continued_elsewhere"] == "nearby"
    assert conversion.confidence == 65


def test_a_click_id_also_brings_in_the_visitors_other_clicks(alice, links, convert):
    now = _now()
    visitor = new_visitor_id()
    first = _click(links[1], at=now - timedelta(days=2), visitor_id=visitor)
    named = _click(links[0], at=now - timedelta(hours=2), visitor_id=visitor)

    conversion = convert(alice, click_id=named.public_id, occurred_at=now)

    assert conversion.confidence == 97
    assert conversion.evidence["clicks"] == [first.public_id, named.public_id]
    assert _credits(conversion, "first_touch") == {links[1].id: (Decimal("1"), Decimal("0.00"))}


def test_the_visitor_cookie_alone_attributes_at_93(alice, links, convert):
    now = _now()
    visitor = new_visitor_id()
    first = _click(links[0], at=now - timedelta(days=3), visitor_id=visitor)
    second = _click(links[1], at=now - timedelta(days=1), visitor_id=visitor)
    _click(links[2], at=now - timedelta(days=1), visitor_id=new_visitor_id())  # someone else

    conversion = convert(alice, visitor_id=visitor, amount=Decimal("10.00"), occurred_at=now)

    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert conversion.confidence == 93
    assert conversion.evidence["clicks"] == [first.public_id, second.public_id]
    assert _credits(conversion, "linear") == {
        links[0].id: (Decimal("0.5"), Decimal("5.00")),
        links[1].id: (Decimal("0.5"), Decimal("5.00")),
    }


def test_an_email_tied_to_a_cookie_at_signup_attributes_a_later_server_side_purchase_at_88(
    alice, links, publishable_key, alice_api, flush, django_capture_on_commit_callbacks
):
    browser = APIClient()
    for link in links[:2]:
        assert browser.get(f"/l/{link.short_id}", HTTP_USER_AGENT=PHONE).status_code == 302
    flush()
    assert "allumi_vid" in browser.cookies

    with django_capture_on_commit_callbacks(execute=True):
        signup = _browser_track(publishable_key, {"event": "signup", "email": "Buyer@Example.org"}, client=browser)
    assert signup.status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        purchase = alice_api.post(
            TRACK, {"event": "purchase", "email": "buyer@example.org", "amount": "30.00", "external_id": "order-1"}, format="json"
        )
    assert purchase.status_code == 202

    conversion = Conversion.objects.get(pk=purchase.json()["id"])
    clicks = list(Click.objects.order_by("occurred_at", "id"))
    assert conversion.visitor_id == "" and conversion.click_id == ""
    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert conversion.confidence == 88
    assert conversion.evidence["method"] == "linked_identity"
    assert conversion.evidence["clicks"] == [click.public_id for click in clicks]
    assert conversion.identity == Conversion.objects.get(pk=signup.json()["id"]).identity
    assert _credits(conversion, "linear") == {
        links[0].id: (Decimal("0.5"), Decimal("15.00")),
        links[1].id: (Decimal("0.5"), Decimal("15.00")),
    }


def test_bot_clicks_in_a_journey_are_never_credited(alice, links, convert):
    now = _now()
    visitor = new_visitor_id()
    human = _click(links[0], at=now - timedelta(hours=5), visitor_id=visitor)
    head = _click(links[1], at=now - timedelta(hours=4), visitor_id=visitor, method="head")
    crawler = _click(links[2], at=now - timedelta(hours=3), visitor_id=visitor, ua=GOOGLEBOT)
    preview = _click(links[2], at=now - timedelta(hours=2), visitor_id=visitor, ua=PREVIEW)
    assert [head.is_bot, crawler.is_bot, preview.is_bot] == [True, True, True]

    conversion = convert(alice, visitor_id=visitor, amount=Decimal("20.00"), occurred_at=now)

    assert conversion.evidence["clicks"] == [human.public_id]
    assert not Credit.objects.filter(conversion=conversion).exclude(link=links[0]).exists()
    for model in MODELS:
        assert _credits(conversion, model) == {links[0].id: (Decimal("1"), Decimal("20.00"))}


def test_a_conversion_naming_a_bot_click_only_is_not_credited(alice, links, convert):
    now = _now()
    preview = _click(links[0], at=now - timedelta(hours=1), visitor_id=new_visitor_id(), ua=PREVIEW)

    conversion = convert(alice, click_id=preview.public_id, occurred_at=now)

    assert conversion.status == Conversion.Status.UNATTRIBUTED
    assert not conversion.credits.exists()


def test_a_conversion_without_a_journey_is_unattributed(alice, links, convert):
    _click(links[0], at=_now() - timedelta(hours=1), visitor_id=new_visitor_id())

    conversion = convert(alice, email="stranger@example.org", amount=Decimal("15.00"))

    assert conversion.status == Conversion.Status.UNATTRIBUTED
    assert conversion.confidence is None
    assert not conversion.credits.exists()
    assert conversion.attributed_at is not None


def test_an_unknown_click_id_is_not_evidence(alice, links, convert):
    conversion = convert(alice, click_id="c_doesnotexist1")

    assert conversion.status == Conversion.Status.UNATTRIBUTED and conversion.confidence is None


def test_another_creators_clicks_are_never_credited(alice, bob, links, convert):
    now = _now()
    click = _click(links[0], at=now - timedelta(hours=1), visitor_id=new_visitor_id())

    conversion = convert(bob, click_id=click.public_id, visitor_id=click.visitor_id, occurred_at=now)

    assert conversion.status == Conversion.Status.UNATTRIBUTED
    assert not conversion.credits.exists()


# --- the window -------------------------------------------------------------------------------


def test_clicks_older_than_the_window_are_left_out(alice, links, convert):
    now = _now()
    visitor = new_visitor_id()
    _click(links[0], at=now - timedelta(days=40), visitor_id=visitor)
    recent = _click(links[1], at=now - timedelta(days=10), visitor_id=visitor)

    conversion = convert(alice, visitor_id=visitor, amount=Decimal("9.00"), occurred_at=now)

    assert attribution_settings_for(alice.id).window_days == 30
    assert conversion.evidence["clicks"] == [recent.public_id]
    assert _credits(conversion, "linear") == {links[1].id: (Decimal("1"), Decimal("9.00"))}


def test_the_window_includes_its_first_moment_and_nothing_before(alice, links, convert):
    now = _now()
    visitor = new_visitor_id()
    _click(links[0], at=now - timedelta(days=30, seconds=1), visitor_id=visitor)
    edge = _click(links[1], at=now - timedelta(days=30), visitor_id=visitor)

    conversion = convert(alice, visitor_id=visitor, occurred_at=now)

    assert conversion.evidence["clicks"] == [edge.public_id]


def test_clicks_after_the_conversion_are_not_part_of_its_journey(alice, links, convert):
    now = _now()
    visitor = new_visitor_id()
    before = _click(links[0], at=now - timedelta(days=2), visitor_id=visitor)
    _click(links[1], at=now - timedelta(hours=1), visitor_id=visitor)

    conversion = convert(alice, visitor_id=visitor, occurred_at=now - timedelta(days=1))

    assert conversion.evidence["clicks"] == [before.public_id]
    assert set(_credits(conversion)) == {links[0].id}


def test_changing_the_window_changes_the_answer_after_a_recompute(alice, links, convert, django_capture_on_commit_callbacks):
    now = _now()
    visitor = new_visitor_id()
    old = _click(links[0], at=now - timedelta(days=40), visitor_id=visitor)
    recent = _click(links[1], at=now - timedelta(days=10), visitor_id=visitor)
    conversion = convert(alice, visitor_id=visitor, amount=Decimal("9.00"), occurred_at=now)
    assert set(_credits(conversion)) == {links[1].id}

    prefs = attribution_settings_for(alice.id)
    prefs.window_days = 45
    prefs.save()
    with django_capture_on_commit_callbacks(execute=True):
        recompute = recompute_start(creator=alice)

    conversion.refresh_from_db()
    recompute.refresh_from_db()
    assert recompute.finished_at is not None and recompute.progress == 100
    assert conversion.evidence["clicks"] == [old.public_id, recent.public_id]
    assert _credits(conversion, "linear") == {
        links[0].id: (Decimal("0.5"), Decimal("4.50")),
        links[1].id: (Decimal("0.5"), Decimal("4.50")),
    }

    prefs.window_days = 5
    prefs.save()
    with django_capture_on_commit_callbacks(execute=True):
        recompute_start(creator=alice)

    conversion.refresh_from_db()
    assert conversion.status == Conversion.Status.UNATTRIBUTED
    assert conversion.confidence is None
    assert not conversion.credits.exists()


def test_time_decay_uses_the_creators_half_life(alice, links, convert, django_capture_on_commit_callbacks):
    now = _now()
    visitor = new_visitor_id()
    for link, age in zip(links, (14, 7, 0), strict=True):
        _click(link, at=now - timedelta(days=age), visitor_id=visitor)
    conversion = convert(alice, visitor_id=visitor, amount=Decimal("70.00"), occurred_at=now)

    assert _credits(conversion, "time_decay") == {
        links[0].id: (Decimal("0.142857"), Decimal("10.00")),
        links[1].id: (Decimal("0.285714"), Decimal("20.00")),
        links[2].id: (Decimal("0.571429"), Decimal("40.00")),
    }

    prefs = attribution_settings_for(alice.id)
    prefs.half_life_days = Decimal("3.5")
    prefs.save()
    with django_capture_on_commit_callbacks(execute=True):
        recompute_start(creator=alice)

    assert _credits(conversion, "time_decay") == {
        links[0].id: (Decimal("0.047619"), Decimal("3.33")),
        links[1].id: (Decimal("0.190476"), Decimal("13.33")),
        links[2].id: (Decimal("0.761905"), Decimal("53.34")),
    }


def test_a_tiny_half_life_with_old_clicks_still_attributes(alice, links, convert):
    prefs = attribution_settings_for(alice.id)
    prefs.window_days, prefs.half_life_days = 90, Decimal("0.01")
    prefs.save()
    now = _now()
    visitor = new_visitor_id()
    _click(links[0], at=now - timedelta(days=60), visitor_id=visitor)
    _click(links[1], at=now - timedelta(days=59), visitor_id=visitor)

    conversion = convert(alice, visitor_id=visitor, amount=Decimal("12.00"), occurred_at=now)

    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert _credits(conversion, "time_decay") == {links[1].id: (Decimal("1"), Decimal("12.00"))}


# --- identities: late evidence ----------------------------------------------------------------


@pytest.fixture
def merged_journey(alice, links, convert):
    """A person who clicked on two devices, converted on each, then bought with the email of the first.

    Phone (cookie B) clicks the bio link and leaves a lead (an identity of its own); laptop (cookie A)
    clicks the video link and signs up with email X; then the phone buys with email X.
    """
    now = _now()
    cookie_a, cookie_b, email = new_visitor_id(), new_visitor_id(), "sam@example.org"
    phone_click = _click(links[1], at=now - timedelta(days=3), visitor_id=cookie_b)
    laptop_click = _click(links[0], at=now - timedelta(days=2), visitor_id=cookie_a, ua=LAPTOP)
    signup = convert(alice, event="signup", visitor_id=cookie_a, email=email, occurred_at=now - timedelta(days=1))
    lead = convert(alice, event="lead", visitor_id=cookie_b, occurred_at=now - timedelta(days=2, hours=12))
    before = {
        "signup_identity": signup.identity_id,
        "lead_identity": lead.identity_id,
        "signup_clicks": signup.evidence["clicks"],
        "lead_clicks": lead.evidence["clicks"],
    }
    purchase = convert(alice, visitor_id=cookie_b, email=email, amount=Decimal("100.00"), occurred_at=now)
    for conversion in (signup, lead):
        conversion.refresh_from_db()
    return {
        "cookie_a": cookie_a, "cookie_b": cookie_b, "email": email, "phone_click": phone_click,
        "laptop_click": laptop_click, "signup": signup, "lead": lead, "purchase": purchase, "before": before,
    }


def test_a_conversion_tying_two_identities_merges_them_and_records_the_evidence(merged_journey):
    j = merged_journey
    survivor, merged = j["before"]["signup_identity"], j["before"]["lead_identity"]
    assert survivor != merged

    merge = IdentityMerge.objects.get()
    assert (merge.survivor_id, merge.merged_id) == (survivor, merged)
    assert (merge.evidence_kind, merge.evidence_value) in {("visitor", j["cookie_b"]), ("email", j["email"])}
    assert merge.reverted_at is None
    assert Identity.objects.get(pk=merged).merged_into_id == survivor
    assert {j["signup"].identity_id, j["lead"].identity_id, j["purchase"].identity_id} == {survivor}
    identifiers = set(Identifier.objects.filter(identity_id=survivor).exclude(kind="fingerprint").values_list("kind", "value"))
    assert identifiers == {("visitor", j["cookie_a"]), ("visitor", j["cookie_b"]), ("email", j["email"])}


def test_a_merge_reattributes_earlier_conversions_with_the_clicks_it_brought(merged_journey, links):
    j = merged_journey
    assert j["before"]["signup_clicks"] == [j["laptop_click"].public_id]
    assert j["before"]["lead_clicks"] == [j["phone_click"].public_id]

    both = [j["phone_click"].public_id, j["laptop_click"].public_id]
    assert j["signup"].evidence["clicks"] == both
    assert j["signup"].confidence == 93
    assert set(_credits(j["signup"])) == {links[0].id, links[1].id}
    assert j["purchase"].evidence["clicks"] == both
    assert _credits(j["purchase"], "first_touch") == {links[1].id: (Decimal("1"), Decimal("100.00"))}
    assert _credits(j["purchase"], "last_touch") == {links[0].id: (Decimal("1"), Decimal("100.00"))}
    # The lead came before the laptop click: its journey is still the phone's click alone.
    assert j["lead"].evidence["clicks"] == [j["phone_click"].public_id]


def test_an_identifier_linked_later_extends_earlier_conversions_of_the_identity(alice, links, convert):
    # Late evidence without a merge: the phone's cookie had no identity of its own before the
    # purchase tied it to the signup's email, yet its clicks came before the signup too.
    now = _now()
    cookie_a, cookie_b, email = new_visitor_id(), new_visitor_id(), "kim@example.org"
    phone_click = _click(links[1], at=now - timedelta(days=3), visitor_id=cookie_b)
    laptop_click = _click(links[0], at=now - timedelta(days=2), visitor_id=cookie_a, ua=LAPTOP)
    signup = convert(alice, event="signup", visitor_id=cookie_a, email=email, occurred_at=now - timedelta(days=1))
    assert signup.evidence["clicks"] == [laptop_click.public_id]

    convert(alice, visitor_id=cookie_b, email=email, amount=Decimal("10.00"), occurred_at=now)

    signup.refresh_from_db()
    assert signup.evidence["clicks"] == [phone_click.public_id, laptop_click.public_id]
    assert set(_credits(signup)) == {links[0].id, links[1].id}


def test_reverting_a_merge_puts_the_identifiers_and_conversions_back(merged_journey):
    j = merged_journey
    survivor, merged = j["before"]["signup_identity"], j["before"]["lead_identity"]
    merge = IdentityMerge.objects.get()

    to_recompute = identity_merge_revert(merge=merge)

    merge.refresh_from_db()
    assert merge.reverted_at is not None
    assert Identity.objects.get(pk=merged).merged_into_id is None
    assert Identifier.objects.get(kind="visitor", value=j["cookie_b"]).identity_id == merged
    assert Identifier.objects.get(kind="visitor", value=j["cookie_a"]).identity_id == survivor
    assert Identifier.objects.get(kind="email", value=j["email"]).identity_id == survivor
    assert Conversion.objects.get(pk=j["lead"].pk).identity_id == merged
    assert Conversion.objects.get(pk=j["signup"].pk).identity_id == survivor
    assert set(to_recompute) >= {j["signup"].pk, j["lead"].pk}
    assert identity_merge_revert(merge=merge) == []

    signup = conversion_attribute(conversion_id=j["signup"].pk)
    assert signup.evidence["clicks"] == [j["laptop_click"].public_id]


def test_a_reverted_merge_stays_reverted_when_its_conversions_are_recomputed(merged_journey, django_capture_on_commit_callbacks):
    j = merged_journey
    merged = j["before"]["lead_identity"]
    merge = IdentityMerge.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        for conversion_id in identity_merge_revert(merge=merge):
            conversion_attribute(conversion_id=conversion_id)

    # The operator said these are two people: recomputing must not tie them together again.
    assert Identity.objects.get(pk=merged).merged_into_id is None
    assert Identifier.objects.get(kind="visitor", value=j["cookie_b"]).identity_id == merged
    assert IdentityMerge.objects.filter(reverted_at__isnull=True).count() == 0


# --- probabilistic evidence -------------------------------------------------------------------


@pytest.mark.parametrize("lookalikes", ["identical", "one_exact_match"])
def test_a_never_clicker_on_a_crowded_carrier_network_is_not_confidently_attributed(
    alice, links, publishable_key, lookalikes, django_capture_on_commit_callbacks
):
    now = _now()
    languages = ["en-US,en;q=0.9", "es-US,es;q=0.9", "en-GB,en;q=0.8", "fr-FR,fr;q=0.9", "de-DE,de;q=0.9", "pt-BR,pt;q=0.9"]
    for i in range(30):
        language = ENGLISH if lookalikes == "identical" or i == 0 else languages[1 + i % 5]
        _click(
            links[i % 3], at=now - timedelta(minutes=10 + i * 20), visitor_id=new_visitor_id(),
            ip=f"{CARRIER}.{i + 1}", language=language,
        )

    with django_capture_on_commit_callbacks(execute=True):
        response = _browser_track(publishable_key, {"event": "purchase", "amount": "25.00"}, ip=f"{CARRIER}.200")
    assert response.status_code == 202

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert conversion.network == f"{CARRIER}.0/24" and conversion.fingerprint and conversion.visitor_id == ""
    # Thirty people look alike here: the answer must not be a confident one.
    assert conversion.status == Conversion.Status.UNATTRIBUTED
    assert conversion.confidence is None
    assert not conversion.credits.exists()
    assert conversion.identity is None


def test_a_lone_home_visitor_matching_exactly_is_attributed_probabilistically_and_never_merged(
    alice, links, publishable_key, convert, django_capture_on_commit_callbacks
):
    now = _now()
    clicker = new_visitor_id()
    first = _click(links[0], at=now - timedelta(hours=5), visitor_id=clicker)
    second = _click(links[1], at=now - timedelta(hours=3), visitor_id=clicker)
    # The clicker is known by their cookie only (an earlier anonymous signup).
    signup = convert(alice, event="signup", visitor_id=clicker, occurred_at=now - timedelta(hours=2))
    clicker_identity = signup.identity_id

    with django_capture_on_commit_callbacks(execute=True):
        response = _browser_track(publishable_key, {"event": "purchase", "amount": "40.00", "email": "someone@example.org"})
    assert response.status_code == 202

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert conversion.visitor_id == "" and conversion.click_id == ""
    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert 25 <= conversion.confidence <= 48
    assert conversion.evidence["same_address"] is True
    assert conversion.evidence["method"] == "fingerprint"
    assert conversion.evidence["clicks"] == [first.public_id, second.public_id]
    assert set(_credits(conversion)) == {links[0].id, links[1].id}
    # Probabilistic evidence never merges: the buyer keeps an identity of their own.
    assert conversion.identity_id is not None and conversion.identity_id != clicker_identity
    assert not IdentityMerge.objects.exists()
    assert Identity.objects.get(pk=clicker_identity).merged_into_id is None
    assert Identifier.objects.get(kind="visitor", value=clicker).identity_id == clicker_identity
    assert not Identifier.objects.filter(identity_id=conversion.identity_id, kind="visitor").exists()


def test_a_lookalike_whose_cookie_belongs_to_someone_with_another_email_is_not_credited(
    alice, links, publishable_key, convert, django_capture_on_commit_callbacks
):
    now = _now()
    clicker = new_visitor_id()
    _click(links[0], at=now - timedelta(hours=5), visitor_id=clicker)
    convert(alice, event="signup", visitor_id=clicker, email="clicker@example.org", occurred_at=now - timedelta(hours=2))

    with django_capture_on_commit_callbacks(execute=True):
        response = _browser_track(publishable_key, {"event": "purchase", "amount": "40.00", "email": "someone@example.org"})

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert conversion.status == Conversion.Status.UNATTRIBUTED
    assert conversion.evidence["rejected"] == "the matching visitor belongs to another known person"
    assert not conversion.credits.exists()


def test_a_second_known_person_on_a_fingerprint_withdraws_both_matches_on_it(
    alice, links, publishable_key, django_capture_on_commit_callbacks
):
    """Two housemates with the same phone at the same address: whoever clicked, the fingerprint
    cannot say which of them it was once both are known to buy from it."""
    now = _now()
    _click(links[0], at=now - timedelta(hours=5), visitor_id=new_visitor_id())
    with django_capture_on_commit_callbacks(execute=True):
        first = _browser_track(publishable_key, {"event": "purchase", "amount": "40.00", "email": "ann@example.org"})
    ann = Conversion.objects.get(pk=first.json()["id"])
    assert ann.status == Conversion.Status.ATTRIBUTED and 25 <= ann.confidence <= 48
    assert "fingerprint_people" not in ann.evidence

    with django_capture_on_commit_callbacks(execute=True):
        second = _browser_track(publishable_key, {"event": "purchase", "amount": "30.00", "email": "ben@example.org"})

    ben = Conversion.objects.get(pk=second.json()["id"])
    assert ben.status == Conversion.Status.UNATTRIBUTED
    assert ben.evidence["fingerprint_people"] == 1 and "below" in ben.evidence["rejected"]
    # Late evidence: Ann's earlier match was weighed before Ben was known, and is taken back.
    ann.refresh_from_db()
    assert ann.status == Conversion.Status.UNATTRIBUTED
    assert ann.evidence["fingerprint_people"] == 1
    assert not ann.credits.exists()
    assert sum(CreditLedger.objects.filter(model="linear").values_list("revenue", flat=True)) == 0


def test_the_same_person_buying_twice_from_a_fingerprint_is_not_their_own_lookalike(
    alice, links, publishable_key, django_capture_on_commit_callbacks
):
    now = _now()
    click = _click(links[0], at=now - timedelta(hours=5), visitor_id=new_visitor_id())
    answers = []
    for event in ("signup", "purchase"):
        with django_capture_on_commit_callbacks(execute=True):
            answers.append(_browser_track(publishable_key, {"event": event, "email": "ann@example.org"}).json()["id"])

    for conversion in Conversion.objects.filter(pk__in=answers):
        assert conversion.status == Conversion.Status.ATTRIBUTED
        assert conversion.evidence["clicks"] == [click.public_id]
        assert "fingerprint_people" not in conversion.evidence


def test_a_match_on_the_network_but_not_the_address_counts_for_less(alice, links, publishable_key, django_capture_on_commit_callbacks):
    now = _now()
    _click(links[0], at=now - timedelta(hours=5), visitor_id=new_visitor_id(), ip="81.2.69.77")

    with django_capture_on_commit_callbacks(execute=True):
        response = _browser_track(publishable_key, {"event": "purchase", "amount": "40.00"})

    conversion = Conversion.objects.get(pk=response.json()["id"])
    # Same phone, same language, same /24, another address: a family member as likely as the buyer.
    assert conversion.status == Conversion.Status.UNATTRIBUTED
    assert conversion.evidence["same_address"] is False and "below" in conversion.evidence["rejected"]


def test_a_lone_home_visitor_without_any_identifier_gets_no_identity(alice, links, publishable_key, django_capture_on_commit_callbacks):
    now = _now()
    _click(links[0], at=now - timedelta(hours=1), visitor_id=new_visitor_id())

    with django_capture_on_commit_callbacks(execute=True):
        response = _browser_track(publishable_key, {"event": "purchase"})

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert 25 <= conversion.confidence <= 80
    assert conversion.identity is None
    assert not Identity.objects.exists()


def test_a_browser_conversion_with_a_different_device_is_not_matched(alice, links, publishable_key, django_capture_on_commit_callbacks):
    now = _now()
    _click(links[0], at=now - timedelta(hours=1), visitor_id=new_visitor_id(), ua=LAPTOP)

    with django_capture_on_commit_callbacks(execute=True):
        response = _browser_track(publishable_key, {"event": "purchase"}, ua=PHONE)

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert conversion.status == Conversion.Status.UNATTRIBUTED


def test_the_visitor_cookie_beats_a_fingerprint(alice, links, publishable_key, django_capture_on_commit_callbacks):
    now = _now()
    visitor = new_visitor_id()
    mine = _click(links[0], at=now - timedelta(hours=2), visitor_id=visitor)
    _click(links[1], at=now - timedelta(hours=1), visitor_id=new_visitor_id())  # a lookalike on the same network

    browser = APIClient()
    browser.cookies["allumi_vid"] = visitor_cookie_value(visitor)
    with django_capture_on_commit_callbacks(execute=True):
        response = _browser_track(publishable_key, {"event": "purchase"}, client=browser)

    conversion = Conversion.objects.get(pk=response.json()["id"])
    assert conversion.evidence["clicks"] == [mine.public_id]
    assert conversion.evidence["method"] == "visitor_cookie"
    # The lookalike's later click from the same home may be this person after clearing cookies:
    # the cookie still decides the journey, with less confidence than 93.
    assert conversion.confidence == 65 and conversion.evidence["continued_elsewhere"] == "nearby"


# --- refunds ----------------------------------------------------------------------------------


@pytest.fixture
def three_link_purchase(alice, links, convert):
    now = _now()
    visitor = new_visitor_id()
    for link, age in zip(links, (14, 7, 0), strict=True):
        _click(link, at=now - timedelta(days=age), visitor_id=visitor)
    return convert(alice, visitor_id=visitor, amount=Decimal("49.99"), occurred_at=now)


def _assert_revenue_follows_weights(conversion, net: Decimal):
    for model in MODELS:
        credits = list(Credit.objects.filter(conversion=conversion, model=model))
        assert credits, model
        assert sum(credit.weight for credit in credits) == Decimal(1), model
        assert sum(credit.revenue for credit in credits) == net, model
        for credit in credits:
            assert abs(credit.revenue - net * credit.weight) < Decimal("0.01"), (model, credit.link_id)


def test_a_partial_refund_lowers_every_credit_in_proportion(three_link_purchase, links):
    _assert_revenue_follows_weights(three_link_purchase, Decimal("49.99"))

    conversion = conversion_refund(conversion=three_link_purchase, refunded_amount=Decimal("20.00"))

    assert conversion.refunded_amount == Decimal("20.00")
    _assert_revenue_follows_weights(conversion, Decimal("29.99"))
    assert _credits(conversion, "linear") == {
        links[0].id: (Decimal("0.333334"), Decimal("10.00")),
        links[1].id: (Decimal("0.333333"), Decimal("10.00")),
        links[2].id: (Decimal("0.333333"), Decimal("9.99")),
    }


def test_a_full_refund_leaves_every_credit_at_zero(three_link_purchase):
    conversion = conversion_refund(conversion=three_link_purchase, refunded_amount=Decimal("49.99"))

    assert Credit.objects.filter(conversion=conversion).count() > 0
    assert set(Credit.objects.filter(conversion=conversion).values_list("revenue", flat=True)) == {Decimal("0.00")}


def test_a_refund_is_kept_between_zero_and_the_amount(three_link_purchase):
    conversion = conversion_refund(conversion=three_link_purchase, refunded_amount=Decimal("80.00"))
    assert conversion.refunded_amount == Decimal("49.99")

    conversion = conversion_refund(conversion=conversion, refunded_amount=Decimal("-5.00"))
    assert conversion.refunded_amount == Decimal("0.00")
    _assert_revenue_follows_weights(conversion, Decimal("49.99"))


def test_reattributing_a_refunded_conversion_keeps_revenue_net(three_link_purchase):
    conversion_refund(conversion=three_link_purchase, refunded_amount=Decimal("20.00"))

    conversion = conversion_attribute(conversion_id=three_link_purchase.pk)

    _assert_revenue_follows_weights(conversion, Decimal("29.99"))


def test_a_refund_recorded_before_attribution_is_net_in_the_credits(alice, links):
    now = _now()
    visitor = new_visitor_id()
    _click(links[0], at=now - timedelta(days=1), visitor_id=visitor)
    _click(links[1], at=now - timedelta(hours=1), visitor_id=visitor)
    conversion, _ = conversion_record(
        creator=alice, event="purchase", source=Conversion.Source.TRACK, visitor_id=visitor, amount=Decimal("49.99"), occurred_at=now
    )
    conversion_refund(conversion=conversion, refunded_amount=Decimal("20.00"))

    conversion = conversion_attribute(conversion_id=conversion.pk)

    _assert_revenue_follows_weights(conversion, Decimal("29.99"))
