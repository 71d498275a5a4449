"""Allumi's own plans: `POST /webhooks/whop` (verified with settings.WHOP_WEBHOOK_SECRET) moves a
creator between plans; the settings page warns past the plan's monthly clicks, and nothing stops."""

from types import SimpleNamespace

import pytest

from attribution.models import Click, Conversion
from billing.models import Plan, Subscription, WhopEvent
from tests.billing.whop import BROWSER, PLATFORM_SECRET, assert_error, encode, payment, sample, signed_headers

PLATFORM = "/webhooks/whop"
PAGE = "/settings/billing/whop/"
PRO_PLAN_ID = "plan_AllumiPro1"
BUSINESS_PLAN_ID = "plan_AllumiBiz1"


@pytest.fixture
def plans(db):
    """The plans as the data migration makes them (a transactional test elsewhere may have flushed them)."""
    free, _ = Plan.objects.update_or_create(name="Free", defaults={"is_default": True, "monthly_click_limit": 1000, "whop_plan_id": ""})
    pro, _ = Plan.objects.update_or_create(
        name="Pro", defaults={"is_default": False, "monthly_click_limit": 10000, "whop_plan_id": f"{PRO_PLAN_ID}, plan_AllumiProYearly"}
    )
    business, _ = Plan.objects.update_or_create(
        name="Business", defaults={"is_default": False, "monthly_click_limit": 50000, "whop_plan_id": BUSINESS_PLAN_ID}
    )
    return SimpleNamespace(free=free, pro=pro, business=business)


@pytest.fixture
def platform(settings):
    settings.WHOP_WEBHOOK_SECRET = PLATFORM_SECRET


@pytest.fixture
def deliver_platform(post_webhook):
    def _deliver(payload, *, secret: str = PLATFORM_SECRET, **kwargs):
        body = encode(payload)
        return post_webhook(PLATFORM, body, signed_headers(secret, body, **kwargs))

    return _deliver


def _membership(name: str, *, email: str = "Alice@Example.com", plan_id: str = PRO_PLAN_ID, membership_id: str = "") -> dict:
    payload = sample(name)
    if membership_id:
        payload["data"]["id"] = membership_id
    payload["data"]["user"] = {"id": "user_AlicE01", "email": email, "name": "Alice", "username": "alice"}
    payload["data"]["plan"] = {"id": plan_id}
    return payload


# --- the endpoint -----------------------------------------------------------------------------


def test_the_platform_endpoint_is_404_without_a_secret(deliver_platform, settings, alice, plans):
    settings.WHOP_WEBHOOK_SECRET = ""

    response = deliver_platform(_membership("membership.activated"), secret="")

    assert_error(response, 404, "unknown_endpoint")
    assert not WhopEvent.objects.exists() and not Subscription.objects.exists()


def test_the_platform_endpoint_refuses_another_secret(deliver_platform, platform, alice, plans):
    response = deliver_platform(_membership("membership.activated"), secret="ws_a_creators_secret")

    assert_error(response, 401, "invalid_signature")
    assert not WhopEvent.objects.exists() and not Subscription.objects.exists()


def test_a_creators_secret_does_not_open_the_platform_endpoint(deliver_platform, platform, connection, plans):
    response = deliver_platform(_membership("membership.activated"), secret=connection.signing_secret)

    assert response.status_code == 401


# --- moving between plans ---------------------------------------------------------------------


def test_an_activated_membership_puts_the_creator_on_its_plan(deliver_platform, platform, alice, plans):
    response = deliver_platform(_membership("membership.activated"))

    assert response.status_code == 200
    subscription = Subscription.objects.get(creator=alice)
    assert subscription.plan == plans.pro
    assert subscription.active
    assert subscription.membership_id == "mem_8Jd2Rf6Ua"
    event = WhopEvent.objects.get()
    assert (event.endpoint, event.connection, event.status) == (WhopEvent.PLATFORM, None, WhopEvent.Status.PROCESSED)


def test_any_of_a_plans_whop_plan_ids_grants_it(deliver_platform, platform, alice, plans):
    deliver_platform(_membership("membership.activated", plan_id="plan_AllumiProYearly"))

    assert Subscription.objects.get(creator=alice).plan == plans.pro


def test_a_deactivated_membership_puts_the_creator_back_on_the_default_plan(deliver_platform, platform, alice, plans):
    deliver_platform(_membership("membership.activated"))

    deliver_platform(_membership("membership.deactivated"))

    subscription = Subscription.objects.get(creator=alice)
    assert subscription.plan == plans.free
    assert not subscription.active



def test_the_end_of_a_replaced_membership_does_not_undo_the_new_plan(deliver_platform, platform, alice, plans):
    """An upgrade on Whop is a new membership; the old one's deactivation follows (in any order)."""
    deliver_platform(_membership("membership.activated", membership_id="mem_pro_monthly"))
    deliver_platform(_membership("membership.activated", plan_id=BUSINESS_PLAN_ID, membership_id="mem_business"))

    deliver_platform(_membership("membership.deactivated", membership_id="mem_pro_monthly"))

    subscription = Subscription.objects.get(creator=alice)
    assert subscription.plan == plans.business
    assert subscription.active and subscription.membership_id == "mem_business"

@pytest.mark.parametrize(("on", "off"), [("membership.went_valid", "membership.went_invalid")])
def test_the_went_valid_and_went_invalid_names_work_too(deliver_platform, platform, alice, plans, on, off):
    activated = _membership("membership.activated")
    activated["type"] = on
    deliver_platform(activated)
    assert Subscription.objects.get(creator=alice).plan == plans.pro

    deactivated = _membership("membership.deactivated")
    deactivated["type"] = off
    deliver_platform(deactivated)
    assert Subscription.objects.get(creator=alice).plan == plans.free


def test_an_unknown_whop_plan_gives_the_default_plan(deliver_platform, platform, alice, plans):
    deliver_platform(_membership("membership.activated", plan_id="plan_SomebodyElses"))

    assert Subscription.objects.get(creator=alice).plan == plans.free


def test_a_membership_for_an_email_without_an_account_changes_nothing(deliver_platform, platform, alice, plans):
    response = deliver_platform(_membership("membership.activated", email="stranger@example.org"))

    assert response.status_code == 200
    assert not Subscription.objects.exists()
    assert WhopEvent.objects.get().status == WhopEvent.Status.PROCESSED


def test_the_membership_moves_only_the_creator_it_names(deliver_platform, platform, alice, bob, plans):
    deliver_platform(_membership("membership.activated", email="bob@example.com"))

    assert Subscription.objects.get().creator == bob
    assert not Subscription.objects.filter(creator=alice).exists()


def test_a_payment_to_the_platform_endpoint_is_kept_but_is_nobodys_conversion(deliver_platform, platform, alice, plans):
    response = deliver_platform(payment())

    assert response.status_code == 200
    assert WhopEvent.objects.get().status == WhopEvent.Status.IGNORED
    assert not Conversion.objects.exists()


def test_a_platform_delivery_twice_is_one_event(deliver_platform, platform, alice, plans):
    deliver_platform(_membership("membership.activated"), webhook_id="msg_platform_twice_001")
    deliver_platform(_membership("membership.activated"), webhook_id="msg_platform_twice_001")

    assert WhopEvent.objects.count() == 1
    assert Subscription.objects.count() == 1


# --- the monthly click limit ------------------------------------------------------------------


def _clicks(follow, link, count: int) -> None:
    for _ in range(count):
        follow(link)


def test_the_page_asks_for_an_upgrade_past_the_plans_monthly_clicks(alice_client, alice, connection, link, follow, plans):
    Plan.objects.filter(pk=plans.free.pk).update(monthly_click_limit=2)

    _clicks(follow, link, 3)
    page = alice_client.get(PAGE).content.decode()

    assert Click.objects.filter(creator=alice).count() == 3
    assert 'role="alert"' in page
    assert "You have used 3 of the 2 clicks your Free plan includes this month" in page
    assert "upgrade" in page


def test_redirects_and_clicks_go_on_past_the_limit(client, alice, link, follow, plans):
    Plan.objects.filter(pk=plans.free.pk).update(monthly_click_limit=2)
    _clicks(follow, link, 3)

    response = client.get(f"/l/{link.short_id}", HTTP_USER_AGENT=BROWSER)

    assert response.status_code == 302
    assert response["Location"].startswith("https://shop.example/growth-lab?")
    follow(link)
    assert Click.objects.filter(creator=alice, link=link).count() == 5


def test_no_upgrade_notice_within_the_limit(alice_client, connection, link, follow, plans):
    Plan.objects.filter(pk=plans.free.pk).update(monthly_click_limit=2)

    _clicks(follow, link, 2)
    page = alice_client.get(PAGE).content.decode()

    assert 'role="alert"' not in page
    assert "2 of 2 clicks used this month" in page


def test_upgrading_lifts_the_notice(alice_client, connection, link, follow, plans, deliver_platform, platform):
    Plan.objects.filter(pk=plans.free.pk).update(monthly_click_limit=2)
    _clicks(follow, link, 3)

    deliver_platform(_membership("membership.activated"))
    page = alice_client.get(PAGE).content.decode()

    assert 'role="alert"' not in page
    assert "<strong>Pro</strong>: 3 of 10000 clicks used this month" in page


def test_a_cancelled_upgrade_brings_the_notice_back(alice_client, connection, link, follow, plans, deliver_platform, platform):
    Plan.objects.filter(pk=plans.free.pk).update(monthly_click_limit=2)
    _clicks(follow, link, 3)
    deliver_platform(_membership("membership.activated"))

    deliver_platform(_membership("membership.deactivated"))
    page = alice_client.get(PAGE).content.decode()

    assert "You have used 3 of the 2 clicks your Free plan includes this month" in page
