"""`manage.py seed_demo`: the demo creator that `make run` loads, made through the services real traffic uses."""

import io

from django.core.management import call_command
from django.db.models import Sum

from allumi.accounts.models import Creator
from attribution.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD
from attribution.models import Click, Conversion, Credit, DailyLinkClicks
from links.models import Link


def _seed(django_capture_on_commit_callbacks, clicks=600):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", clicks=clicks, seed=7, stdout=io.StringIO())
    return Creator.objects.get(email=DEMO_EMAIL)


def test_the_demo_creator_has_links_realistic_clicks_and_attributed_conversions(db, django_capture_on_commit_callbacks):
    creator = _seed(django_capture_on_commit_callbacks)

    assert creator.check_password(DEMO_PASSWORD)
    assert Link.objects.filter(creator=creator).count() == 20
    clicks = Click.objects.filter(creator=creator)
    assert clicks.count() == 600
    humans = clicks.filter(is_bot=False)
    # Previews, crawlers and HEAD checks are stored but flagged; people are most of the traffic.
    assert 0 < clicks.filter(is_bot=True).count() < 0.15 * 600
    # Some people open a link again within the hour: clicks, not new visitors.
    repeats = humans.filter(is_unique=False).count()
    assert 0 < repeats < 0.2 * humans.count()
    # Parsed and placed: browsers, devices and countries from the offline database.
    assert humans.exclude(browser="").count() == humans.count()
    assert humans.exclude(country="").count() > 0.9 * humans.count()
    assert len(set(humans.values_list("device_type", flat=True))) >= 2
    # Conversions went through attribution, and their credits add up to their amounts.
    attributed = Conversion.objects.filter(creator=creator, status=Conversion.Status.ATTRIBUTED)
    assert attributed.count() > 10
    assert not Conversion.objects.filter(creator=creator, status=Conversion.Status.PENDING).exists()
    paid = attributed.filter(amount__isnull=False).first()
    assert Credit.objects.filter(conversion=paid, model="linear").aggregate(total=Sum("revenue"))["total"] == paid.amount
    # The dashboard's rollups are filled: every human click counted once.
    rolled = DailyLinkClicks.objects.filter(creator=creator).aggregate(clicks=Sum("clicks"), unique=Sum("unique_clicks"))
    assert rolled == {"clicks": humans.count(), "unique": humans.count() - repeats}


def test_running_it_again_leaves_the_demo_creator_alone(db, django_capture_on_commit_callbacks):
    creator = _seed(django_capture_on_commit_callbacks, clicks=100)

    _seed(django_capture_on_commit_callbacks, clicks=100)

    assert Creator.objects.filter(email=DEMO_EMAIL).count() == 1
    assert Click.objects.filter(creator=creator).count() == 100
