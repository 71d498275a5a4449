"""POST /api/demo/capture: the marketing site's demo requests, validated, rate limited, spam-resistant,
merged per email and day, emailed to the team; CORS for the marketing origins only."""

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from allumi.accounts.models import DemoRequest, EmailLog
from allumi.accounts.services import demo_request_capture

CAPTURE = "/api/demo/capture"
TRACK = "/api/v1/conversions/track"
MARKETING = "https://allumi.example"
ELSEWHERE = "https://evil.example"
MAYA = {
    "name": "Maya Ortiz",
    "email": "Maya@Example.org",
    "company": "Maya Media",
    "community_size": "12k",
    "message": "We run a trading community on Whop and want to know which videos sell.",
}


@pytest.fixture(autouse=True)
def _marketing(settings):
    settings.CORS_ALLOWED_ORIGINS = [MARKETING, "https://www.allumi.example"]
    settings.DEMO_REQUEST_RECIPIENTS = ["sales@allumi.example", "founders@allumi.example"]


@pytest.fixture
def post(db, django_capture_on_commit_callbacks):
    """A browser on the marketing site: no session, CSRF checks on, work queued on commit run."""
    browser = Client(enforce_csrf_checks=True)

    def _post(data, *, ip="81.2.69.1", origin=MARKETING, as_json=True):
        extra = {"REMOTE_ADDR": ip, "HTTP_ORIGIN": origin}
        with django_capture_on_commit_callbacks(execute=True):
            if as_json:
                return browser.post(CAPTURE, data, content_type="application/json", **extra)
            return browser.post(CAPTURE, data, **extra)

    return _post


def _assert_error(response, status, code="invalid_request"):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and "request_id" in error
    return error


# --- storing and telling the team ---------------------------------------------------------------


def test_a_request_is_stored_and_emailed_to_the_team(post):
    response = post(MAYA)

    assert response.status_code == 202
    assert response.json() == {"status": "received"}
    demo = DemoRequest.objects.get()
    assert (demo.name, demo.email, demo.company, demo.community_size, demo.message) == (
        "Maya Ortiz", "maya@example.org", "Maya Media", "12k", MAYA["message"]
    )
    assert (demo.submissions, demo.ip) == (1, "81.2.69.1")
    assert sorted(message.to[0] for message in mail.outbox) == ["founders@allumi.example", "sales@allumi.example"]
    message = mail.outbox[0]
    assert message.subject == "Demo request: Maya Ortiz (Maya Media)"
    assert message.reply_to == ["maya@example.org"]
    assert "Community size: 12k" in message.body and MAYA["message"] in message.body
    assert f"/admin/accounts/demorequest/{demo.pk}/change/" in message.body
    [(html, _)] = message.alternatives
    assert "Maya Media" in html and "mailto:maya@example.org" in html
    assert set(EmailLog.objects.values_list("kind", "status")) == {(EmailLog.Kind.DEMO_REQUEST, EmailLog.Status.SENT)}


def test_a_form_post_is_accepted_too(post):
    response = post({"name": "Lee", "email": "lee@example.org"}, as_json=False)  # multipart, as FormData

    assert response.status_code == 202
    demo = DemoRequest.objects.get()
    assert (demo.name, demo.email, demo.company, demo.message) == ("Lee", "lee@example.org", "", "")


def test_an_urlencoded_form_post_is_accepted(db):
    response = Client().post(
        CAPTURE, "name=Lee+Park&email=lee%40example.org&community_size=500", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 202
    assert DemoRequest.objects.values_list("name", "community_size").get() == ("Lee Park", "500")


def test_without_team_recipients_it_is_stored_and_nobody_is_emailed(post, settings):
    settings.DEMO_REQUEST_RECIPIENTS = []

    assert post(MAYA).status_code == 202

    assert DemoRequest.objects.count() == 1
    assert mail.outbox == [] and not EmailLog.objects.exists()


def test_the_same_email_within_a_day_updates_the_request(post):
    post(MAYA)
    mail.outbox.clear()

    response = post({**MAYA, "email": "maya@EXAMPLE.org", "message": "Also: we have 3 Whop stores.", "company": ""}, ip="81.2.69.2")

    assert response.status_code == 202
    demo = DemoRequest.objects.get()
    assert demo.submissions == 2
    assert demo.message == "Also: we have 3 Whop stores."
    assert demo.company == "Maya Media"  # an empty field does not wipe what was said before
    assert demo.ip == "81.2.69.2"
    assert mail.outbox == []  # the team heard about Maya already


def test_the_same_email_a_day_later_is_a_new_request(post):
    post(MAYA)
    DemoRequest.objects.update(
        last_submitted_at=timezone.now() - timedelta(hours=25), received_on=timezone.now().date() - timedelta(days=1)
    )
    mail.outbox.clear()

    assert post(MAYA).status_code == 202

    assert DemoRequest.objects.count() == 2
    assert len(mail.outbox) == 2


def test_the_request_is_visible_in_django_admin(post, admin_client):
    post(MAYA)
    demo = DemoRequest.objects.get()

    listing = admin_client.get("/admin/accounts/demorequest/")
    detail = admin_client.get(f"/admin/accounts/demorequest/{demo.pk}/change/")

    assert listing.status_code == 200 and "maya@example.org" in listing.content.decode()
    assert detail.status_code == 200 and "Maya Media" in detail.content.decode()


# --- spam and validation ------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [True, False])
def test_a_filled_honeypot_gets_the_same_answer_and_nothing_is_stored(post, as_json):
    response = post({**MAYA, "website": "http://cheap-pills.example"}, as_json=as_json)

    assert response.status_code == 202
    assert response.json() == {"status": "received"}
    assert not DemoRequest.objects.exists()
    assert mail.outbox == [] and not EmailLog.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"name": "x" * 121}, "name"),
        ({"company": "x" * 121}, "company"),
        ({"community_size": "x" * 41}, "community_size"),
        ({"message": "x" * 5001}, "message"),
    ],
)
def test_invalid_fields_are_a_400_naming_the_field(post, change, field):
    data = {key: value for key, value in {**MAYA, **change}.items() if value is not None}

    error = _assert_error(post(data), 400)

    assert field in error["fields"]
    assert not DemoRequest.objects.exists() and mail.outbox == []


def test_a_body_that_is_not_an_object_is_a_400(post):
    _assert_error(post([MAYA]), 400)
    _assert_error(Client().post(CAPTURE, "{not json", content_type="application/json"), 400, "malformed_request")


def test_an_unsupported_body_type_is_a_415(db):
    _assert_error(Client().post(CAPTURE, "name=Maya", content_type="text/plain"), 415, "unsupported_media_type")


def test_only_post_is_allowed(db):
    _assert_error(Client().get(CAPTURE), 405, "method_not_allowed")


def test_five_requests_a_minute_per_address_then_429_with_retry_after(post, settings):
    settings.RATELIMITS = {**settings.RATELIMITS, "demo_capture": "5/m"}

    answers = [post({**MAYA, "email": f"fan{n}@example.org"}).status_code for n in range(5)]
    refused = post({**MAYA, "email": "fan6@example.org"})

    assert answers == [202] * 5
    _assert_error(refused, 429, "rate_limited")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused["Access-Control-Allow-Origin"] == MARKETING  # so the site can read the answer
    assert DemoRequest.objects.count() == 5
    assert post({**MAYA, "email": "other@example.org"}, ip="81.2.69.99").status_code == 202


def test_honeypot_hits_count_against_the_limit(post, settings):
    settings.RATELIMITS = {**settings.RATELIMITS, "demo_capture": "2/m"}

    assert [post({**MAYA, "website": "spam"}).status_code for _ in range(3)] == [202, 202, 429]


# --- CORS ---------------------------------------------------------------------------------------


def _preflight(path, origin):
    return Client().options(
        path, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST", HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type"
    )


@pytest.mark.parametrize("origin", [MARKETING, "https://www.allumi.example"])
def test_the_marketing_site_may_call_it_from_a_browser(post, origin):
    preflight = _preflight(CAPTURE, origin)
    response = post(MAYA, origin=origin)

    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == origin
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert "content-type" in preflight["Access-Control-Allow-Headers"]
    assert response.status_code == 202 and response["Access-Control-Allow-Origin"] == origin


@pytest.mark.parametrize("origin", [ELSEWHERE, "http://allumi.example", "https://allumi.example.evil.example", "null"])
def test_other_origins_get_no_cors_headers(post, origin):
    preflight = _preflight(CAPTURE, origin)
    response = post(MAYA, origin=origin)

    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Origin" not in response


def test_the_track_endpoint_still_answers_every_origin(db):
    preflight = _preflight(TRACK, ELSEWHERE)

    assert preflight["Access-Control-Allow-Origin"] == ELSEWHERE
    assert preflight["Access-Control-Allow-Credentials"] == "true"


def test_other_endpoints_still_answer_no_origin_not_even_the_marketing_site(alice_client):
    for path in ("/api/v1/links", "/accounts/profile/", "/api/schema/"):
        assert "Access-Control-Allow-Origin" not in _preflight(path, MARKETING), path
        assert "Access-Control-Allow-Origin" not in alice_client.get(path, HTTP_ORIGIN=MARKETING), path


def _origins_in_a_fresh_process(value):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["MARKETING_ORIGIN"] = value
    return subprocess.run(
        [sys.executable, "-c", "import allumi.settings as s; print(s.CORS_ALLOWED_ORIGINS)"],
        cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )


def test_marketing_origins_come_from_the_environment():
    result = _origins_in_a_fresh_process("https://allumi.example/, https://www.allumi.example")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['https://allumi.example', 'https://www.allumi.example']"


@pytest.mark.parametrize("value", ["allumi.example", "https://allumi.example/pricing", "*"])
def test_a_marketing_origin_that_is_not_an_origin_stops_the_start(value):
    result = _origins_in_a_fresh_process(value)

    assert result.returncode != 0
    assert "MARKETING_ORIGIN" in result.stderr


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_from_one_email_make_one_row():
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    errors = []

    def _worker(n):
        try:
            barrier.wait(timeout=10)
            demo_request_capture(name="Maya", email="maya@example.org", message=f"try {n}")
        except Exception as error:  # reported below, with the thread's own failure
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=_worker, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    demo = DemoRequest.objects.get()
    assert demo.submissions == threads_count
    assert len(mail.outbox) == 2  # the first request, to each of the two team addresses
