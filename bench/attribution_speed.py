"""Attribution speed: single-conversion latency, first-pass throughput and a full recompute, on
PostgreSQL with a million clicks.

    .venv/bin/python bench/attribution_speed.py [--clicks 1000000] [--conversions 100000]
        [--sample 300] [--reuse] [--command-recompute]

What it does:

1. Production settings (DEBUG=false, a generated SECRET_KEY, in-process Celery, no Redis) on the
   PostgreSQL database `allumi_bench_attr` (created if missing, then migrated).
2. Fill (skipped with --reuse when the bench creator already has exactly that many clicks and
   conversions): one creator, 50 links, --clicks clicks over 60 days from a pool of visitors
   (households on shared /24s, phones also on a few carrier-NAT /24s, offices; a skewed mix of
   user agents and languages; ~5% bots with fresh cookies), written with COPY, then VACUUM ANALYZE.
   --conversions pending conversions, also by COPY, in time order: 40% name a real click id, 30%
   carry a clicker's visitor cookie (half of them with an email too), 15% only an email seen
   earlier with a cookie, 15% nobody who clicked (browser signals, sometimes a fresh email). The
   fill runs in a child process so that the memory figures below are the attribution's own.
3. First attribution pass: conversion_attribute() on every pending conversion, in id order, timed.
   With --first-pass-budget seconds exceeded the pass stops early and says so; what is left is
   attributed for the first time by the recompute of step 6. Where the server runs with autovacuum
   off, the attribution tables are analyzed every 1,000 conversions when autovacuum's threshold
   says it would have (the pass's time includes it). Re-attributions that late evidence
   would enqueue (Celery runs them in-process without Redis) are counted, not run, so that every
   timing is one conversion_attribute() call.
4. Single-conversion latency: --sample random conversions, conversion_attribute() each, median /
   p95 / p99 overall and per path (click id, cookie, linked identity, fingerprint, network, none);
   then SQL queries per call (CaptureQueriesContext) and the statements where database time goes.
5. EXPLAIN (ANALYZE, BUFFERS) of the slowest statements of one deterministic and one
   probabilistic attribution.
6. Memory of a partial recompute under tracemalloc (--tracemalloc-chunks chunks), then a full
   recompute_run() in-process (a Recompute row, --chunk conversions per chunk): seconds,
   conversions/s, RSS after each chunk and getrusage's peak. With --command-recompute also
   `manage.py recompute_attribution --creator EMAIL` in a child process under `/usr/bin/time -v`.
7. cProfile of --profile conversions on the slow (probabilistic) path, top 15 by cumulative time.
8. Targets: single attribution median <= 20 ms with >= 1M clicks; recompute of 100,000
   conversions <= 120 s (scaled linearly from --conversions); memory bounded (RSS grows by at most
   64 MB across the recompute and its peak stays under 1 GB). PASS/FAIL each.

Exit status: 0 when the benchmark ran (the report says PASS or FAIL), 2 when it could not; with
--strict also 3 when a target is missed.
"""

import argparse
import contextlib
import cProfile
import gc
import hashlib
import io
import os
import pstats
import random
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/attribution_speed.py`: import from the project root, not from bench/.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.autovacuum import autovacuum_stand_in  # noqa: E402 (after the path fix)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/allumi_bench_attr"
BENCH_EMAIL = "bench-attribution@allumi.invalid"
LINKS = 50
DAYS = 60

TARGET_MEDIAN_MS = 20.0
TARGET_MIN_CLICKS = 1_000_000
TARGET_RECOMPUTE_S = 120.0  # for 100,000 conversions, on 2 cores
TARGET_RECOMPUTE_PER = 100_000
TARGET_RSS_GROWTH_MB = 64.0
TARGET_RSS_PEAK_MB = 1024.0

# --- the population -------------------------------------------------------------------------

# (user agent, weight, is phone). A few popular phones dominate, as in real traffic.
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
LANGUAGES = [
    ("en-US,en;q=0.9", 50),
    ("en-GB,en;q=0.9", 10),
    ("de-DE,de;q=0.9,en;q=0.8", 8),
    ("fr-FR,fr;q=0.9,en;q=0.8", 7),
    ("es-ES,es;q=0.9", 7),
    ("pt-BR,pt;q=0.9,en;q=0.8", 8),
    ("ja-JP,ja;q=0.9", 3),
    ("it-IT,it;q=0.9", 3),
    ("nl-NL,nl;q=0.9,en;q=0.8", 2),
    ("pl-PL,pl;q=0.9", 2),
]
REFERRERS = [
    "https://www.youtube.com/",
    "https://www.tiktok.com/",
    "https://l.instagram.com/",
    "https://t.co/",
    "",
    "",
    "https://mail.google.com/",
    "https://www.reddit.com/",
]
COUNTRIES = ["US", "US", "US", "GB", "DE", "FR", "ES", "BR", "CA", "AU", "JP", "IT", "NL", "PL"]
ACCEPT_ENCODING = "gzip, deflate, br"
CARRIER_NETWORKS = 16  # carrier-grade NAT /24s shared by every phone user on that carrier

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
    "referrer",
    "referrer_domain",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "visitor_id",
    "fingerprint",
    "country",
    "is_bot",
    "bot_reason",
    "is_unique",
)
CONVERSION_COLUMNS = (
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
BENCH_TABLES = (
    "attribution_credit",
    "attribution_identitymerge",
    "attribution_identifier",
    "attribution_conversion",
    "attribution_identity",
    "attribution_recompute",
    "attribution_attributionsettings",
    "attribution_click",
    "links_link_tags",
    "links_link",
    "links_tag",
)


# --- environment ----------------------------------------------------------------------------


def bench_environment(args) -> dict:
    env = os.environ.copy()
    for name in ("REDIS_URL", "SENTRY_DSN", "DJANGO_SETTINGS_MODULE", "TRUSTED_PROXIES"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="allumi.settings",
        DEBUG="false",  # no query log; production code paths
        SECRET_KEY=os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(48),
        ALLOWED_HOSTS="localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=args.database_url,
        LOG_LEVEL="WARNING",
        LOG_FORMAT="plain",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
    )
    return env


def ensure_database(database_url: str) -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(database_url)
    name = config["NAME"]
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
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def setup_django(args, *, migrate: bool) -> None:
    os.environ.update(bench_environment(args))
    ensure_database(args.database_url)
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        started = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        print(f"migrate: {time.perf_counter() - started:.1f} s")


# --- small helpers --------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def maxrss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(3, 90 - len(title)), flush=True)


def weighted_index(rng: random.Random, cumulative: list[float]) -> int:
    import bisect

    return bisect.bisect(cumulative, rng.random() * cumulative[-1])


def cumulate(weights) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def copy_text(value) -> str:
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


def copy_rows(table: str, columns: tuple[str, ...], rows, *, batch: int = 20_000) -> int:
    """COPY rows (tuples in `columns` order) into `table` through the psycopg 3 connection."""
    from django.db import connection

    count = 0
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        buffer = []
        for row in rows:
            buffer.append("\t".join(copy_text(value) for value in row))
            if len(buffer) >= batch:
                copy.write("\n".join(buffer) + "\n")
                count += len(buffer)
                buffer.clear()
        if buffer:
            copy.write("\n".join(buffer) + "\n")
            count += len(buffer)
    return count


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


# --- fill (runs in a child process) ---------------------------------------------------------


class Population:
    """Visitors with a device, a language and the networks they browse from."""

    def __init__(self, rng: random.Random, visitors: int):
        from attribution.enrich import bot_reason, first_language, parse_user_agent

        self.rng = rng
        self.agents = [agent for agent, _, _ in HUMAN_AGENTS]
        self.agent_cum = cumulate(weight for _, weight, _ in HUMAN_AGENTS)
        self.phone = [phone for _, _, phone in HUMAN_AGENTS]
        self.parsed = {agent: parse_user_agent(agent) for agent in self.agents + BOT_AGENTS}
        self.bot_reason = {agent: bot_reason(agent) for agent in BOT_AGENTS}
        self.languages = [language for language, _ in LANGUAGES]
        self.language_cum = cumulate(weight for _, weight in LANGUAGES)
        self.first_language = {language: first_language(language) for language in self.languages}
        used: set[str] = set()

        def networks(count: int) -> list[str]:
            out = []
            while len(out) < count:
                first = rng.randint(23, 223)
                if first in (100, 127, 169, 172, 192, 198, 203):
                    continue
                prefix = f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
                if prefix not in used:
                    used.add(prefix)
                    out.append(prefix)
            return out

        self.carriers = networks(CARRIER_NETWORKS)
        self.homes = networks(max(1, visitors // 3))  # ~3 visitors (a household or two) per home /24
        self.offices = networks(max(1, visitors // 100))
        self.datacenters = networks(300)
        self.fresh_networks = networks(max(1, visitors // 10))  # for people who never clicked
        self.visitor_ids = [f"{rng.getrandbits(88):022x}" for _ in range(visitors)]
        self.agent_of = [weighted_index(rng, self.agent_cum) for _ in range(visitors)]
        self.language_of = [weighted_index(rng, self.language_cum) for _ in range(visitors)]
        self.home_of = [rng.randrange(len(self.homes)) for _ in range(visitors)]
        self.carrier_of = [rng.randrange(CARRIER_NETWORKS) for _ in range(visitors)]
        self.office_of = [rng.randrange(len(self.offices)) if rng.random() < 0.15 else -1 for _ in range(visitors)]
        self._fingerprints: dict[tuple, str] = {}

    def fingerprint(self, agent: str, language: str, network: str) -> str:
        key = (agent, language, network)
        value = self._fingerprints.get(key)
        if value is None:
            value = hashlib.sha256("\x1f".join((agent, language, ACCEPT_ENCODING, "", network)).encode()).hexdigest()
            self._fingerprints[key] = value
        return value

    def network_of(self, visitor: int) -> str:
        """The /24 prefix this visitor browses from right now."""
        agent = self.agent_of[visitor]
        roll = self.rng.random()
        if self.phone[agent] and roll < 0.5:
            return self.carriers[self.carrier_of[visitor]]
        if self.office_of[visitor] >= 0 and roll < 0.6:
            return self.offices[self.office_of[visitor]]
        return self.homes[self.home_of[visitor]]

    def signals(self, visitor: int) -> dict:
        """What a browser conversion from this visitor carries."""
        agent = self.agents[self.agent_of[visitor]]
        language = self.languages[self.language_of[visitor]]
        prefix = self.network_of(visitor)
        network = f"{prefix}.0/24"
        return {
            "ip": f"{prefix}.{self.rng.randint(1, 254)}",
            "network": network,
            "user_agent": agent,
            "accept_language": language,
            "fingerprint": self.fingerprint(agent, language, network),
        }

    def stranger_signals(self) -> dict:
        """A browser of someone who never clicked: often a popular phone on a carrier NAT."""
        rng = self.rng
        agent = self.agents[weighted_index(rng, self.agent_cum)]
        language = self.languages[weighted_index(rng, self.language_cum)]
        if self.phone[self.agents.index(agent)] and rng.random() < 0.6:
            prefix = rng.choice(self.carriers)
        else:
            prefix = rng.choice(self.fresh_networks)
        network = f"{prefix}.0/24"
        return {
            "ip": f"{prefix}.{rng.randint(1, 254)}",
            "network": network,
            "user_agent": agent,
            "accept_language": language,
            "fingerprint": self.fingerprint(agent, language, network),
        }


def reset_bench_data() -> None:
    from django.db import connection

    from allumi.accounts.models import Creator

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(BENCH_TABLES)} RESTART IDENTITY CASCADE")
    Creator.objects.filter(email=BENCH_EMAIL).delete()


def fill(args) -> None:
    """Create the creator, links, clicks and pending conversions. Prints its own timings."""
    from django.db import connection, transaction

    from allumi.accounts.models import Creator
    from attribution.models import AttributionSettings
    from links.models import Link

    rng = random.Random(args.seed)
    started = time.perf_counter()
    reset_bench_data()
    creator = Creator.objects.create_user(BENCH_EMAIL, None, name="Attribution bench")
    AttributionSettings.objects.create(creator=creator)
    links = Link.objects.bulk_create(
        [
            Link(
                creator=creator,
                short_id=f"bench-attr-{i:02d}",
                url=f"https://example.com/offer/{i}",
                title=f"Offer {i}",
            )
            for i in range(LINKS)
        ]
    )
    link_ids = [link.id for link in links]
    link_cum = cumulate(1 / (i + 1) for i in range(LINKS))  # a few links get most clicks
    print(f"fill: reset + creator + {LINKS} links: {time.perf_counter() - started:.1f} s", flush=True)

    # Visitors and their clicks.
    t0 = time.perf_counter()
    visitors = args.visitors or max(1000, min(300_000, args.clicks * 3 // 10))
    people = Population(rng, visitors)
    end = time.time() - 3600
    start = end - DAYS * 86400
    humans = round(args.clicks * 0.95)
    bots = args.clicks - humans
    # Every visitor clicks at least once; the rest of the clicks go to visitors in proportion to a
    # capped Pareto activity (most click once or twice, a few dozens of times).
    activity = cumulate(min(rng.paretovariate(2.5), 50.0) for _ in range(visitors))
    owners = list(range(min(visitors, humans))) + [
        weighted_index(rng, activity) for _ in range(humans - min(visitors, humans))
    ]
    base = [rng.uniform(start, end) for _ in range(visitors)]
    public_ids: set[str] = set()
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def new_public_id() -> str:
        while True:
            value = "c_" + "".join(rng.choices(alphabet, k=12))
            if value not in public_ids:
                public_ids.add(value)
                return value

    clicks = []  # (ts, link index, visitor or -1, agent, language, prefix, public id, visitor id, method, referrer)
    for visitor in owners:
        ts = base[visitor] + rng.expovariate(1 / (4 * 86400))
        if ts > end:
            ts = rng.uniform(base[visitor], end)
        clicks.append(
            (
                ts,
                weighted_index(rng, link_cum),
                visitor,
                people.agents[people.agent_of[visitor]],
                people.languages[people.language_of[visitor]],
                people.network_of(visitor),
                new_public_id(),
                people.visitor_ids[visitor],
                "GET",
                rng.choice(REFERRERS),
            )
        )
    for _ in range(bots):
        clicks.append(
            (
                rng.uniform(start, end),
                weighted_index(rng, link_cum),
                -1,
                rng.choice(BOT_AGENTS),
                "",
                rng.choice(people.datacenters),
                new_public_id(),
                f"{rng.getrandbits(88):022x}",
                "HEAD" if rng.random() < 0.15 else "GET",
                "",
            )
        )
    del owners
    public_ids.clear()
    clicks.sort(key=lambda row: row[0])
    print(
        f"fill: generated {len(clicks):,} clicks ({visitors:,} visitors, {bots:,} bots): {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    seen_pairs: set[tuple[int, int]] = set()

    def click_rows():
        for ts, link, visitor, agent, language, prefix, public_id, visitor_id, method, referrer in clicks:
            browser, os_name, device, model = people.parsed[agent]
            network = f"{prefix}.0/24"
            if visitor >= 0:
                is_bot, reason = False, ""
                unique = (visitor, link) not in seen_pairs
                seen_pairs.add((visitor, link))
                fingerprint = people.fingerprint(agent, language, network)
            else:
                reason = "head_request" if method == "HEAD" else (people.bot_reason[agent] or "crawler")
                is_bot, unique = True, False
                device = device if reason == "head_request" else "bot"
                fingerprint = people.fingerprint(agent, language, network)
            yield (
                public_id,
                link_ids[link],
                creator.id,
                iso(ts),
                method,
                f"{prefix}.{ord(public_id[-1]) * 3 % 254 + 1}",
                network,
                agent,
                browser,
                os_name,
                device,
                model,
                language,
                people.first_language.get(language, ""),
                referrer,
                referrer.split("/")[2].removeprefix("www.") if referrer else "",
                "",
                "",
                "",
                "",
                "",
                visitor_id,
                fingerprint,
                COUNTRIES[visitor % len(COUNTRIES)] if visitor >= 0 else "US",
                is_bot,
                reason,
                unique,
            )

    t0 = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO off")
        copied = copy_rows("attribution_click", CLICK_COLUMNS, click_rows())
    copy_seconds = time.perf_counter() - t0
    print(f"fill: COPY {copied:,} clicks: {copy_seconds:.1f} s ({copied / copy_seconds:,.0f} rows/s)", flush=True)
    seen_pairs.clear()

    # Conversions, always after the clicks that lead to them.
    t0 = time.perf_counter()
    human_rows = [row for row in clicks if row[2] >= 0]
    clicks.clear()
    gc.collect()
    count = args.conversions
    n_click, n_cookie, n_email = int(count * 0.40), int(count * 0.30), int(count * 0.15)
    n_nobody = count - n_click - n_cookie - n_email
    conversions = []  # (ts, kind, email, click id, visitor id, whop user, signals, event, amount, source)
    emails: list[tuple[float, str, int]] = []
    no_signals = {"ip": None, "network": "", "user_agent": "", "accept_language": "", "fingerprint": ""}

    def later(ts: float, mean_days: float) -> float:
        return min(ts + rng.expovariate(1 / (mean_days * 86400)), end)

    def amount() -> str:
        return rng.choice(["9.00", "19.00", "29.00", "49.00", "99.00", "199.00"])

    for _ in range(n_click):  # (a) names a real click id
        ts, _, visitor, *_rest = row = rng.choice(human_rows)
        browser = rng.random() < 0.8  # else the creator's server stored the click id and sends it
        conversions.append(
            (
                later(ts, 1.5),
                "a",
                "",
                row[6],
                people.visitor_ids[visitor] if browser and rng.random() < 0.5 else "",
                "",
                people.signals(visitor) if browser else no_signals,
                "purchase",
                amount(),
                "track",
            )
        )
    for _ in range(n_cookie):  # (b) the clicker's cookie, often with the email they sign up with
        ts, _, visitor, *_rest = rng.choice(human_rows)
        when = later(ts, 2)
        email = f"u{visitor}@example.com" if rng.random() < 0.5 else ""
        if email:
            emails.append((when, email, visitor))
        signup = bool(email) and rng.random() < 0.5
        conversions.append(
            (
                when,
                "b",
                email,
                "",
                people.visitor_ids[visitor],
                "",
                people.signals(visitor),
                "signup" if signup else "purchase",
                None if signup else amount(),
                "track",
            )
        )
    for _ in range(n_email):  # (c) only an email seen earlier with a cookie (server side, Whop)
        when, email, visitor = rng.choice(emails)
        conversions.append(
            (
                later(when, 3),
                "c",
                email,
                "",
                "",
                f"user_{visitor}" if rng.random() < 0.5 else "",
                no_signals,
                "purchase",
                amount(),
                "whop",
            )
        )
    for k in range(n_nobody):  # (d) nobody who clicked: browser signals, sometimes a fresh email
        browser = rng.random() < 0.7
        conversions.append(
            (
                rng.uniform(start, end),
                "d",
                f"n{k}@example.net" if (not browser or rng.random() < 0.5) else "",
                "",
                "",
                "",
                people.stranger_signals() if browser else no_signals,
                "purchase",
                amount(),
                "track",
            )
        )
    del human_rows
    conversions.sort(key=lambda row: row[0])
    now = iso(time.time())

    def conversion_rows():
        for number, (ts, _kind, email, click_id, visitor_id, whop_user, signals, event, value, source) in enumerate(
            conversions
        ):
            yield (
                creator.id,
                f"ord_{number:07d}" if value is not None else None,
                event,
                source,
                "pending",
                value,
                "0",
                "USD",
                iso(ts),
                email,
                click_id,
                visitor_id,
                whop_user,
                signals["ip"],
                signals["network"],
                signals["user_agent"],
                signals["accept_language"],
                signals["fingerprint"],
                "{}",
                None,
                None,
                "{}",
                None,
                now,
            )

    with transaction.atomic():
        copied = copy_rows("attribution_conversion", CONVERSION_COLUMNS, conversion_rows())
    kinds = Counter(row[1] for row in conversions)
    print(
        f"fill: COPY {copied:,} conversions (a click id {kinds['a']:,}, b cookie {kinds['b']:,}, c email {kinds['c']:,}, "
        f"d nobody {kinds['d']:,}): {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE attribution_click")
        cursor.execute("VACUUM ANALYZE attribution_conversion")
        cursor.execute("ANALYZE links_link")
    print(f"fill: VACUUM ANALYZE: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"fill: total {time.perf_counter() - started:.1f} s, fill process peak RSS {maxrss_mb():.0f} MB", flush=True)


# --- measuring ------------------------------------------------------------------------------


class LateEvidence:
    """Stands in for conversions_enqueue_attribution: counts, does not run, re-attributions."""

    def __init__(self):
        self.calls = 0
        self.conversions = 0

    def __call__(self, conversion_ids):
        self.calls += 1
        self.conversions += len(conversion_ids)


def path_of(conversion) -> str:
    evidence = conversion.evidence or {}
    if evidence.get("method"):
        return evidence["method"]
    if evidence.get("rejected"):
        return "probabilistic_rejected"
    if conversion.network:
        return "probabilistic_no_match"
    return "no_signals"


_LITERALS = [
    (re.compile(r"'(?:[^']|'')*'"), "?"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "?"),
    (re.compile(r"\((?:\s*\?\s*,)+\s*\?\s*\)"), "(?, ...)"),
    (re.compile(r"\s+"), " "),
]


def sql_template(sql: str) -> str:
    for pattern, replacement in _LITERALS:
        sql = pattern.sub(replacement, sql)
    return sql.strip()


class QueryTimer:
    """An execute wrapper (and a commit wrapper) timing every statement with perf_counter."""

    def __init__(self):
        self.stats: dict[str, list] = {}
        self._templates: dict[str, str] = {}
        self.queries = 0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self._add(sql, time.perf_counter() - started)

    def _add(self, sql: str, seconds: float) -> None:
        template = self._templates.get(sql)
        if template is None:
            template = sql_template(sql.replace("%s", "?"))
            if len(self._templates) < 10_000:
                self._templates[sql] = template
        entry = self.stats.setdefault(template, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += seconds
        entry[2] = max(entry[2], seconds)
        self.queries += 1

    @contextlib.contextmanager
    def installed(self):
        from django.db import connection, connections

        wrapper = connections["default"]
        original = wrapper._commit

        def timed_commit():
            started = time.perf_counter()
            try:
                return original()
            finally:
                self._add("COMMIT", time.perf_counter() - started)

        wrapper._commit = timed_commit
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            del wrapper._commit

    def report(self, *, calls: int, top: int = 12) -> None:
        total = sum(entry[1] for entry in self.stats.values())
        print(
            f"{self.queries:,} statements, {total:,.1f} s in the database driver ({total / max(calls, 1) * 1000:.2f} ms and "
            f"{self.queries / max(calls, 1):.1f} statements per conversion); top by total time:"
        )
        print(f"  {'count':>8} {'total s':>9} {'share':>6} {'avg ms':>8} {'max ms':>8}  statement")
        for sql, (count, seconds, worst) in sorted(self.stats.items(), key=lambda item: -item[1][1])[:top]:
            print(
                f"  {count:>8,} {seconds:>9.2f} {seconds / total * 100 if total else 0:>5.1f}% {seconds / count * 1000:>8.2f} "
                f"{worst * 1000:>8.1f}  {sql[:200]}"
            )


class PathTimer:
    """Wraps conversion_attribute (as recompute_run calls it) to add up time per evidence path."""

    def __init__(self, function):
        self.function = function
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: Counter = Counter()
        self.cpu = 0.0

    def __call__(self, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        conversion = self.function(**kwargs)
        path = path_of(conversion)
        self.seconds[path] += time.perf_counter() - started
        self.cpu += time.process_time() - cpu
        self.counts[path] += 1
        return conversion

    def report(self) -> None:
        total = sum(self.seconds.values())
        calls = sum(self.counts.values())
        print(
            f"time by evidence path ({calls:,} calls, {total:,.1f} s; Python CPU {self.cpu:,.1f} s = "
            f"{self.cpu / max(total, 1e-9) * 100:.0f}%, the rest waiting for PostgreSQL):"
        )
        for path, seconds in sorted(self.seconds.items(), key=lambda item: -item[1]):
            count = self.counts[path]
            print(
                f"  {path:<26}{count:>8,} conversions {seconds:>9.1f} s ({seconds / total * 100:>4.1f}%) "
                f"{seconds / count * 1000:>8.1f} ms each"
            )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


ATTRIBUTION_TABLES = (
    "attribution_conversion", "attribution_credit", "attribution_creditledger",
    "attribution_identity", "attribution_identifier", "attribution_identitymerge",
)


def vacuum_after_first_pass() -> None:
    """The first pass rewrites every conversion row and adds credits, identities and identifiers.
    PostgreSQL's autovacuum would clean and analyze those tables as production runs; where the
    server has it switched off, do once what it would do, so the figures below are of a steady
    state rather than of half-dead tables with statistics from before any attribution."""
    t0 = time.perf_counter()
    if not autovacuum_stand_in(ATTRIBUTION_TABLES, vacuum=True):
        return
    print(f"autovacuum is off on this server: VACUUM ANALYZE of the attribution tables, as it would: {time.perf_counter() - t0:.1f} s")


def first_pass(args, creator_id: int) -> dict:
    from attribution.conversions import conversion_attribute
    from attribution.models import Conversion

    ids = list(
        Conversion.objects.filter(creator_id=creator_id, status=Conversion.Status.PENDING)
        .order_by("id")
        .values_list("id", flat=True)
    )
    result = {"pending": len(ids), "done": 0, "seconds": 0.0, "cut": False}
    if not ids:
        print("nothing pending: first pass skipped (--reuse of attributed data)")
        return result
    print(
        f"attributing {len(ids):,} pending conversions, oldest first (budget {args.first_pass_budget:.0f} s)",
        flush=True,
    )
    started = time.perf_counter()
    last_report = started
    analyzing = 0.0
    for done, conversion_id in enumerate(ids, 1):
        conversion_attribute(conversion_id=conversion_id)
        if done % 1000 == 0:
            # Statistics from before the creator's identifiers existed made resolving a conversion
            # read all of them (59 ms at 85,000): analyze as autovacuum would while the tables fill.
            analyze_started = time.perf_counter()
            autovacuum_stand_in(ATTRIBUTION_TABLES)
            analyzing += time.perf_counter() - analyze_started
        if done % 200 == 0:
            now = time.perf_counter()
            elapsed = now - started
            if now - last_report >= 30:
                last_report = now
                rate = done / elapsed
                print(
                    f"  {done:,}/{len(ids):,} in {elapsed:.0f} s ({rate:,.1f}/s, projected total {len(ids) / rate:,.0f} s),"
                    f" RSS {rss_mb():.0f} MB",
                    flush=True,
                )
            if elapsed > args.first_pass_budget and done < len(ids):
                result["cut"] = True
                result["done"] = done
                break
    else:
        result["done"] = len(ids)
    result["seconds"] = time.perf_counter() - started
    if analyzing:
        print(f"  autovacuum is off on this server: ANALYZE as it would, every 1,000 conversions: {analyzing:.1f} s of the pass")
    return result


def measure_sample(args, creator_id: int, rng: random.Random) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from attribution.conversions import conversion_attribute
    from attribution.models import Conversion

    rows = list(Conversion.objects.filter(creator_id=creator_id).values_list("id", "status"))
    pending = {conversion_id for conversion_id, status in rows if status == Conversion.Status.PENDING}
    candidates = [conversion_id for conversion_id, _ in rows]
    sample = rng.sample(candidates, min(args.sample, len(candidates)))
    chosen = set(sample)
    warm = [
        conversion_id
        for conversion_id in rng.sample(candidates, min(50, len(candidates)))
        if conversion_id not in chosen
    ][:5]
    for conversion_id in warm:  # warm caches and the connection
        conversion_attribute(conversion_id=conversion_id)
    timings: list[float] = []
    cpu: list[float] = []
    by_path: dict[str, list[float]] = defaultdict(list)
    path_ids: dict[str, list[int]] = defaultdict(list)
    first_time: list[float] = []
    for conversion_id in sample:
        t0, c0 = time.perf_counter(), time.process_time()
        conversion = conversion_attribute(conversion_id=conversion_id)
        elapsed = (time.perf_counter() - t0) * 1000
        cpu.append((time.process_time() - c0) * 1000)
        timings.append(elapsed)
        if conversion_id in pending:
            first_time.append(elapsed)
        path = path_of(conversion)
        by_path[path].append(elapsed)
        path_ids[path].append(conversion_id)

    # Queries: a second call on up to 10 conversions of every path, each captured on its own.
    timer = QueryTimer()
    queries_by_path: dict[str, list[int]] = defaultdict(list)
    db_ms_by_path: dict[str, list[float]] = defaultdict(list)
    captured: dict[str, list[dict]] = {}
    calls = 0
    with timer.installed():
        for path, ids in path_ids.items():
            for conversion_id in ids[:10]:
                before = sum(entry[1] for entry in timer.stats.values())
                with CaptureQueriesContext(connection) as context:
                    conversion_attribute(conversion_id=conversion_id)
                calls += 1
                queries = [q for q in context.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
                queries_by_path[path].append(len(queries))
                db_ms_by_path[path].append((sum(entry[1] for entry in timer.stats.values()) - before) * 1000)
                captured.setdefault(path, context.captured_queries)
    return {
        "timings": timings,
        "cpu": cpu,
        "first_time": first_time,
        "by_path": by_path,
        "queries_by_path": queries_by_path,
        "db_ms_by_path": db_ms_by_path,
        "timer": timer,
        "calls": calls,
        "captured": captured,
    }


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def explain_slowest(captured: list[dict], *, top: int) -> None:
    selects = [
        q for q in captured if q["sql"].lstrip().upper().startswith("SELECT") and "FOR UPDATE" not in q["sql"].upper()
    ]
    for query in sorted(selects, key=lambda q: float(q["time"]), reverse=True)[:top]:
        sql = query["sql"]
        print(f"\n-- {float(query['time']) * 1000:.2f} ms when captured: {sql[:600]}{' ...' if len(sql) > 600 else ''}")
        print(explain(sql))


def partial_recompute_tracemalloc(args, creator_id: int) -> tuple[int, float, float]:
    """(conversions, seconds, tracemalloc peak MB) of the first chunks of a recompute."""
    from django.utils import timezone

    from attribution.conversions import recompute_run
    from attribution.models import Conversion, Recompute

    class Enough(Exception):
        pass

    chunks = {"n": 0}

    def stop_after(recompute):
        chunks["n"] += 1
        if chunks["n"] >= args.tracemalloc_chunks:
            raise Enough

    recompute = Recompute.objects.create(
        creator_id=creator_id, total=Conversion.objects.filter(creator_id=creator_id).count()
    )
    tracemalloc.start()
    started = time.perf_counter()
    with contextlib.suppress(Enough):
        recompute_run(recompute_id=recompute.id, chunk=args.chunk, on_progress=stop_after)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    recompute.refresh_from_db()
    Recompute.objects.filter(pk=recompute.pk).update(finished_at=timezone.now())
    return recompute.done, seconds, peak / 1024 / 1024


def full_recompute(args, creator_id: int) -> dict:
    from attribution.conversions import recompute_run
    from attribution.models import Conversion, Recompute

    total = Conversion.objects.filter(creator_id=creator_id).count()
    recompute = Recompute.objects.create(creator_id=creator_id, total=total)
    gc.collect()
    rss_before = rss_mb()
    samples: list[tuple[int, float]] = []
    started = time.perf_counter()
    state = {"last": started}

    def on_progress(progress):
        samples.append((progress.done, rss_mb()))
        now = time.perf_counter()
        if now - state["last"] >= 30 or progress.finished_at is not None:
            state["last"] = now
            elapsed = now - started
            rate = progress.done / elapsed if elapsed else 0
            print(
                f"  {progress.done:,}/{total:,} in {elapsed:.0f} s ({rate:,.1f}/s"
                + (f", projected total {total / rate:,.0f} s" if rate else "")
                + f"), RSS {samples[-1][1]:.0f} MB",
                flush=True,
            )

    import attribution.conversions as conversions_module

    paths = PathTimer(conversions_module.conversion_attribute)
    timer = QueryTimer()
    conversions_module.conversion_attribute = paths
    try:
        with timer.installed():
            recompute_run(recompute_id=recompute.id, chunk=args.chunk, on_progress=on_progress)
    finally:
        conversions_module.conversion_attribute = paths.function
    seconds = time.perf_counter() - started
    return {
        "total": total,
        "seconds": seconds,
        "rss_before": rss_before,
        "samples": samples,
        "paths": paths,
        "timer": timer,
    }


def command_recompute(args) -> None:
    time_binary = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "recompute_attribution",
        "--creator",
        BENCH_EMAIL,
        "--chunk",
        str(args.chunk),
    ]
    if time_binary:
        command = [time_binary, "-v", *command]
    env = bench_environment(args)
    print("$ " + " ".join(["time -v" if time_binary else ""] + command[2 if time_binary else 0 :]).strip(), flush=True)
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    last = completed.stdout.replace("\r", "\n").strip().splitlines()
    print("\n".join(line for line in last[-3:] if line.strip()))
    print(f"exit status {completed.returncode}, {seconds:.1f} s wall")
    for line in completed.stderr.splitlines():
        if any(
            key in line
            for key in (
                "Maximum resident set size",
                "Elapsed (wall clock)",
                "User time",
                "System time",
                "Percent of CPU",
            )
        ):
            print("  " + line.strip())
    if completed.returncode != 0:
        print(completed.stderr[-2000:])


def profile_slow_path(args, creator_id: int, rng: random.Random) -> None:
    from attribution.conversions import conversion_attribute
    from attribution.models import Conversion

    # The probabilistic path: browser signals and no deterministic journey.
    slow = Conversion.objects.filter(creator_id=creator_id).exclude(network="")
    slow = slow.filter(status=Conversion.Status.UNATTRIBUTED) | slow.filter(confidence__lte=80)
    ids = list(slow.values_list("id", flat=True))
    if not ids:
        print("no probabilistic-path conversions to profile")
        return
    ids = rng.sample(ids, min(args.profile, len(ids)))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for conversion_id in ids:
        conversion_attribute(conversion_id=conversion_id)
    profiler.disable()
    seconds = time.perf_counter() - started
    print(
        f"{len(ids)} probabilistic-path conversions (network signals, unattributed or confidence <= 80): "
        f"{seconds:.1f} s, {seconds / len(ids) * 1000:.1f} ms each under the profiler"
    )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(15)
    text = out.getvalue()
    print(text[text.find("   ncalls") :] if "   ncalls" in text else text)


# --- main -----------------------------------------------------------------------------------


def database_facts(creator_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'), current_setting('work_mem'),"
            " current_setting('random_page_cost'), current_setting('effective_cache_size')"
        )
        version, shared_buffers, work_mem, random_page_cost, cache_size = cursor.fetchone()
        print(
            f"PostgreSQL {version}: shared_buffers {shared_buffers}, work_mem {work_mem}, random_page_cost {random_page_cost},"
            f" effective_cache_size {cache_size}; {os.cpu_count()} CPUs"
        )
        cursor.execute(
            "SELECT relname, pg_size_pretty(pg_table_size(oid)), pg_size_pretty(pg_indexes_size(oid)) FROM pg_class "
            "WHERE relname IN ('attribution_click', 'attribution_conversion', 'attribution_identifier', 'attribution_credit') "
            "ORDER BY relname"
        )
        print(
            "sizes (table / indexes): "
            + ", ".join(f"{name} {table} / {indexes}" for name, table, indexes in cursor.fetchall())
        )


def code_version() -> str:
    """The commit measured, and whether the attribution code differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "attribution"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    changed = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
    return f"code: commit {head.stdout.strip()}" + (f", uncommitted changes in {', '.join(changed)}" if changed else "")


def data_present(args) -> tuple[int | None, int, int]:
    from allumi.accounts.models import Creator
    from attribution.models import Click, Conversion

    creator = Creator.objects.filter(email=BENCH_EMAIL).first()
    if creator is None:
        return None, 0, 0
    return creator.id, Click.objects.filter(creator=creator).count(), Conversion.objects.filter(creator=creator).count()


def run(args) -> int:
    overall = time.perf_counter()
    setup_django(args, migrate=True)
    from django.db.models import Count

    import attribution.conversions as conversions_module
    from attribution.models import Conversion, Identifier, Identity

    creator_id, clicks, conversions = data_present(args)
    section("setup")
    if args.reuse and creator_id and clicks == args.clicks and conversions == args.conversions:
        print(f"--reuse: the bench creator already has {clicks:,} clicks and {conversions:,} conversions")
    else:
        if args.reuse:
            print(f"--reuse: found {clicks:,} clicks / {conversions:,} conversions, not the requested ones: filling")
        started = time.perf_counter()
        child = [sys.executable, str(Path(__file__).resolve()), "--fill-only", *sys.argv[1:]]
        completed = subprocess.run(child, env=bench_environment(args), cwd=ROOT, check=False)
        if completed.returncode != 0:
            print("fill failed", file=sys.stderr)
            return 2
        print(f"fill (child process): {time.perf_counter() - started:.1f} s wall")
        creator_id, clicks, conversions = data_present(args)
    database_facts(creator_id)
    print(code_version())
    print(load())

    # Late evidence re-attributes an identity's other conversions through Celery, which runs them
    # inline without Redis: count them instead, so each timing is one attribution.
    late = LateEvidence()
    conversions_module.conversions_enqueue_attribution = late
    rng = random.Random(args.seed + 1)

    section("first attribution pass")
    first = first_pass(args, creator_id)
    if first["done"]:
        rate = first["done"] / first["seconds"]
        print(
            f"first pass: {first['done']:,} conversions in {first['seconds']:.1f} s = {rate:,.1f} conversions/s "
            f"({first['seconds'] / first['done'] * 1000:.1f} ms each; {load()})"
        )
        if first["cut"]:
            print(
                f"  STOPPED after the {args.first_pass_budget:.0f} s budget: {first['pending'] - first['done']:,} conversions "
                f"left pending (projected full pass {first['pending'] / rate:,.0f} s); the recompute below attributes "
                "them for the first time"
            )
        print(
            f"  late evidence would enqueue {late.conversions:,} re-attributions ({late.calls:,} enqueues), not run here"
        )
    vacuum_after_first_pass()
    statuses = dict(Conversion.objects.filter(creator_id=creator_id).values_list("status").annotate(n=Count("id")))
    print(
        f"statuses: {statuses}; identities {Identity.objects.filter(creator_id=creator_id).count():,}, "
        f"identifiers {Identifier.objects.filter(creator_id=creator_id).count():,}"
    )
    methods = Counter(
        (evidence or {}).get("method") or ("rejected" if (evidence or {}).get("rejected") else "-")
        for evidence in Conversion.objects.filter(creator_id=creator_id)
        .values_list("evidence", flat=True)
        .iterator(chunk_size=5000)
    )
    print("evidence methods: " + ", ".join(f"{name} {n:,}" for name, n in methods.most_common()))

    median = float("nan")
    if args.sample:
        section(f"single-conversion attribution latency ({args.sample} random conversions)")
        measured = measure_sample(args, creator_id, rng)
        timings = measured["timings"]
        median = statistics.median(timings)
        print(
            f"all: n={len(timings)} median {median:.1f} ms, p95 {percentile(timings, 0.95):.1f} ms, "
            f"p99 {percentile(timings, 0.99):.1f} ms, max {max(timings):.1f} ms, mean {statistics.fmean(timings):.1f} ms; "
            f"Python CPU median {statistics.median(measured['cpu']):.1f} ms per call ({load()})"
        )
        if measured["first_time"]:
            values = measured["first_time"]
            print(
                f"  of which {len(values)} were still pending (first attribution): median {statistics.median(values):.1f} ms, "
                f"p95 {percentile(values, 0.95):.1f} ms"
            )
        print(f"{'path':<26}{'n':>5}{'median':>10}{'p95':>10}{'max':>10}{'queries':>9}{'db ms':>9}")
        for path, values in sorted(measured["by_path"].items(), key=lambda item: -len(item[1])):
            queries = measured["queries_by_path"].get(path) or [0]
            db_ms = measured["db_ms_by_path"].get(path) or [0]
            print(
                f"{path:<26}{len(values):>5}{statistics.median(values):>8.1f}ms{percentile(values, 0.95):>8.1f}ms"
                f"{max(values):>8.1f}ms{statistics.median(queries):>9.0f}{statistics.median(db_ms):>9.1f}"
            )
        print(
            "(queries: SQL statements per call without BEGIN/COMMIT, CaptureQueriesContext; db ms: time in the driver"
            " incl. COMMIT; both the median of a second call on up to 10 conversions of each path)"
        )
        print()
        measured["timer"].report(calls=measured["calls"])

        section("EXPLAIN ANALYZE of the slowest statements")
        deterministic = next(
            (p for p in ("visitor_cookie", "linked_identity", "click_id") if p in measured["captured"]), None
        )
        if deterministic:
            print(f"## a deterministic attribution ({deterministic}): its journey query")
            journey = [
                q
                for q in measured["captured"][deterministic]
                if q["sql"].startswith("SELECT")
                and 'FROM "attribution_click"' in q["sql"]
                and '"visitor_id" IN' in q["sql"]
            ]
            explain_slowest(journey, top=1)
        probabilistic = next(
            (
                p
                for p in ("probabilistic_rejected", "fingerprint", "network_device_language", "probabilistic_no_match")
                if p in measured["captured"]
            ),
            None,
        )
        if probabilistic:
            print(f"\n## a probabilistic attribution ({probabilistic}): its three slowest statements")
            explain_slowest(measured["captured"][probabilistic], top=3)

    recompute = None
    if args.recompute:
        section("recompute")
        if args.tracemalloc_chunks:
            done, seconds, peak = partial_recompute_tracemalloc(args, creator_id)
            print(
                f"tracemalloc over the first {done:,} conversions of a recompute ({args.tracemalloc_chunks} chunks of "
                f"{args.chunk}): Python heap peak {peak:.1f} MB ({seconds:.1f} s with tracing on)"
            )
        print(f"full recompute_run(chunk={args.chunk}) in-process:", flush=True)
        recompute = full_recompute(args, creator_id)
        samples = recompute["samples"]
        rate = recompute["total"] / recompute["seconds"]
        print(
            f"recompute: {recompute['total']:,} conversions in {recompute['seconds']:.1f} s = {rate:,.1f} conversions/s ({load()})"
        )
        first_rss = samples[0][1] if samples else recompute["rss_before"]
        peak_rss = max((rss for _, rss in samples), default=first_rss)
        recompute["growth"] = peak_rss - first_rss
        recompute["maxrss"] = maxrss_mb()
        print(
            f"RSS: {recompute['rss_before']:.0f} MB before, {first_rss:.0f} MB after the first chunk, max {peak_rss:.0f} MB "
            f"during, {samples[-1][1] if samples else 0:.0f} MB at the end; getrusage peak of this process "
            f"{recompute['maxrss']:.0f} MB (the fill ran in a child: {maxrss_mb(resource.RUSAGE_CHILDREN):.0f} MB)"
        )
        if len(samples) >= 4:
            quarter = [samples[len(samples) * i // 4] for i in range(4)] + [samples[-1]]
            print("RSS by progress: " + ", ".join(f"{done:,}: {rss:.0f} MB" for done, rss in quarter))
        print(
            f"late evidence enqueues so far (first pass, sample, recompute): {late.conversions:,} conversions in total"
        )
        recompute["paths"].report()
        recompute["timer"].report(calls=recompute["total"])

    if args.command_recompute:
        section("recompute_attribution command under /usr/bin/time -v")
        command_recompute(args)

    if args.profile:
        section(f"cProfile: {args.profile} conversions on the slow path (top 15 by cumulative time)")
        profile_slow_path(args, creator_id, rng)

    section("targets")
    results = []
    if args.sample:
        ok = median <= TARGET_MEDIAN_MS and clicks >= TARGET_MIN_CLICKS
        note = (
            ""
            if clicks >= TARGET_MIN_CLICKS
            else f" (only {clicks:,} clicks: the target needs >= {TARGET_MIN_CLICKS:,})"
        )
        results.append(ok)
        print(
            f"[{'PASS' if ok else 'FAIL'}] single attribution median {median:.1f} ms <= {TARGET_MEDIAN_MS:.0f} ms "
            f"with {clicks:,} clicks{note}"
        )
    if recompute:
        projected = recompute["seconds"] / recompute["total"] * TARGET_RECOMPUTE_PER
        ok = projected <= TARGET_RECOMPUTE_S
        results.append(ok)
        scale = (
            ""
            if recompute["total"] == TARGET_RECOMPUTE_PER
            else f" (scaled from {recompute['total']:,} in {recompute['seconds']:.1f} s)"
        )
        print(
            f"[{'PASS' if ok else 'FAIL'}] recompute of {TARGET_RECOMPUTE_PER:,} conversions {projected:,.1f} s <= "
            f"{TARGET_RECOMPUTE_S:.0f} s on {os.cpu_count()} cores{scale}"
        )
        ok = recompute["growth"] <= TARGET_RSS_GROWTH_MB and recompute["maxrss"] <= TARGET_RSS_PEAK_MB
        results.append(ok)
        print(
            f"[{'PASS' if ok else 'FAIL'}] recompute memory bounded: RSS grew {recompute['growth']:.0f} MB after the first "
            f"chunk (<= {TARGET_RSS_GROWTH_MB:.0f}), process peak {recompute['maxrss']:.0f} MB (<= {TARGET_RSS_PEAK_MB:.0f})"
        )
    if first["done"] and first["cut"]:
        print(f"note: the first pass covered {first['done']:,} of {first['pending']:,} conversions (time budget)")
    print(f"\nbenchmark wall time {time.perf_counter() - overall:,.0f} s")
    return 3 if args.strict and not all(results) else 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clicks", type=int, default=1_000_000)
    parser.add_argument("--conversions", type=int, default=100_000)
    parser.add_argument(
        "--visitors", type=int, default=0, help="visitor pool (default: 30%% of clicks, at most 300,000)"
    )
    parser.add_argument("--sample", type=int, default=300, help="conversions timed one by one (0: skip)")
    parser.add_argument("--reuse", action="store_true", help="keep the data when the counts match")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=500, help="recompute chunk size")
    parser.add_argument(
        "--first-pass-budget", type=float, default=900.0, help="seconds before the first pass stops early"
    )
    parser.add_argument("--recompute", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--tracemalloc-chunks", type=int, default=2, help="chunks of a recompute measured with tracemalloc (0: skip)"
    )
    parser.add_argument(
        "--command-recompute", action="store_true", help="also run manage.py recompute_attribution under time -v"
    )
    parser.add_argument("--profile", type=int, default=200, help="slow-path conversions under cProfile (0: skip)")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--fill-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.fill_only:
        setup_django(args, migrate=False)
        fill(args)
        return 0
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
