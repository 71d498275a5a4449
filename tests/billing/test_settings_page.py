"""The creator's Whop settings page `/settings/billing/whop/` and its reprocess POST."""

import re
from html import unescape

from billing.models import WhopConnection, WhopEvent
from tests.billing.whop import PAYMENT_ID, SECRET, payment, sample_bytes, signed_headers

PAGE = "/settings/billing/whop/"
NEW_SECRET = "ws_pasted_from_whop_dashboard_Zx81"


def _reprocess_url(event) -> str:
    return f"/settings/billing/whop/events/{event.pk}/reprocess/"


def _text(response) -> str:
    return unescape(response.content.decode())


# --- access -----------------------------------------------------------------------------------


def test_it_requires_login(client, db):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not WhopConnection.objects.exists()


def test_saving_requires_login(client, connection):
    response = client.post(PAGE, {"signing_secret": NEW_SECRET})

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    connection.refresh_from_db()
    assert connection.signing_secret == SECRET


def test_reprocessing_requires_login(client, failing_payment):
    response = client.post(_reprocess_url(failing_payment))

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    failing_payment.refresh_from_db()
    assert failing_payment.status == WhopEvent.Status.FAILED


# --- the endpoint and its secret --------------------------------------------------------------


def test_it_shows_the_full_webhook_url(alice_client, connection, settings):
    settings.SITE_URL = "https://allumi.example"

    response = alice_client.get(PAGE)

    assert response.status_code == 200
    url = re.search(r'<code id="webhook-url">([^<]*)</code>', response.content.decode()).group(1)
    assert url == f"https://allumi.example/webhooks/whop/{connection.token}"


def test_it_never_shows_the_signing_secret_only_its_last_four_characters(alice_client, connection):
    page = _text(alice_client.get(PAGE))

    assert SECRET not in page
    assert SECRET[-8:] not in page and SECRET[:-4] not in page
    assert f"…{SECRET[-4:]}" in page


def test_a_first_visit_creates_a_connection_without_revealing_its_secret(bob_client, bob):
    page = _text(bob_client.get(PAGE))

    connection = WhopConnection.objects.get(creator=bob)
    assert connection.webhook_url in page
    assert connection.signing_secret not in page
    assert f"…{connection.signing_secret[-4:]}" in page


def test_saving_a_new_secret_changes_which_signature_verifies(alice_client, connection, post_webhook):
    body = sample_bytes("payment.succeeded")

    saved = alice_client.post(PAGE, {"signing_secret": NEW_SECRET, "api_key": "", "company_id": ""})
    old = post_webhook(connection.webhook_path, body, signed_headers(SECRET, body))
    new = post_webhook(connection.webhook_path, body, signed_headers(NEW_SECRET, body))

    assert saved.status_code == 302 and saved["Location"] == PAGE
    assert old.status_code == 401
    assert new.status_code == 200
    page = _text(alice_client.get(PAGE))
    assert NEW_SECRET not in page and "…Zx81" in page
    assert WhopEvent.objects.count() == 1


def test_an_empty_secret_keeps_the_current_one(alice_client, connection, deliver):
    alice_client.post(PAGE, {"signing_secret": "", "api_key": "", "company_id": ""})

    assert deliver(sample_bytes("payment.succeeded")).status_code == 200
    connection.refresh_from_db()
    assert connection.signing_secret == SECRET


def test_an_api_key_is_kept_but_never_shown(alice_client, connection):
    alice_client.post(PAGE, {"signing_secret": "", "api_key": "apik_alice_reads_payments_7Hq2", "company_id": "biz_7hGf2LkQ9sNe"})

    page = _text(alice_client.get(PAGE))
    connection.refresh_from_db()
    assert connection.api_key == "apik_alice_reads_payments_7Hq2" and connection.company_id == "biz_7hGf2LkQ9sNe"
    assert "apik_alice_reads_payments_7Hq2" not in page
    assert "An API key is set" in page
    assert 'value="biz_7hGf2LkQ9sNe"' in page


# --- recent deliveries ------------------------------------------------------------------------


def test_it_lists_recent_deliveries_with_their_status(alice_client, deliver):
    deliver(payment())
    failed = payment(status="open", substatus="failed", id="pay_declined_card")
    failed["type"] = "payment.failed"
    deliver(failed)
    dispute = payment()
    dispute.update(type="dispute.created", data={"id": "dspt_4Mn8Qa2", "status": "needs_response", "payment": {"id": PAYMENT_ID}})
    deliver(dispute)
    unknown = payment(id="pay_other")
    unknown["type"] = "app.installed"
    deliver(unknown)

    page = _text(alice_client.get(PAGE))

    for event_type, object_id in [
        ("payment.succeeded", PAYMENT_ID),
        ("payment.failed", "pay_declined_card"),
        ("dispute.created", "dspt_4Mn8Qa2"),
        ("app.installed", "pay_other"),
    ]:
        assert re.search(rf"<td>{re.escape(event_type)}</td><td><code>{object_id}</code></td>\s*<td>(\w+)</td>", page), event_type
    rows = dict(re.findall(r"<td>([a-z_.]+)</td><td><code>[^<]*</code></td>\s*<td>([\w ]+)</td>", page))
    assert rows == {
        "payment.succeeded": "Processed",
        "payment.failed": "Processed",
        "dispute.created": "Processed",
        "app.installed": "Ignored",
    }
    assert "processed: 3" in page and "ignored: 1" in page


def test_a_failed_delivery_shows_its_attempts_error_and_a_reprocess_button(alice_client, failing_payment):
    page = _text(alice_client.get(PAGE))

    row = re.search(r"<tr>\s*<td[^>]*>[^<]*</td><td>payment\.succeeded</td>.*?</tr>", page, re.S).group(0)
    assert "<td>Failed</td>" in row
    assert f'<td class="num">{failing_payment.attempts}</td>' in row and failing_payment.attempts > 1
    assert "RuntimeError: boom" in row
    assert f'action="{_reprocess_url(failing_payment)}"' in row


def test_a_processed_delivery_has_no_reprocess_button(alice_client, deliver):
    deliver(payment())

    page = _text(alice_client.get(PAGE))

    assert "/reprocess/" not in page


def test_the_reprocess_post_processes_a_failed_delivery(alice_client, failing_payment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(_reprocess_url(failing_payment))

    assert response.status_code == 302 and response["Location"] == PAGE
    failing_payment.refresh_from_db()
    assert failing_payment.status == WhopEvent.Status.PROCESSED
    assert failing_payment.last_error == ""
    page = _text(alice_client.get(PAGE))
    assert "queued to be processed again" in page
    assert "RuntimeError: boom" not in page


def test_reprocessing_is_a_post_only(alice_client, failing_payment):
    response = alice_client.get(_reprocess_url(failing_payment))

    assert response.status_code == 405


# --- bob --------------------------------------------------------------------------------------


def test_bob_gets_404_reprocessing_alices_delivery(bob_client, failing_payment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(_reprocess_url(failing_payment))

    assert response.status_code == 404
    failing_payment.refresh_from_db()
    assert failing_payment.status == WhopEvent.Status.FAILED


def test_bob_gets_404_for_an_unknown_delivery(bob_client, bob):
    assert bob_client.post("/settings/billing/whop/events/987654/reprocess/").status_code == 404


def test_bob_sees_his_own_endpoint_and_none_of_alices(bob_client, connection, deliver):
    deliver(payment())

    page = _text(bob_client.get(PAGE))

    assert connection.token not in page
    assert PAYMENT_ID not in page
    assert WhopConnection.objects.get(creator__email="bob@example.com").token in page

