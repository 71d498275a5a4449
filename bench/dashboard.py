"""Dashboard speed: the creator pages that read the rollups, at ten million clicks and at ten thousand.

    .venv/bin/python bench/dashboard.py [--clicks 10000000] [--conversions 100000] [--runs 15] [--reuse]

What it does:

1. Production settings (DEBUG=false, a generated SECRET_KEY, ALLOWED_HOSTS=testserver,localhost, no
   SSL redirect, no Redis) on the PostgreSQL database `allumi_bench_dash` (created if missing, then
   migrated). Static files are served from the source folders (no collectstatic manifest needed).
2. Load, with COPY through the psycopg 3 connection: one creator (creator_create), 50 links
   (link_create), --clicks clicks over 90 days (a daily rhythm, weekends, a growing trend and a few
   viral days; visitors from a skewed pool with stable devices, languages, home and carrier /24s,
   fingerprints, countries; referrers with their UTM fields; ~5% bots with fresh cookies; is_unique
   as the redirect computes it: a visitor's first human click on a link within an hour; unique
   public ids) and --conversions conversions whose journeys are real clicks, with credits under all
   five models (attribution.credit's own weights and cent splits) and one CreditLedger row per
   credit. The click table's secondary indexes and foreign keys are dropped for the COPY and rebuilt
   after it, all in one transaction. VACUUM ANALYZE. With --reuse a previous load of the same size
   is kept (only what later steps added is removed).
3. Rollups rebuilt from scratch with attribution.rollups.rollups_run() (ROLLUP_SETTLE_SECONDS=0),
   timed (rows/s).
4. Pages timed with django.test.Client (force_login): /overview/, /overview/?range=90d,
   /links/<busiest link>/, /conversions/, one warm-up then --runs runs each: median and p95. For
   each page the SQL of one request (CaptureQueriesContext plus a precise per-statement timer): the
   number of statements, database time, the five slowest; EXPLAIN (ANALYZE, BUFFERS) of the slowest
   statement of the overview (and of the other pages).
5. Live tail: --tail fresh clicks (default 20,000) in the last hour, above the rollup cursor, then
   /overview/ and the busiest link again, with their slowest statements.
6. A second creator with 10,000 clicks and ~100 conversions in the same database, rolled up; the
   same pages; the 10M/10k ratio of medians per page.
7. Targets: /overview/ median under 150 ms at 10 million clicks (also with the live tail); the
   10M/10k ratio under 2 for every page. PASS/FAIL each.

Exit status: 0 when the benchmark ran (the report says PASS or FAIL), 2 when it could not; with
--strict also 3 when a target is missed.
"""

import argparse
import bisect
import gc
import hashlib
import json
import math
import os
import random
import secrets
import shutil
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/dashboard.py`: import from the project root, not from bench/.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/allumi_bench_dash"
BIG_EMAIL = "bench-dashboard@allumi.invalid"
SMALL_EMAIL = "bench-dashboard-10k@allumi.invalid"
LINKS = 50
DAYS = 90
SMALL_CLICKS = 10_000
SMALL_CONVERSIONS = 100

TARGET_OVERVIEW_MS = 150.0
TARGET_RATIO = 2.0

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
UNIQUE_WINDOW_US = HOUR_US  # attribution.services.UNIQUE_WINDOW

# --- the population -------------------------------------------------------------------------

# (user agent, weight, is a phone). A few popular phones dominate, as in real traffic.
HUMAN_AGENTS = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        30,
        True,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1",
        8,
        True,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Mobile Safari/537.36",
        25,
        True,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        5,
        True,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 Instagram 329.0.0.0.0 (iPhone15,2; iOS 17_4; en_US; en; scale=3.00; 1179x2556; 590123456)",
        6,
        True,
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36 trill_340303 BytedanceWebview/d8a21c6",
        4,
        True,
    ),
    ("Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0", 2, True),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
        "Mobile/15E148 Safari/604.1",
        3,
        False,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Safari/537.36",
        30,
        False,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Safari/537.36",
        12,
        False,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
        "Safari/605.1.15",
        10,
        False,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 6, False),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Safari/537.36 Edg/124.0.0.0",
        8,
        False,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 2, False),
]
BOT_AGENTS = [
    "Twitterbot/1.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
]
# (Accept-Language, weight, countries it browses from). About 2% of visitors have no country.
LANGUAGES = [
    ("en-US,en;q=0.9", 50, ["US"] * 8 + ["CA", "CA"]),
    ("en-GB,en;q=0.9", 10, ["GB", "GB", "GB", "IE", "AU", "AU", "NZ"]),
    ("de-DE,de;q=0.9,en;q=0.8", 8, ["DE", "DE", "DE", "AT", "CH"]),
    ("fr-FR,fr;q=0.9,en;q=0.8", 7, ["FR", "FR", "FR", "BE", "CA"]),
    ("es-ES,es;q=0.9", 7, ["ES", "ES", "MX", "MX", "AR", "CO"]),
    ("pt-BR,pt;q=0.9,en;q=0.8", 8, ["BR", "BR", "BR", "PT"]),
    ("ja-JP,ja;q=0.9", 3, ["JP"]),
    ("it-IT,it;q=0.9", 3, ["IT"]),
    ("nl-NL,nl;q=0.9,en;q=0.8", 2, ["NL", "NL", "BE"]),
    ("pl-PL,pl;q=0.9", 2, ["PL"]),
]
# (referrer, weight, (utm_source, utm_medium, utm_campaign, utm_term, utm_content)).
NO_UTM = ("", "", "", "", "")
REFERRER_MIX = [
    ("https://www.youtube.com/", 16, ("youtube", "video", "spring-launch", "", "description")),
    ("https://www.youtube.com/", 8, NO_UTM),
    ("https://m.youtube.com/", 4, ("youtube", "video", "spring-launch", "", "pinned-comment")),
    ("https://www.tiktok.com/", 12, ("tiktok", "social", "", "", "")),
    ("https://l.instagram.com/", 10, ("instagram", "bio", "", "", "")),
    ("https://l.instagram.com/", 4, NO_UTM),
    ("https://t.co/", 6, NO_UTM),
    ("", 18, NO_UTM),
    ("", 4, ("newsletter", "email", "weekly", "", "")),
    ("https://mail.google.com/", 3, NO_UTM),
    ("https://www.reddit.com/", 5, NO_UTM),
    ("https://www.google.com/", 5, ("google", "cpc", "brand", "allumi", "")),
    ("https://www.facebook.com/", 3, NO_UTM),
    ("https://duckduckgo.com/", 1, NO_UTM),
    ("https://news.ycombinator.com/", 1, NO_UTM),
]
ACCEPT_ENCODING = "gzip, deflate, br"
CARRIER_NETWORKS = 16  # carrier-grade NAT /24s shared by every phone user on that carrier
DATACENTER_NETWORKS = 300
BOT_COUNTRIES = ["US", "US", "US", "IE", "DE", "NL", "SG", "FI"]
PRICES = [
    (Decimal("9.00"), 20),
    (Decimal("19.00"), 25),
    (Decimal("29.00"), 20),
    (Decimal("49.00"), 15),
    (Decimal("99.00"), 12),
    (Decimal("149.00"), 5),
    (Decimal("199.00"), 3),
]

# Column order of the COPY: the visitor's stable columns are one cached string.
CLICK_COLUMNS = (
    "public_id",
    "link_id",
    "creator_id",
    "occurred_at",
    "method",
    "ip",
    "network",
    "user_agent",
    "browser",
    "os",
    "device_type",
    "device_model",
    "accept_language",
    "language",
    "fingerprint",
    "country",
    "visitor_id",
    "referrer",
    "referrer_domain",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "is_bot",
    "bot_reason",
    "is_unique",
)
CONVERSION_COLUMNS = (
    "id",
    "creator_id",
    "external_id",
    "event",
    "source",
    "status",
    "amount",
    "refunded_amount",
    "currency",
    "occurred_at",
    "email",
    "click_id",
    "visitor_id",
    "whop_user_id",
    "ip",
    "network",
    "user_agent",
    "accept_language",
    "fingerprint",
    "metadata",
    "identity_id",
    "confidence",
    "evidence",
    "attributed_at",
    "created_at",
)
CREDIT_COLUMNS = ("conversion_id", "model", "link_id", "weight", "revenue")
LEDGER_COLUMNS = ("creator_id", "link_id", "model", "day", "conversions", "revenue", "created_at")
ROLLUP_TABLES = (
    "attribution_hourlylinkclicks", "attribution_dailylinkclicks", "attribution_dailyclickdimension", "attribution_dailycreatordimension",
    "attribution_dailylinkcredit",
)
# Emptied before a fresh load (the database is the benchmark's own).
LOAD_TABLES = (
    "attribution_credit",
    "attribution_creditledger",
    "attribution_identitymerge",
    "attribution_identifier",
    "attribution_conversion",
    "attribution_identity",
    "attribution_recompute",
    "attribution_attributionsettings",
    "attribution_click",
    "attribution_rollupcursor",
    *ROLLUP_TABLES,
    "links_link_tags",
    "links_link",
    "links_tag",
)

# Public ids: "c_" + 12 base62 characters: three random, six from a counter that is unique per
# load (separate ranges for the big load, the small creator and the live tail), three random.
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHUNK = 62**3
TRIPLES = [a + b + c for a in _ALPHABET for b in _ALPHABET for c in _ALPHABET]
PID_BIG, PID_SMALL, PID_TAIL = 0, 10**10, 3 * 10**10  # counters stay below 62**6


# --- environment ----------------------------------------------------------------------------


def configure_environment(args) -> None:
    for name in ("REDIS_URL", "SENTRY_DSN", "TRUSTED_PROXIES"):
        os.environ.pop(name, None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="allumi.settings",
        DEBUG="false",  # no query log growing in memory; production code paths
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="testserver,localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=args.database_url,
        LOG_LEVEL="WARNING",
        LOG_FORMAT="plain",
    )


def ensure_database(database_url: str) -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(database_url)
    params = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or "postgres",
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    if config.get("PASSWORD"):
        params["password"] = config["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
            print(f"created database {config['NAME']}")


def setup_django(args) -> None:
    configure_environment(args)
    ensure_database(args.database_url)
    import django

    # Whitenoise notes that the production static root does not exist: not used here.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()
    from django.core.management import call_command
    from django.test.utils import override_settings

    # DEBUG=false picks the manifest storage, which needs collectstatic; serve from the source
    # folders instead (only the URLs in the pages change, not the work of a request).
    override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    # Import every view now: a broken import should stop the benchmark before a long load.
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    print(f"migrate: {time.perf_counter() - started:.1f} s")


# --- small helpers --------------------------------------------------------------------------


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(3, 94 - len(title)), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cumulate(weights) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def pick(rng: random.Random, items: list, cumulative: list[float]):
    return items[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def iso_us(us: int) -> str:
    return datetime.fromtimestamp(us / US, tz=UTC).isoformat()


def disk_line() -> str:
    usage = shutil.disk_usage("/")
    return f"disk /: {usage.used / 2**30:.1f} GB used, {usage.free / 2**30:.1f} GB free of {usage.total / 2**30:.0f} GB"


def execute(sql: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def scalar(sql: str, params=None):
    rows = execute(sql, params)
    return rows[0][0] if rows else None


def copy_text(table: str, columns: tuple[str, ...], chunks) -> None:
    """COPY text chunks (tab-separated rows ending in newlines) into `table`."""
    from django.db import connection

    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for chunk in chunks:
            copy.write(chunk)


def copy_value(value) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def copy_rows(table: str, columns: tuple[str, ...], rows, batch: int = 20_000) -> int:
    count = 0

    def chunks():
        nonlocal count
        buffer = []
        for row in rows:
            buffer.append("\t".join(copy_value(value) for value in row))
            if len(buffer) >= batch:
                count += len(buffer)
                yield "\n".join(buffer) + "\n"
                buffer.clear()
        if buffer:
            count += len(buffer)
            yield "\n".join(buffer) + "\n"

    copy_text(table, columns, chunks())
    return count


# --- synthetic traffic ----------------------------------------------------------------------


_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _hash_int(*parts) -> int:
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest(), "big")


def _prefix_from(h: int) -> str:
    first = 23 + h % 199
    if first in (100, 127, 169, 172, 192, 198, 203):
        first += 1
    return f"{first}.{(h >> 8) & 255}.{(h >> 16) & 255}"


class Population:
    """A pool of visitors, each with a stable device, language, country, home /24 (about three
    people share one) and, on phones, a carrier /24. Everything derives from (seed, visitor
    number), so two runs and two loads agree."""

    def __init__(self, seed: int, visitors: int):
        from attribution.enrich import bot_reason, first_language, parse_user_agent, referrer_domain

        self.seed = seed
        self.salt = _mix(seed)
        self.visitors = visitors
        self.agents = [agent for agent, _, _ in HUMAN_AGENTS]
        self.agent_cum = cumulate(weight for _, weight, _ in HUMAN_AGENTS)
        self.phone = [phone for _, _, phone in HUMAN_AGENTS]
        self.parsed = {agent: parse_user_agent(agent) for agent in self.agents + BOT_AGENTS}
        self.agent_reason = {agent: bot_reason(agent) for agent in self.agents + BOT_AGENTS}
        self.languages = [language for language, _, _ in LANGUAGES]
        self.language_cum = cumulate(weight for _, weight, _ in LANGUAGES)
        self.language_countries = [countries for _, _, countries in LANGUAGES]
        self.first_language = {language: first_language(language) for language in self.languages}
        self.carriers = [_prefix_from(_hash_int(seed, "carrier", n)) for n in range(CARRIER_NETWORKS)]
        self.datacenters = [_prefix_from(_hash_int(seed, "dc", n)) for n in range(DATACENTER_NETWORKS)]
        self.referrers = []
        for referrer, _, utm in REFERRER_MIX:
            fields = (referrer, referrer_domain(referrer), *utm)
            self.referrers.append("\t".join(copy_value(value) for value in fields))
        self.referrer_cum = cumulate(weight for _, weight, _ in REFERRER_MIX)
        # The stable COPY columns of visitor v: [2v] at home, [2v + 1] on the carrier (phones).
        self.segments: list[str | None] = [None] * (2 * visitors)
        self._bot_segments: dict[tuple[int, int, str], str] = {}

    def fingerprint(self, agent: str, language: str, network: str) -> str:
        # attribution.enrich.fingerprint with no client hints
        return hashlib.sha256("\x1f".join((agent, language, ACCEPT_ENCODING, "", network)).encode()).hexdigest()

    def profile(self, visitor: int, carrier: bool) -> dict:
        """The request signals of this visitor, at home or (phones) on their carrier."""
        h = _mix(self.salt ^ visitor)
        g = _mix(h)
        agent_index = bisect.bisect(self.agent_cum, (h & 0xFFFF) / 65536 * self.agent_cum[-1])
        agent = self.agents[agent_index]
        language_index = bisect.bisect(self.language_cum, ((h >> 16) & 0xFFFF) / 65536 * self.language_cum[-1])
        language = self.languages[language_index]
        countries = self.language_countries[language_index]
        country = "" if (h >> 32) % 50 == 0 else countries[(h >> 40) % len(countries)]
        phone = self.phone[agent_index]
        if carrier and phone:
            prefix = self.carriers[(h >> 48) % CARRIER_NETWORKS]
        else:
            prefix = _prefix_from(_mix(self.salt ^ (visitor // 3) ^ 0x5BD1E995))  # ~3 people per home /24
        network = f"{prefix}.0/24"
        return {
            "ip": f"{prefix}.{2 + (h >> 56) % 250}",
            "network": network,
            "user_agent": agent,
            "accept_language": language,
            "language": self.first_language[language],
            "fingerprint": self.fingerprint(agent, language, network),
            "country": country,
            "visitor_id": f"{g >> 40:06x}{h & 0xFFFFFFFFFFFFFFFF:016x}",  # 88 bits, 22 hex digits
            "is_phone": phone,
        }

    def _segment(self, p: dict) -> str:
        browser, os_name, device, model = self.parsed[p["user_agent"]]
        return "\t".join(
            (
                p["ip"],
                p["network"],
                p["user_agent"],
                browser,
                os_name,
                device,
                model,
                p["accept_language"],
                p["language"],
                p["fingerprint"],
                p["country"],
                p["visitor_id"],
            )
        )

    def fill(self, visitor: int) -> None:
        """Build the cached COPY columns of a visitor (both places; the same one for non-phones)."""
        home = self.profile(visitor, False)
        self.segments[2 * visitor] = self._segment(home)
        self.segments[2 * visitor + 1] = (
            self._segment(self.profile(visitor, True)) if home["is_phone"] else self.segments[2 * visitor]
        )

    def visitor_id(self, visitor: int) -> str:
        return self.profile(visitor, False)["visitor_id"]

    def bot_segment(self, agent_index: int, dc: int, method: str, rng: random.Random) -> tuple[str, str, bool]:
        """(stable columns, bot_reason, is_bot) of a bot request; a fresh visitor cookie each time."""
        key = (agent_index, dc, method)
        prefix = self._bot_segments.get(key)
        agent = BOT_AGENTS[agent_index]
        reason = "head_request" if method == "HEAD" else self.agent_reason[agent]
        if prefix is None:
            browser, os_name, device, model = self.parsed[agent]
            network = f"{self.datacenters[dc]}.0/24"
            device = "bot" if reason and reason != "head_request" else device
            prefix = "\t".join(
                (
                    f"{self.datacenters[dc]}.{10 + dc % 200}",
                    network,
                    agent,
                    browser,
                    os_name,
                    device,
                    model,
                    "",
                    "",
                    self.fingerprint(agent, "", network),
                    BOT_COUNTRIES[dc % len(BOT_COUNTRIES)],
                )
            )
            self._bot_segments[key] = prefix
        return f"{prefix}\t{rng.getrandbits(88):022x}", reason, bool(reason)


def hour_counts(
    rng: random.Random, total: int, start_us: int, end_us: int, *, shaped: bool = True
) -> list[tuple[int, int, int]]:
    """(hour start, usable span, count) for every hour in [start, end): a daily rhythm (evening peak,
    UTC), busier weekends, a trend growing over the period and a few viral days; the counts add up
    to `total` exactly."""
    hours = []
    first = start_us - start_us % HOUR_US
    viral = set()
    if shaped and end_us - start_us > 20 * DAY_US:
        viral = {rng.randrange((end_us - start_us) // DAY_US) for _ in range(3)}
    t = first
    while t < end_us:
        lo, hi = max(t, start_us), min(t + HOUR_US, end_us)
        if hi > lo:
            weight = (hi - lo) / HOUR_US
            if shaped:
                moment = datetime.fromtimestamp(t / US, tz=UTC)
                daily = 0.35 + 0.65 * (0.5 + 0.5 * math.cos(2 * math.pi * (moment.hour - 19) / 24))
                weekend = 1.2 if moment.weekday() >= 5 else 1.0
                trend = 0.6 + 0.8 * (t - start_us) / max(end_us - start_us, 1)
                spike = 3.0 if (t - start_us) // DAY_US in viral else 1.0
                weight *= daily * weekend * trend * spike
            hours.append((lo, hi - lo, weight))
        t += HOUR_US
    cumulative = cumulate(weight for _, _, weight in hours)
    out, before = [], 0
    for (lo, span, _), cum in zip(hours, cumulative, strict=True):
        upto = round(total * cum / cumulative[-1])
        out.append((lo, span, upto - before))
        before = upto
    return out


def click_chunks(
    *,
    rng: random.Random,
    people: Population,
    count: int,
    creator_id: int,
    link_ids: list[int],
    start_us: int,
    end_us: int,
    pid_base: int,
    bot_share: float = 0.05,
    samples: list | None = None,
    sample_every: int = 0,
    progress_every: int = 0,
    shaped: bool = True,
):
    """Yield COPY text for `count` clicks in time order, one chunk per hour. Human clicks come
    from the pool's visitors with a skewed activity (a few visitors click a lot, most once or
    twice); ~bot_share are bots. is_unique as attribution.services._mark_unique sets it. Every
    sample_every-th human click is remembered in `samples` as (time, public id, link id,
    visitor) for the conversions' journeys."""
    link_cum = cumulate(1 / (i + 1) ** 0.9 for i in range(len(link_ids)))  # a few links get most clicks
    link_positions_all = range(len(link_ids))
    head = [f"\t{link_id}\t{creator_id}\t" for link_id in link_ids]  # between public id and time
    visitors = people.visitors
    segments = people.segments
    fill = people.fill
    referrers, referrer_cum = people.referrers, people.referrer_cum
    direct = "\t".join([""] * 7)  # bots: no referrer, no UTM fields
    seconds_table = [f"{m:02d}:{sec:02d}." for m in range(60) for sec in range(60)]
    triples = TRIPLES
    random_ = rng.random
    bits = rng.getrandbits
    n = 0
    humans = 0
    current: dict[int, int] = {}
    previous: dict[int, int] = {}
    started = time.perf_counter()
    next_progress = progress_every or -1
    sampling = bool(sample_every and samples is not None)
    for hour_start, span, hour_count in hour_counts(rng, count, start_us, end_us, shaped=shaped):
        previous, current = current, {}
        if not hour_count:
            continue
        hour_prefix = datetime.fromtimestamp(hour_start / US, tz=UTC).strftime("%Y-%m-%d %H:")
        base_offset = hour_start % HOUR_US
        offsets = sorted([int(random_() * span) for _ in range(hour_count)])
        link_positions = rng.choices(link_positions_all, cum_weights=link_cum, k=hour_count)
        referrer_rows = rng.choices(referrers, cum_weights=referrer_cum, k=hour_count)
        lines = []
        append = lines.append
        for offset, link_position, referrer in zip(offsets, link_positions, referrer_rows, strict=True):
            second, micros = divmod(base_offset + offset, US)
            noise = bits(34)
            high, low = divmod(pid_base + n, _CHUNK)
            pid = "c_" + triples[noise & 0x1FFFF] + triples[high] + triples[low] + triples[noise >> 17]
            n += 1
            if random_() < bot_share:
                method = "HEAD" if random_() < 0.15 else "GET"
                segment, reason, is_bot = people.bot_segment(
                    bits(3) % len(BOT_AGENTS), bits(16) % DATACENTER_NETWORKS, method, rng
                )
                append(
                    f"{pid}{head[link_position]}{hour_prefix}{seconds_table[second]}{micros:06d}+00\t{method}\t{segment}\t"
                    f"{direct}\t{'t' if is_bot else 'f'}\t{reason}\tf\n"
                )
                continue
            visitor = int(visitors * random_() ** 1.8)
            index = 2 * visitor + (random_() < 0.5)
            segment = segments[index]
            if segment is None:
                fill(visitor)
                segment = segments[index]
            key = visitor * 64 + link_position
            at = hour_start + offset
            last = current.get(key) or previous.get(key)
            current[key] = at
            humans += 1
            if sampling and humans % sample_every == 0:
                samples.append((at, pid, link_ids[link_position], visitor))
            append(
                f"{pid}{head[link_position]}{hour_prefix}{seconds_table[second]}{micros:06d}+00\tGET\t{segment}\t"
                f"{referrer}\tf\t\t{'f' if last and at - last < UNIQUE_WINDOW_US else 't'}\n"
            )
        if n >= next_progress > 0:
            elapsed = time.perf_counter() - started
            print(f"  … {n:,} clicks in {elapsed:.0f} s ({n / elapsed:,.0f}/s)", flush=True)
            next_progress += progress_every
        yield "".join(lines)


def conversion_rows(
    *,
    rng: random.Random,
    people: Population,
    count: int,
    creator_id: int,
    ids: list[int],
    samples: list,
    start_us: int,
    end_us: int,
    external_prefix: str,
):
    """Conversions in time order whose journeys are sampled real clicks, with their credits under
    every model and the matching ledger rows: returns (conversions, credits, ledger) row lists."""
    from attribution.credit import MODELS, link_weights, split_revenue

    sample_times = [sample[0] for sample in samples]
    price_values = [price for price, _ in PRICES]
    price_cum = cumulate(weight for _, weight in PRICES)
    conversions, credits, ledger = [], [], []
    times = []
    for hour_start, span, hour_count in hour_counts(rng, count, start_us, end_us):
        times += sorted(hour_start + int(rng.random() * span) for _ in range(hour_count))
    for number, (conversion_id, at) in enumerate(zip(ids, times, strict=True)):
        occurred = datetime.fromtimestamp(at / US, tz=UTC)
        recent = bisect.bisect_left(sample_times, at - 3 * DAY_US)
        window = bisect.bisect_left(sample_times, at - 30 * DAY_US)
        upto = bisect.bisect_left(sample_times, at)
        source = "track" if rng.random() < 0.6 else "whop"
        purchase = rng.random() < 0.65
        amount = pick(rng, price_values, price_cum) if purchase else None
        refunded = amount if amount is not None and rng.random() < 0.04 else Decimal("0.00")
        roll = rng.random()
        status = "attributed" if roll < 0.88 else "unattributed" if roll < 0.98 else "pending"
        if upto == window:
            status = "unattributed" if status == "attributed" else status
        journey = []
        if status == "attributed":
            last = samples[rng.randrange(recent, upto) if upto > recent else rng.randrange(window, upto)]
            touches = 1 + (rng.random() < 0.5) + (rng.random() < 0.3) + (rng.random() < 0.2)
            earlier = [samples[rng.randrange(window, upto)] for _ in range(touches - 1)]
            journey = sorted([*earlier, last], key=lambda sample: sample[0])
            visitor = last[3]
        else:
            visitor = rng.randrange(people.visitors)
        signals = people.profile(visitor, rng.random() < 0.3)
        path = pick(rng, ["click_id", "visitor_cookie", "linked_identity", "fingerprint"], [40, 70, 85, 100])
        email = (
            f"buyer{creator_id}-{number}@example.com"
            if source == "whop" or path == "linked_identity" or rng.random() < 0.3
            else ""
        )
        click_id = journey[-1][1] if journey and path == "click_id" else ""
        visitor_id = signals["visitor_id"] if source == "track" and path in ("click_id", "visitor_cookie") else ""
        if status == "attributed":
            confidence = {"click_id": 97, "visitor_cookie": 93, "linked_identity": 88}.get(path) or rng.randint(25, 48)
            evidence = {"identifiers": [], "method": path, "clicks": [sample[1] for sample in journey]}
        elif status == "unattributed":
            confidence = None
            evidence = {"identifiers": [], "clicks": []}
        else:
            confidence, evidence = None, {}
        attributed_at = None if status == "pending" else iso_us(at + rng.randint(1, 120) * US)
        conversions.append(
            (
                conversion_id,
                creator_id,
                f"{external_prefix}-{number}",
                "purchase" if purchase else "signup",
                source,
                status,
                amount,
                refunded,
                "USD",
                occurred.isoformat(),
                email,
                click_id,
                visitor_id,
                f"user_{_mix(creator_id * 10**9 + number) % 10**12:012d}" if source == "whop" else "",
                signals["ip"] if source == "track" else None,
                signals["network"] if source == "track" else "",
                signals["user_agent"] if source == "track" else "",
                signals["accept_language"] if source == "track" else "",
                signals["fingerprint"] if source == "track" else "",
                "{}",
                None,
                confidence,
                json.dumps(evidence),
                attributed_at,
                occurred.isoformat(),
            )
        )
        if journey:
            net = max((amount or Decimal(0)) - refunded, Decimal(0))
            touches = [(sample[2], datetime.fromtimestamp(sample[0] / US, tz=UTC)) for sample in journey]
            day = occurred.date().isoformat()
            for model in MODELS:
                weights = link_weights(model, touches, occurred, 7.0)
                revenues = split_revenue(net, list(weights.values()))
                for (link_id, weight), revenue in zip(weights.items(), revenues, strict=True):
                    credits.append((conversion_id, model, link_id, weight, revenue))
                    ledger.append((creator_id, link_id, model, day, 1, revenue, attributed_at))
    return conversions, credits, ledger


# --- loading --------------------------------------------------------------------------------


def reserve_ids(table: str, count: int) -> list[int]:
    rows = execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", [count])  # noqa: S608
    return [row[0] for row in rows]


def click_index_definitions() -> tuple[list, list, list]:
    """(plain index definitions, unique constraints, foreign keys) of the click table, to drop
    for a bulk load and rebuild after it."""
    indexes = execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid), c.conname
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
        WHERE x.indrelid = 'attribution_click'::regclass AND NOT x.indisprimary
        ORDER BY i.relname
        """
    )
    plain = [(name, definition) for name, definition, constraint in indexes if constraint is None]
    uniques = execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'attribution_click'::regclass AND contype = 'u' ORDER BY conname
        """
    )
    foreign = execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'attribution_click'::regclass AND contype = 'f' ORDER BY conname
        """
    )
    return plain, uniques, foreign


def links_for(creator, rng: random.Random) -> list[int]:
    from links.services import link_create

    campaigns = ["spring-launch", "evergreen", "black-friday", "course", "newsletter"]
    ids = []
    for i in range(LINKS):
        utm = {}
        if i % 3 == 0:  # a third of the links add their own UTM fields to the destination
            utm = {"utm_source": "allumi", "utm_medium": "link", "utm_campaign": campaigns[i % len(campaigns)]}
        link = link_create(
            creator=creator, url=f"https://shop.example.com/products/{i}?ref=bench", title=f"Offer {i:02d}", **utm
        )
        ids.append(link.id)
    return ids


def load_creator(
    *, email: str, name: str, clicks: int, conversions: int, seed: int, pid_base: int, end_us: int, bulk: bool
) -> dict:
    """Create a creator with LINKS links, `clicks` clicks over DAYS days and `conversions`
    conversions with credits and ledger rows. With `bulk` the click table's secondary indexes and
    foreign keys are dropped during the COPY and rebuilt after it (one transaction)."""
    from django.db import transaction

    from allumi.accounts.services import creator_create

    rng = random.Random(seed)
    started = time.perf_counter()
    creator = creator_create(email=email, password=None, name=name, confirmed=True)
    link_ids = links_for(creator, rng)
    print(f"  creator + {LINKS} links (services): {time.perf_counter() - started:.1f} s", flush=True)

    start_us = end_us - DAYS * DAY_US
    people = Population(seed, max(500, clicks // 5))
    samples: list = []
    sample_every = max(1, int(clicks * 0.95) // max(1, conversions * 5))
    t0 = time.perf_counter()
    with transaction.atomic():
        execute("SET LOCAL synchronous_commit TO off")
        if bulk:
            execute("SET LOCAL maintenance_work_mem TO '1GB'")
            plain, uniques, foreign = click_index_definitions()
            for name, _ in foreign + uniques:
                execute(f'ALTER TABLE attribution_click DROP CONSTRAINT "{name}"')
            for name, _ in plain:
                execute(f'DROP INDEX "{name}"')
            print(
                f"  dropped {len(plain)} indexes, {len(uniques)} unique and {len(foreign)} foreign key constraints",
                flush=True,
            )
        chunks = click_chunks(
            rng=rng,
            people=people,
            count=clicks,
            creator_id=creator.id,
            link_ids=link_ids,
            start_us=start_us,
            end_us=end_us,
            pid_base=pid_base,
            samples=samples,
            sample_every=sample_every,
            progress_every=1_000_000 if clicks >= 2_000_000 else 0,
        )
        copy_text("attribution_click", CLICK_COLUMNS, chunks)
        copied = time.perf_counter() - t0
        print(f"  COPY {clicks:,} clicks: {copied:.1f} s ({clicks / copied:,.0f} rows/s)", flush=True)
        if bulk:
            t1 = time.perf_counter()
            for name, definition in plain:
                t2 = time.perf_counter()
                execute(definition)
                print(f"    index {name}: {time.perf_counter() - t2:.1f} s", flush=True)
            for name, definition in uniques:
                t2 = time.perf_counter()
                execute(f'ALTER TABLE attribution_click ADD CONSTRAINT "{name}" {definition}')
                print(f"    constraint {name}: {time.perf_counter() - t2:.1f} s", flush=True)
            for name, definition in foreign:
                t2 = time.perf_counter()
                execute(f'ALTER TABLE attribution_click ADD CONSTRAINT "{name}" {definition}')
                print(f"    foreign key {name}: {time.perf_counter() - t2:.1f} s", flush=True)
            print(f"  rebuilt indexes and constraints: {time.perf_counter() - t1:.1f} s", flush=True)
    people.segments = []
    print(f"  clicks total: {time.perf_counter() - t0:.1f} s", flush=True)

    t0 = time.perf_counter()
    ids = reserve_ids("attribution_conversion", conversions)
    conversion_list, credit_list, ledger_list = conversion_rows(
        rng=rng,
        people=people,
        count=conversions,
        creator_id=creator.id,
        ids=ids,
        samples=samples,
        start_us=start_us,
        end_us=end_us,
        external_prefix=f"bench-{creator.id}",
    )
    generated = time.perf_counter() - t0
    with transaction.atomic():
        copy_rows("attribution_conversion", CONVERSION_COLUMNS, conversion_list)
        copy_rows("attribution_credit", CREDIT_COLUMNS, credit_list)
        copy_rows("attribution_creditledger", LEDGER_COLUMNS, ledger_list)
    attributed = sum(1 for row in conversion_list if row[5] == "attributed")
    print(
        f"  {len(conversion_list):,} conversions ({attributed:,} attributed), {len(credit_list):,} credits, "
        f"{len(ledger_list):,} ledger rows: generated {generated:.1f} s, total {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return {"creator": creator, "link_ids": link_ids}


def insert_tail(*, creator, link_ids: list[int], count: int, seed: int, visitors: int) -> float:
    """`count` fresh clicks in the last hour from the creator's visitor pool, above the rollup
    cursor (written with the indexes in place, as the click flusher does)."""
    from django.db import transaction

    rng = random.Random(seed + 7)
    people = Population(seed, visitors)
    end_us = int(time.time() * US)
    started = time.perf_counter()
    with transaction.atomic():
        copy_text(
            "attribution_click",
            CLICK_COLUMNS,
            click_chunks(
                rng=rng,
                people=people,
                count=count,
                creator_id=creator.id,
                link_ids=link_ids,
                start_us=end_us - HOUR_US,
                end_us=end_us,
                pid_base=PID_TAIL + rng.randrange(10**4) * 10**6,
                shaped=False,
            ),
        )
    return time.perf_counter() - started


def drop_creator(email: str) -> None:
    """Remove a creator and everything of theirs (raw SQL for the big tables)."""
    from allumi.accounts.models import Creator

    creator = Creator.objects.filter(email=email).first()
    if creator is None:
        return
    cid = creator.id
    execute(
        "DELETE FROM attribution_credit WHERE conversion_id IN (SELECT id FROM attribution_conversion WHERE creator_id = %s)",
        [cid],
    )
    for table in ("attribution_conversion", "attribution_creditledger", "attribution_click", *ROLLUP_TABLES):
        execute(f"DELETE FROM {table} WHERE creator_id = %s", [cid])  # noqa: S608 (fixed table names)
    execute("DELETE FROM links_link_tags WHERE link_id IN (SELECT id FROM links_link WHERE creator_id = %s)", [cid])
    execute("DELETE FROM links_link WHERE creator_id = %s", [cid])
    creator.delete()


def reusable_big(args):
    """The big creator when --reuse finds the load of the same size; clicks added later (the live
    tail) are removed. None when a fresh load is needed."""
    from allumi.accounts.models import Creator
    from attribution.models import Conversion

    creator = Creator.objects.filter(email=BIG_EMAIL).first()
    if creator is None:
        return None
    # The load wrote ids 1..clicks into a freshly emptied table.
    loaded = scalar(
        "SELECT COUNT(*) FROM attribution_click WHERE id <= %s AND creator_id = %s", [args.clicks, creator.id]
    )
    if loaded != args.clicks or Conversion.objects.filter(creator=creator).count() != args.conversions:
        print(
            f"--reuse: found {loaded:,} clicks / {Conversion.objects.filter(creator=creator).count():,} conversions; loading afresh"
        )
        return None
    removed = scalar(
        "WITH gone AS (DELETE FROM attribution_click WHERE id > %s AND creator_id = %s RETURNING 1) SELECT COUNT(*) FROM gone",
        [args.clicks, creator.id],
    )
    print(f"--reuse: kept {loaded:,} clicks and {args.conversions:,} conversions (removed {removed:,} later clicks)")
    return creator


def load_big(args) -> dict:
    from allumi.accounts.models import Creator
    from links.models import Link

    drop_creator(SMALL_EMAIL)
    creator = reusable_big(args) if args.reuse else None
    if creator is not None:
        link_ids = list(Link.objects.filter(creator=creator).order_by("id").values_list("id", flat=True))
        return {"creator": creator, "link_ids": link_ids, "reused": True}
    started = time.perf_counter()
    execute(f"TRUNCATE {', '.join(LOAD_TABLES)} RESTART IDENTITY CASCADE")
    Creator.objects.filter(email__in=[BIG_EMAIL, SMALL_EMAIL]).delete()
    end_us = int(time.time() * US) - 5 * 60 * US
    loaded = load_creator(
        email=BIG_EMAIL,
        name="Dashboard bench (10M)",
        clicks=args.clicks,
        conversions=args.conversions,
        seed=args.seed,
        pid_base=PID_BIG,
        end_us=end_us,
        bulk=True,
    )
    t0 = time.perf_counter()
    for table in (
        "attribution_click",
        "attribution_conversion",
        "attribution_credit",
        "attribution_creditledger",
        "links_link",
    ):
        execute(f"VACUUM (ANALYZE) {table}")
    print(f"  VACUUM ANALYZE: {time.perf_counter() - t0:.1f} s")
    total = time.perf_counter() - started
    print(f"load total: {total:.0f} s ({total / 60:.1f} min){'  — over 20 minutes' if total > 1200 else ''}")
    return {**loaded, "reused": False, "load_seconds": total}


def build_rollups(*, fresh: bool) -> dict:
    """rollups_run() with no settling period; from empty rollups when `fresh`."""
    from django.test.utils import override_settings

    from attribution.rollups import rollups_run

    if fresh:
        execute(f"TRUNCATE {', '.join(ROLLUP_TABLES)}")
        execute("DELETE FROM attribution_rollupcursor")
    started = time.perf_counter()
    with override_settings(ROLLUP_SETTLE_SECONDS=0):
        read = rollups_run()
    seconds = time.perf_counter() - started
    rows = read["clicks"] + read["credits"]
    # Autovacuum would analyze tables that changed this much; do it now so plans are steady.
    for table in ROLLUP_TABLES:
        execute(f"ANALYZE {table}")
    print(
        f"rollups_run(): {seconds:.1f} s for {read['clicks']:,} click ids + {read['credits']:,} ledger ids "
        f"({rows / seconds if seconds else 0:,.0f} rows/s)"
    )
    counts = {table: scalar(f"SELECT COUNT(*) FROM {table}") for table in ROLLUP_TABLES}  # noqa: S608
    print(
        "rollup rows: "
        + ", ".join(f"{table.removeprefix('attribution_')} {count:,}" for table, count in counts.items())
    )
    return {"seconds": seconds, **read}


def settle(timeout: float = 300.0) -> None:
    """Before timing: a checkpoint (no background flush of the load's dirty pages) and no
    autovacuum worker busy on this database (they would share the two cores with the pages)."""
    started = time.perf_counter()
    execute("CHECKPOINT")
    waited = False
    while time.perf_counter() - started < timeout:
        busy = execute(
            "SELECT query FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname = current_database()"
        )
        if not busy:
            break
        if not waited:
            print("waiting for autovacuum: " + "; ".join(short_sql(row[0], 80) for row in busy), flush=True)
            waited = True
        time.sleep(2)
    print(
        f"settled (checkpoint{', autovacuum done' if waited else ''}): {time.perf_counter() - started:.1f} s",
        flush=True,
    )


# --- timing pages ---------------------------------------------------------------------------


class StatementTimer:
    """An execute wrapper: (seconds, sql) of every statement, timed precisely."""

    def __init__(self):
        self.statements: list[tuple[float, str, object]] = []

    def __call__(self, execute_, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute_(sql, params, many, context)
        finally:
            self.statements.append((time.perf_counter() - started, sql, params))


def pages_for(creator, link_ids: list[int]) -> list[tuple[str, str]]:
    from django.db.models import Sum

    from attribution.models import HourlyLinkClicks

    busiest = (
        HourlyLinkClicks.objects.filter(creator=creator)
        .values("link_id")
        .annotate(n=Sum("clicks"))
        .order_by("-n")
        .values_list("link_id", flat=True)
        .first()
    ) or link_ids[0]
    return [
        ("overview 30d", "/overview/"),
        ("overview 90d", "/overview/?range=90d"),
        ("link detail", f"/links/{busiest}/"),
        ("conversions", "/conversions/"),
    ]


def client_for(creator):
    from django.test import Client

    client = Client()
    client.force_login(creator)
    return client


def get_timed(client, url: str) -> tuple[float, float]:
    """(wall ms, this process's CPU ms) of one request; the page must answer 200."""
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get(url)
    wall, cpu = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    return wall, cpu


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {os.cpu_count()} cores"


def time_pages(creator, pages, runs: int, label: str) -> dict[str, list[float]]:
    client = client_for(creator)
    results = {}
    print(f"({load_note()}; cpu = this process's CPU time per request: Django, templates, driver)")
    print(f"{'page (' + label + ')':<24}{'median ms':>11}{'p95 ms':>10}{'min ms':>9}{'max ms':>9}{'cpu ms':>9}")
    for name, url in pages:
        gc.collect()
        get_timed(client, url)  # warm-up
        timings, cpu = [], []
        for _ in range(runs):
            wall, used = get_timed(client, url)
            timings.append(wall)
            cpu.append(used)
        results[name] = timings
        print(
            f"{name:<24}{statistics.median(timings):>11.1f}{percentile(timings, 0.95):>10.1f}"
            f"{min(timings):>9.1f}{max(timings):>9.1f}{statistics.median(cpu):>9.1f}   {url}",
            flush=True,
        )
    return results


def time_interleaved(big_creator, big_pages, small_creator, small_pages, runs: int) -> dict[str, tuple[list, list]]:
    """Both creators' pages requested alternately, so that whatever else runs on the machine
    weighs on both sides of the ratio alike."""
    big_client, small_client = client_for(big_creator), client_for(small_creator)
    results = {}
    print(f"({load_note()})")
    print(f"{'page':<16}{'big median':>12}{'big p95':>10}{'10k median':>12}{'10k p95':>10}{'ratio':>8}")
    for (name, big_url), (_, small_url) in zip(big_pages, small_pages, strict=True):
        gc.collect()
        get_timed(big_client, big_url)
        get_timed(small_client, small_url)
        big, small = [], []
        for _ in range(runs):
            big.append(get_timed(big_client, big_url)[0])
            small.append(get_timed(small_client, small_url)[0])
        results[name] = (big, small)
        print(
            f"{name:<16}{statistics.median(big):>12.1f}{percentile(big, 0.95):>10.1f}{statistics.median(small):>12.1f}"
            f"{percentile(small, 0.95):>10.1f}{statistics.median(big) / statistics.median(small):>8.2f}",
            flush=True,
        )
    return results


def capture(creator, url: str):
    """One request's statements: [(seconds, literal sql, sql, params)] and the request's time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(creator)
    client.get(url)  # warm
    timer = StatementTimer()
    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
        started = time.perf_counter()
        client.get(url)
        total = time.perf_counter() - started
    literal = [query["sql"] for query in captured.captured_queries]
    if len(literal) != len(timer.statements):
        literal = [sql for _, sql, _ in timer.statements]
    statements = [(seconds, literal[i], sql, params) for i, (seconds, sql, params) in enumerate(timer.statements)]
    return statements, total


def short_sql(sql: str, width: int = 330) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def report_statements(name: str, statements, total: float, top: int = 5):
    db = sum(seconds for seconds, *_ in statements)
    print(
        f"{name}: {len(statements)} statements, {db * 1000:.1f} ms in the database of {total * 1000:.1f} ms "
        f"({100 * db / total if total else 0:.0f}%)"
    )
    ranked = sorted(statements, key=lambda statement: statement[0], reverse=True)
    for rank, (seconds, literal, _, _) in enumerate(ranked[:top], 1):
        print(f"  {rank}. {seconds * 1000:7.2f} ms  {short_sql(literal)}")
    return ranked


def explain(statement, title: str) -> None:
    from django.db import connection

    seconds, literal, sql, params = statement
    if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
        print(f"(skipping EXPLAIN of a non-SELECT statement: {short_sql(literal, 120)})")
        return
    print(f"EXPLAIN (ANALYZE, BUFFERS) — {title} ({seconds * 1000:.2f} ms in the request):")
    print(f"  {short_sql(literal, 2000)}")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        for (line,) in cursor.fetchall():
            print("    " + line)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--conversions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tail", type=int, default=20_000, help="fresh clicks above the rollup cursor")
    parser.add_argument("--reuse", action="store_true", help="keep a previous load of the same size")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    section("setup")
    print(
        f"clicks {args.clicks:,}, conversions {args.conversions:,}, runs {args.runs}, tail {args.tail:,}, reuse {args.reuse}"
    )
    print(disk_line())
    try:
        setup_django(args)
    except Exception as error:  # no database server, say
        print(f"cannot set up: {error!r}")
        return 2
    from django.db import connection

    print(
        f"PostgreSQL {connection.pg_version // 10000}.{connection.pg_version % 10000}, "
        f"shared_buffers {scalar('SHOW shared_buffers')}, work_mem {scalar('SHOW work_mem')}, jit {scalar('SHOW jit')}"
    )

    section(f"load: 1 creator, {LINKS} links, {args.clicks:,} clicks, {args.conversions:,} conversions")
    big = load_big(args)
    creator, link_ids = big["creator"], big["link_ids"]
    sizes = execute(
        """
        SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class
        WHERE relname IN ('attribution_click', 'attribution_conversion', 'attribution_credit', 'attribution_creditledger')
        ORDER BY relname
        """
    )
    print("sizes (with indexes): " + ", ".join(f"{name.removeprefix('attribution_')} {size}" for name, size in sizes))
    print(f"database {scalar('SELECT pg_size_pretty(pg_database_size(current_database()))')}; {disk_line()}")

    section("rollups: rebuilt from scratch with rollups_run()")
    rollup = build_rollups(fresh=True)

    section(f"pages at {args.clicks:,} clicks ({args.runs} runs after a warm-up)")
    settle()
    pages = pages_for(creator, link_ids)
    big_times = time_pages(creator, pages, args.runs, f"{args.clicks / 1e6:g}M")

    section(f"where the time goes at {args.clicks:,} clicks (one request each, slowest statements)")
    slowest = {}
    for name, url in pages:
        statements, total = capture(creator, url)
        ranked = report_statements(name, statements, total)
        slowest[name] = ranked[0] if ranked else None
    if slowest.get("overview 30d"):
        print()
        explain(slowest["overview 30d"], "slowest statement of /overview/")
    for name in ("overview 90d", "link detail", "conversions"):
        if slowest.get(name):
            print()
            explain(slowest[name], f"slowest statement of {name}")

    section(f"live tail: {args.tail:,} fresh clicks above the rollup cursor")
    seconds = insert_tail(
        creator=creator, link_ids=link_ids, count=args.tail, seed=args.seed, visitors=max(500, args.clicks // 5)
    )
    cursor = scalar("SELECT last_id FROM attribution_rollupcursor WHERE name = 'clicks'")
    above = scalar("SELECT COUNT(*) FROM attribution_click WHERE id > %s", [cursor])
    print(f"inserted in {seconds:.1f} s; {above:,} clicks above the cursor ({cursor:,})")
    settle()
    tail_pages = [pages[0], pages[2]]
    tail_times = time_pages(creator, tail_pages, args.runs, f"{args.clicks / 1e6:g}M + tail")
    statements, total = capture(creator, pages[0][1])
    ranked = report_statements("overview 30d with tail", statements, total)
    tail_statements = [s for s in ranked if "attribution_click" in s[1] and "attribution_hourly" not in s[1]]
    if ranked:
        print()
        explain(ranked[0], "slowest statement of /overview/ with the live tail")
    if tail_statements and tail_statements[0] is not ranked[0]:
        print()
        explain(tail_statements[0], "slowest live-tail statement of /overview/")

    section(f"second creator: {SMALL_CLICKS:,} clicks, {SMALL_CONVERSIONS} conversions (same database)")
    end_us = int(time.time() * US) - 5 * 60 * US
    small = load_creator(
        email=SMALL_EMAIL,
        name="Dashboard bench (10k)",
        clicks=SMALL_CLICKS,
        conversions=SMALL_CONVERSIONS,
        seed=args.seed + 1,
        pid_base=PID_SMALL,
        end_us=end_us,
        bulk=False,
    )
    execute("ANALYZE attribution_click")
    print("rolling up the 10k creator (and the live tail):")
    build_rollups(fresh=False)
    settle()
    small_pages = pages_for(small["creator"], small["link_ids"])
    small_times = time_pages(small["creator"], small_pages, args.runs, "10k")
    for name, url in small_pages[:1]:
        statements, total = capture(small["creator"], url)
        report_statements(f"{name} (10k)", statements, total, top=3)

    section("10M / 10k ratio of medians")
    print("sequential (the timings above, taken minutes apart):")
    for name, _ in pages:
        big_median, small_median = statistics.median(big_times[name]), statistics.median(small_times[name])
        print(f"  {name:<16} {big_median:8.1f} ms / {small_median:8.1f} ms = {big_median / small_median:5.2f}")
    print(f"interleaved (big and 10k requests alternate, {args.runs} pairs per page; used for the target):")
    paired = time_interleaved(creator, pages, small["creator"], small_pages, args.runs)
    ratios = {name: statistics.median(big) / statistics.median(small_) for name, (big, small_) in paired.items()}

    section("targets")
    overview = statistics.median(big_times["overview 30d"])
    overview_tail = statistics.median(tail_times["overview 30d"])
    checks = [
        (
            f"/overview/ median < {TARGET_OVERVIEW_MS:.0f} ms at {args.clicks:,} clicks",
            overview,
            overview < TARGET_OVERVIEW_MS,
            "ms",
        ),
        (
            f"/overview/ median < {TARGET_OVERVIEW_MS:.0f} ms with {args.tail:,} clicks in the live tail",
            overview_tail,
            overview_tail < TARGET_OVERVIEW_MS,
            "ms",
        ),
    ]
    checks += [
        (f"{name}: 10M/10k median ratio < {TARGET_RATIO:g}", ratio, ratio < TARGET_RATIO, "x")
        for name, ratio in ratios.items()
    ]
    for label, value, ok, unit in checks:
        print(
            f"{'PASS' if ok else 'FAIL'}  {label}: {value:.1f} {unit}"
            if unit == "ms"
            else f"{'PASS' if ok else 'FAIL'}  {label}: {value:.2f}"
        )
    if args.clicks < 10_000_000:
        print(f"(note: the 150 ms target is for 10,000,000 clicks; this run had {args.clicks:,})")
    passed = all(ok for _, _, ok, _ in checks)
    print(
        f"\noverall: {'PASS' if passed else 'FAIL'}   (rollup build {rollup['seconds']:.0f} s"
        f"{', load ' + format(big['load_seconds'], '.0f') + ' s' if not big['reused'] else ', load reused'}; "
        f"wall {time.perf_counter() - wall:.0f} s)"
    )
    print(f"database {scalar('SELECT pg_size_pretty(pg_database_size(current_database()))')}; {disk_line()}")
    return 3 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
