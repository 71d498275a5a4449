"""The weekly report: clicks, conversions, revenue, top links and the change against the week before,
sent by beat on each creator's chosen weekday, once a week, never to a creator who opted out."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core import mail
from django.test import RequestFactory
from django.utils import timezone

from allumi.accounts.emails import unsubscribe_url
from allumi.accounts.models import EmailLog
from attribution.conversions import conversion_record
from attribution.models import Conversion
from attribution.notifications import weekly_report_send, weekly_reports_due
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from attribution.tasks import send_weekly_reports
from links.services import link_create

DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
TODAY = timezone.now().date()
_factory = RequestFactory()


def _at(days_ago: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(12), tzinfo=UTC)


def _click(link, days_ago: int) -> str:
    request = _factory.get(f"/l/{link.short_id}", HTTP_USER_AGENT=DESKTOP, REMOTE_ADDR="81.2.69.142")
    click_id = new_click_id()
    clicks_store(payloads=[click_payload(
        request=request, link_id=link.id, creator_id=link.creator_id, click_id=click_id, visitor_id=new_visitor_id(),
        occurred_at=_at(days_ago).timestamp(),
    )])
    return click_id


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def _sale(creator, click_id, days_ago, amount):
    conversion_record(
        creator=creator, event="purchase", source=Conversion.Source.TRACK, click_id=click_id, amount=Decimal(amount),
        currency="USD", occurred_at=_at(days_ago),
    )


@pytest.fixture
def alices_weeks(alice, run_on_commit):
    """This week: 5 clicks (4 on the launch video), 2 sales of 50 through it; the week before:
    2 clicks and one sale of 20. Outside both weeks: a click today and one three weeks ago."""
    video = link_create(creator=alice, url="https://alice.example/course", title="Launch video")
    letter = link_create(creator=alice, url="https://alice.example/letter", title="Newsletter")
    this_week = [_click(video, 3) for _ in range(4)] + [_click(letter, 1)]
    last_week = [_click(video, 10), _click(letter, 9)]
    _click(video, 0)
    _click(video, 21)
    run_on_commit(_sale, alice, this_week[0], 3, "50.00")
    run_on_commit(_sale, alice, this_week[1], 2, "50.00")
    run_on_commit(_sale, alice, last_week[0], 10, "20.00")
    return video, letter


def _weekday(creator, weekday):
    creator.weekly_report_weekday = weekday
    creator.save(update_fields=["weekly_report_weekday"])


def test_the_report_has_the_weeks_figures_change_and_top_links(alice, alices_weeks, run_on_commit):
    video, letter = alices_weeks

    [email] = run_on_commit(weekly_report_send, creator_id=alice.id, today=TODAY)

    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == "Your Allumi week: 5 clicks, 2 conversions"
    text = message.body
    assert "Clicks: 5 (+150%; last week 2)" in text
    assert "Conversions: 2 (+100%; last week 1)" in text
    assert "Revenue: 100.00 USD (+400%; last week 20.00)" in text
    assert f"1. Launch video ({video.short_url}): 4 clicks, 2 conversions, 100.00 USD" in text
    assert f"2. Newsletter ({letter.short_url}): 1 click, 0 conversions, 0.00 USD" in text
    assert text.index("Launch video") < text.index("Newsletter")
    first, last = TODAY - timedelta(days=7), TODAY - timedelta(days=1)
    assert f"{first:%a} {first.day} {first:%b} to {last:%a} {last.day} {last:%b %Y}" in text
    [(html, _)] = message.alternatives
    assert "<strong>5</strong>" in html and "+150%" in html and "<strong>100.00</strong> USD" in html
    assert f'<a href="{video.short_url}">Launch video</a>' in html
    link = unsubscribe_url(creator=alice, kind=EmailLog.Kind.WEEKLY_REPORT)
    assert message.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert link in text and f'href="{link}"' in html
    email.refresh_from_db()
    assert (email.kind, email.creator, email.status) == (EmailLog.Kind.WEEKLY_REPORT, alice, EmailLog.Status.SENT)
    assert email.dedupe_key == "weekly_report:{}-W{:02d}".format(*TODAY.isocalendar()[:2])


def test_it_is_sent_once_a_week_however_often_it_runs(alice, alices_weeks, run_on_commit):
    run_on_commit(weekly_report_send, creator_id=alice.id, today=TODAY)
    again = run_on_commit(weekly_report_send, creator_id=alice.id, today=TODAY)

    assert again == []
    assert len(mail.outbox) == 1
    assert EmailLog.objects.filter(kind=EmailLog.Kind.WEEKLY_REPORT).count() == 1


def test_beat_sends_to_the_creators_whose_day_is_today(alice, bob, alices_weeks, run_on_commit):
    bobs = link_create(creator=bob, url="https://bob.example/", title="Bob's shop")
    _click(bobs, 2)
    _weekday(alice, TODAY.weekday())
    _weekday(bob, (TODAY.weekday() + 1) % 7)

    assert run_on_commit(send_weekly_reports) == 1

    assert [message.to for message in mail.outbox] == [["alice@example.com"]]

    with mock.patch("attribution.tasks.timezone.now", return_value=timezone.now() + timedelta(days=1)):
        assert run_on_commit(send_weekly_reports) == 1
    assert mail.outbox[-1].to == ["bob@example.com"]
    assert "Bob's shop" in mail.outbox[-1].body and "Launch video" not in mail.outbox[-1].body


def test_nothing_goes_to_a_creator_who_opted_out(alice, alices_weeks, run_on_commit):
    _weekday(alice, TODAY.weekday())
    alice.weekly_report = False
    alice.save(update_fields=["weekly_report"])

    assert run_on_commit(send_weekly_reports) == 0
    assert run_on_commit(weekly_report_send, creator_id=alice.id, today=TODAY) == []  # even if asked directly

    assert mail.outbox == [] and not EmailLog.objects.exists()


def test_unconfirmed_and_deactivated_creators_are_not_due(alice, bob):
    _weekday(alice, TODAY.weekday())
    _weekday(bob, TODAY.weekday())
    alice.email_confirmed_at = None
    alice.save(update_fields=["email_confirmed_at"])
    bob.is_active = False
    bob.save(update_fields=["is_active"])

    assert weekly_reports_due(today=TODAY) == []


def test_a_creator_with_nothing_in_two_weeks_gets_no_report(alice, run_on_commit):
    link = link_create(creator=alice, url="https://alice.example/", title="Old link")
    _click(link, 21)

    assert run_on_commit(weekly_report_send, creator_id=alice.id, today=TODAY) == []
    assert mail.outbox == []


def test_a_quiet_week_after_a_busy_one_is_still_reported(alice, run_on_commit):
    link = link_create(creator=alice, url="https://alice.example/", title="Launch video")
    _click(link, 9)

    run_on_commit(weekly_report_send, creator_id=alice.id, today=TODAY)

    [message] = mail.outbox
    assert message.subject == "Your Allumi week: 0 clicks, 0 conversions"
    assert "Clicks: 0 (-100%; last week 1)" in message.body
