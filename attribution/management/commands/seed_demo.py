"""`manage.py seed_demo`: a demo creator with ~20 links and a few thousand clicks over 90 days.

Clicks go through the same code as real traffic (a request is built and handed to click_payload and
clicks_store), so the demo exercises parsing, bot detection, countries and unique-visitor flags.
Running it again leaves an existing demo creator alone.
"""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.test import RequestFactory
from django.utils import timezone

from allumi.accounts.models import ApiKey, Creator
from allumi.accounts.services import api_key_create, creator_create
from attribution.conversions import conversion_record
from attribution.models import Conversion
from attribution.rollups import rollups_run
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from links.services import link_create

DEMO_EMAIL = "demo@allumi.example"
DEMO_PASSWORD = "allumi-demo-2026"  # noqa: S105 (the demo login, printed by make run)

_AGENTS = [
    (30, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"),
    (20, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"),
    (8, "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36"),
    (15, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"),
    (10, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
    (4, "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"),
    (4, "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"),
    (5, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 335.0.0.36.89"),
    (2, "Twitterbot/1.0"),
    (1, "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
    (1, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
]
REPEAT_VISITS = 0.08  # share of clicks that open the visitor's last link again within the hour
_LANGUAGES = ["en-US,en;q=0.9", "en-GB,en;q=0.8", "de-DE,de;q=0.9,en;q=0.6", "es-ES,es;q=0.9", "fr-FR,fr;q=0.9", "pt-BR,pt;q=0.9"]
# Public address blocks in a few countries, so the offline database gives each click a country.
_NETWORKS = ["81.2.69", "8.8.4", "24.48.0", "91.198.174", "185.86.151", "177.71.128", "2.125.160", "203.2.218"]
_LINKS = [
    ("YouTube: 10k subscriber story", "youtube", "video", "launch", "https://growthlab.example/offer"),
    ("YouTube: pinned comment", "youtube", "comment", "launch", "https://growthlab.example/offer"),
    ("TikTok bio", "tiktok", "social", "evergreen", "https://growthlab.example/join"),
    ("TikTok: pricing explainer", "tiktok", "video", "launch", "https://growthlab.example/pricing"),
    ("Instagram story swipe-up", "instagram", "social", "launch", "https://growthlab.example/offer"),
    ("Instagram bio", "instagram", "social", "evergreen", "https://growthlab.example/join"),
    ("Newsletter #41", "newsletter", "email", "weekly", "https://growthlab.example/offer?ref=nl"),
    ("Newsletter #42", "newsletter", "email", "weekly", "https://growthlab.example/offer?ref=nl"),
    ("Newsletter #43", "newsletter", "email", "weekly", "https://growthlab.example/offer?ref=nl"),
    ("X thread: first 1,000 members", "x", "social", "launch", "https://growthlab.example/offer"),
    ("X pinned post", "x", "social", "evergreen", "https://growthlab.example/join"),
    ("Podcast show notes", "podcast", "audio", "evergreen", "https://growthlab.example/join"),
    ("Guest post on Indie Weekly", "indieweekly", "referral", "partners", "https://growthlab.example/offer"),
    ("Discord announcement", "discord", "community", "launch", "https://growthlab.example/offer"),
    ("Reddit AMA", "reddit", "social", "launch", "https://growthlab.example/offer"),
    ("LinkedIn post", "linkedin", "social", "evergreen", "https://growthlab.example/join"),
    ("Free course lead magnet", "youtube", "video", "leadmagnet", "https://growthlab.example/free-course#start"),
    ("Black Friday email", "newsletter", "email", "bf2026", "https://growthlab.example/offer?coupon=BF"),
    ("Webinar replay", "webinar", "email", "evergreen", "https://growthlab.example/replay"),
    ("Affiliate: Sam's channel", "affiliate", "referral", "partners", "https://growthlab.example/offer"),
]
_REFERRERS = {
    "youtube": "https://www.youtube.com/", "tiktok": "https://www.tiktok.com/", "instagram": "https://l.instagram.com/",
    "x": "https://t.co/", "reddit": "https://www.reddit.com/", "linkedin": "https://www.linkedin.com/",
    "discord": "https://discord.com/", "indieweekly": "https://indieweekly.example/", "podcast": "",
    "newsletter": "", "webinar": "", "affiliate": "https://youtube.com/",
}


class Command(BaseCommand):
    help = "Load a demo creator with realistic links and clicks (skipped when it already exists)."

    def add_arguments(self, parser):
        parser.add_argument("--clicks", type=int, default=4000)
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args, clicks: int, seed: int, **options):
        if Creator.objects.filter(email=DEMO_EMAIL).exists():
            self._print_login()
            return
        rng = random.Random(seed)
        with transaction.atomic():
            creator = creator_create(email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Maya (demo)", confirmed=True)
            api_key_create(creator=creator, kind=ApiKey.Kind.SECRET, name="Demo server key")
            now = timezone.now()
            links = []
            for index, (title, source, medium, campaign, url) in enumerate(_LINKS):
                link = link_create(
                    creator=creator, url=url, title=title, utm_source=source, utm_medium=medium,
                    utm_campaign=campaign, tags=[source, campaign],
                )
                # Older links first, so traffic starts where the link did.
                link.created_at = now - timedelta(days=90 - index * 3)
                link.save(update_fields=["created_at"])
                links.append((link, source, 1.0 / (1 + index * 0.25)))
        payloads = self._make_clicks(rng, links, clicks, now)
        conversions = self._make_conversions(rng, creator, payloads, now)
        rollups_run()
        self.stdout.write(
            self.style.SUCCESS(f"Demo creator loaded with {len(links)} links, {clicks} clicks and {conversions} conversions.")
        )
        self._print_login()

    def _make_clicks(self, rng, links, total, now):
        factory = RequestFactory()
        agents = [agent for _, agent in _AGENTS]
        agent_weights = [weight for weight, _ in _AGENTS]
        people = [
            {
                "visitor": new_visitor_id(),
                "agent": rng.choices(agents, agent_weights)[0],
                "language": rng.choice(_LANGUAGES),
                "ip": f"{rng.choice(_NETWORKS)}.{rng.randint(1, 254)}",
            }
            for _ in range(max(total // 3, 1))
        ]
        payloads = []
        previous = None
        for _ in range(total):
            if previous and rng.random() < REPEAT_VISITS:
                # The same person opens the same link again minutes later: a click, not a new visitor.
                link, source, person, when = previous
                when = min(when + timedelta(minutes=rng.randint(1, 45)), now)
            else:
                link, source, _ = rng.choices(links, [weight for *_, weight in links])[0]
                start = max(link.created_at, now - timedelta(days=90))
                span = (now - start).total_seconds()
                # Traffic grows towards today: more recent moments are likelier.
                when = start + timedelta(seconds=span * (rng.random() ** 0.6))
                person = rng.choice(people)
                if rng.random() < 0.2:  # cleared cookies or a new browser
                    person = dict(person, visitor=new_visitor_id())
            previous = (link, source, person, when)
            headers = {"HTTP_USER_AGENT": person["agent"], "HTTP_ACCEPT_LANGUAGE": person["language"], "REMOTE_ADDR": person["ip"]}
            if _REFERRERS.get(source):
                headers["HTTP_REFERER"] = _REFERRERS[source]
            request = factory.head(f"/l/{link.short_id}", **headers) if rng.random() < 0.02 else factory.get(f"/l/{link.short_id}", **headers)
            payloads.append(
                click_payload(
                    request=request, link_id=link.id, creator_id=link.creator_id, click_id=new_click_id(),
                    visitor_id=person["visitor"], occurred_at=when.timestamp(),
                )
            )
        payloads.sort(key=lambda payload: payload["ts"])
        for offset in range(0, len(payloads), 1000):
            clicks_store(payloads=payloads[offset : offset + 1000])
        return payloads

    def _make_conversions(self, rng, creator, payloads, now) -> int:
        """Some visitors sign up and buy, days after their last click, through conversion_record:
        the snippet's calls (cookie, click id), server calls (email only) and Whop payments."""
        last_click: dict[str, dict] = {}
        for payload in payloads:
            if payload["method"] == "GET" and "bot" not in payload["ua"].lower() and "externalhit" not in payload["ua"]:
                last_click[payload["vid"]] = payload
        made = 0
        for number, (visitor, payload) in enumerate(sorted(last_click.items())):
            if rng.random() > 0.12:
                continue
            when = datetime.fromtimestamp(payload["ts"], tz=UTC) + timedelta(hours=rng.uniform(0.1, 72))
            if when >= now:
                continue
            email = f"member{number}@example.org"
            conversion_record(
                creator=creator, event="signup", source=Conversion.Source.TRACK, email=email, visitor_id=visitor,
                click_id=payload["id"] if rng.random() < 0.6 else "", occurred_at=when,
            )
            made += 1
            if rng.random() < 0.55:
                conversion_record(
                    creator=creator, event="purchase", source=Conversion.Source.WHOP, external_id=f"pay_demo{number:05d}",
                    email=email, amount=Decimal(rng.choice(["49.00", "99.00", "199.00"])),
                    occurred_at=min(when + timedelta(hours=rng.uniform(0.1, 48)), now),
                )
                made += 1
        return made

    def _print_login(self):
        self.stdout.write("")
        self.stdout.write("  Open   http://127.0.0.1:8000/")
        self.stdout.write(f"  Email  {DEMO_EMAIL}")
        self.stdout.write(f"  Pass   {DEMO_PASSWORD}")
        self.stdout.write("")
