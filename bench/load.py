"""Mixed load test: redirects, track calls, Whop webhooks and dashboard pages at once, end to end.

    .venv/bin/python bench/load.py [--duration 60] [--users 30] [--spawn-rate 10]

What it does, all on loopback (the approach of bench/redirect.py and bench/webhooks.py, whose
helpers it reuses):

1. Production settings (DEBUG=false, a generated SECRET_KEY, no SSL redirect, no rate limits,
   bench.settings) on its own PostgreSQL database (created if missing, migrated, flushed) and
   Redis database (flushed). TRUSTED_PROXIES=127.0.0.1/32: the load generator plays the TLS proxy
   in front of Allumi and passes `X-Forwarded-For` (varied client addresses) and
   `X-Forwarded-Proto: https` (secure cookies, Django's HTTPS CSRF checks), as in production.
2. A creator from `manage.py create_creator --json`, then 200 links through the REST API.
3. A Celery worker with beat (`celery -A allumi worker --beat`, as `make run` starts it) and
   gunicorn with `--config gunicorn.conf.py` on a free port of 127.0.0.1.
4. Locust, headless, for `--duration` seconds (bench/locustfile.py), in its own process (it
   monkey-patches with gevent). Traffic users, 2 requests/s each as Poisson arrivals (independent
   visitors, not users firing in step): 80:10:5 `GET /l/<id>` (not followed; varied user agents,
   link-preview bots included, some returning visitors with their cookie) : `POST
   /api/v1/conversions/track` (secret key, unique external_id, email, now and then a click id) :
   Whop `payment.succeeded` deliveries (the shared sample with fresh ids and times, signed with
   Standard Webhooks). Creator users, one per 15 users, each logged in once through the form
   (CSRF), browse the overview, links and conversions pages at the pace that makes them 5% of
   all requests (the mix: 80% redirects, 10% track, 5% webhooks, 5% pages). Few creators on
   purpose: a log-in costs a quarter of a CPU second (PBKDF2) and holds a sync worker meanwhile;
   one per user would be a log-in storm that no real site sees.
5. Per endpoint: requests, requests/s, p50/p95/p99/max (exact, from every request's time as
   Locust measured it; Locust's own CSV files stay in the log folder), 5xx and other errors (4xx,
   no answer, a wrong answer such as a 2xx without an id). Then it waits for the click buffer to
   drain and Celery to settle (queue empty, no task unacknowledged, no conversion pending, every
   Whop event processed) and checks that every redirect answered 302 has its click stored, every
   track call answered 2xx its conversion, every webhook answered 2xx its event processed and its
   payment's conversion.

Production pages need collectstatic's manifest: it is written (manifest only, no compressed
copies) into the run's temporary folder, never into the checkout.

Targets: no 5xx, redirect p95 under 200 ms, nothing lost. Exit status 0 when all are met, 1 when
one is missed, 2 when the test could not run.

Default load, 30 users (28 Traffic + 2 Creator: 59 requests/s offered), chosen by measuring on a
2-core machine that runs gunicorn (4 sync workers), the Celery worker (2 processes, with beat),
PostgreSQL, Redis and Locust together. In a 60 s run the stack used about half of the machine
(CPU seconds of 122: gunicorn 21, Celery 17, PostgreSQL 19, Locust 6), 58.3 requests/s were
answered (the spawn takes the first seconds), the redirect's p50 was 6 ms, p95 45 ms and p99
163 ms, and Celery had attributed everything by the time Locust exited: the server keeps up,
with room for bursts.
Per request the redirect is cheap (a few milliseconds); the mix is not: a dashboard page costs
50-200 ms, a track call 20-30 ms plus its attribution in Celery. At 45 users (88 requests/s
offered) the cores saturate: only 75/s were answered and the redirect's p95 rose to 450 ms,
which measures the queue, not the application. On a bigger machine raise `--users`. When other
processes or other databases of the same PostgreSQL load the machine, the report says so and
the latencies are pessimistic.
"""

import argparse
import contextlib
import http.client
import importlib.util
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/load.py`: import from the project root, not from bench/.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.redirect import (  # noqa: E402 (after the path fix)
    BenchError,
    Children,
    CpuMeter,
    _on_sigterm,
    bench_environment,
    check_loopback,
    ensure_database,
    flush_redis,
    free_port,
    tail,
    wait_for_line,
    wait_healthy,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/allumi_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/6"
EMAIL = "bench-load@allumi.invalid"
LINKS = 200
PACE = 2.0  # requests per second of each Traffic user
DASHBOARD_SHARE = 0.05  # of all requests
TARGET_REDIRECT_P95_MS = 200.0
SETTLE_TIMEOUT = 300.0
SOURCES = ["instagram", "tiktok", "youtube", "newsletter", "x", "facebook"]


def api(port: int, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "X-Forwarded-Proto": "https"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        content = response.read()
        try:
            return response.status, json.loads(content)
        except ValueError:
            return response.status, {"raw": content[:300].decode(errors="replace")}
    finally:
        conn.close()


def migrate(database_url: str) -> None:
    """Migrate the test's own database; one migrated by another branch's history is made again."""
    import dj_database_url
    import psycopg
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.exceptions import InconsistentMigrationHistory
    from psycopg import sql

    try:
        call_command("migrate", interactive=False, verbosity=0)
    except InconsistentMigrationHistory as error:
        print(f"recreating the load test's database: {error}")
        connection.close()
        config = dj_database_url.parse(database_url)
        with psycopg.connect(host=config.get("HOST") or "127.0.0.1", port=config.get("PORT") or 5432, user=config.get("USER") or "postgres",
                             password=config.get("PASSWORD") or None, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(config["NAME"])))
        ensure_database(database_url)
        call_command("migrate", interactive=False, verbosity=0)


def provision(env: dict, password: str, whop_secret: str) -> dict:
    proc = subprocess.run(
        # --name=value: a generated password may start with "-".
        [sys.executable, "manage.py", "create_creator", f"--email={EMAIL}", f"--password={password}",
         f"--whop-secret={whop_secret}", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    try:
        creds = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"create_creator exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}") from None
    return creds


def create_links(port: int, key: str) -> list[str]:
    short_ids = []
    for number in range(LINKS):
        source = SOURCES[number % len(SOURCES)]
        status, body = api(port, "POST", "/api/v1/links", key, {
            "url": f"https://creator.example/offers/{number}?ref=bio#buy", "title": f"{source} post {number}",
            "utm_source": source, "utm_medium": "social", "utm_campaign": f"load-{number % 12}",
        })
        if status != 201:
            raise BenchError(f"POST /api/v1/links answered {status}: {body}")
        short_ids.append(body["short_id"])
    return short_ids


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank: the smallest value with at least pct% of the values at or below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


class OtherDatabases:
    """Samples pg_stat_activity during the run: PostgreSQL's CPU is shared with every database on
    the server, and another one's queries make this test's figures pessimistic."""

    def __init__(self):
        self.samples = self.busy = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from django.db import connection

        with connection.cursor() as cursor:
            while not self._stop.wait(0.2):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname <> current_database()")
                self.samples, self.busy = self.samples + 1, self.busy + bool(cursor.fetchone()[0])
        connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def share(self) -> float:
        return self.busy / self.samples if self.samples else 0.0


def print_table(by_name: dict[str, list], seconds: float) -> tuple[int, float]:
    """Rows of [ms, status, failed] per endpoint as a table; (5xx, p95 of the redirect)."""
    print(f"  {'endpoint':<32} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'5xx':>5} {'other':>6}  statuses")
    names = sorted((name for name in by_name if by_name[name]), key=lambda name: -len(by_name[name]))
    every = [row for name in names for row in by_name[name]]
    for name, rows in [*((name, by_name[name]) for name in names), ("all", every)]:
        times = [row[0] for row in rows]
        fivexx = sum(row[1] >= 500 for row in rows)
        other = sum(row[2] for row in rows) - fivexx  # failed otherwise: 4xx, no answer, wrong answer
        statuses = Counter(row[1] for row in rows) if name != "all" else {}
        print(f"  {name:<32} {len(rows):>8} {len(rows) / max(seconds, 1e-9):>7.1f} {percentile(times, 50):>7.1f} {percentile(times, 95):>7.1f}"
              f" {percentile(times, 99):>7.1f} {max(times, default=0):>7.0f} {fivexx:>5} {other:>6}  {' '.join(f'{s}:{n}' for s, n in sorted(statuses.items()))}")
    redirects = next((by_name[name] for name in names if name.startswith("GET /l/")), [])
    return sum(row[1] >= 500 for row in every), percentile([row[0] for row in redirects], 95)


def settle(celery: subprocess.Popen, redis, creator_id: int, connection_id: int, expected_events: int) -> tuple[dict, float]:
    """Wait until clicks are flushed and Celery has nothing left; (what was left, seconds)."""
    from django.db import connection

    from attribution.models import Conversion
    from attribution.services import clicks_buffered
    from billing.models import WhopEvent

    started = last_change = time.monotonic()
    last = None
    while True:
        events = WhopEvent.objects.filter(connection_id=connection_id)
        left = {
            "buffered clicks": clicks_buffered(),
            "queued tasks": redis.llen("celery"),
            "unacked tasks": redis.hlen("unacked"),  # taken by the worker, not finished (acks_late)
            "pending conversions": Conversion.objects.filter(creator_id=creator_id, status=Conversion.Status.PENDING).count(),
            "unprocessed events": events.exclude(status=WhopEvent.Status.PROCESSED).count() + max(0, expected_events - events.count()),
        }
        connection.close()
        now = time.monotonic()
        if left != last:
            last, last_change = left, now
        # Stuck (no progress for a minute) is an answer too: the check below reports what is left.
        if not any(left.values()) or now - started > SETTLE_TIMEOUT or now - last_change > 60 or celery.poll() is not None:
            return left, now - started
        time.sleep(0.5)


def verify(ledger: dict, creator_id: int, connection_id: int) -> dict:
    from django.db import connection

    from attribution.models import Click, Conversion
    from billing.models import WhopEvent

    stored_clicks = set(Click.objects.filter(creator_id=creator_id).values_list("public_id", flat=True))
    conversions = Conversion.objects.filter(creator_id=creator_id)
    tracked = dict(conversions.filter(source=Conversion.Source.TRACK).values_list("id", "external_id"))
    paid = set(conversions.filter(source=Conversion.Source.WHOP).values_list("external_id", flat=True))
    events = dict(WhopEvent.objects.filter(connection_id=connection_id).values_list("webhook_id", "status"))
    attribution = Counter(conversions.values_list("status", flat=True))
    connection.close()
    sent_clicks = set(ledger["clicks"])
    return {
        "clicks": (len(ledger["clicks"]), len(sent_clicks & stored_clicks), len(sent_clicks - stored_clicks)),
        "clicks_unseen": len(stored_clicks - sent_clicks),  # answered after Locust stopped listening
        "track": (len(ledger["track"]), sum(tracked.get(cid) == ext for ext, cid in ledger["track"]),
                  sum(tracked.get(cid) != ext for ext, cid in ledger["track"])),
        "events": (len(ledger["webhooks"]), sum(events.get(wid) == WhopEvent.Status.PROCESSED for wid, _ in ledger["webhooks"]),
                   sum(events.get(wid) != WhopEvent.Status.PROCESSED for wid, _ in ledger["webhooks"])),
        "payments": (len(ledger["webhooks"]), sum(pid in paid for _, pid in ledger["webhooks"]),
                     sum(pid not in paid for _, pid in ledger["webhooks"])),
        "event_statuses": Counter(events.get(wid, "missing") for wid, _ in ledger["webhooks"]),
        "attribution": dict(attribution),
    }


def problems(path: Path, pattern: str) -> list[str]:
    """Matching log lines; a JSON record (production logging) as its message and exception's last line."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if re.search(pattern, line):
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                record = json.loads(line)
                line = " | ".join([record.get("message", ""), *(record.get("exc_info") or "").strip().splitlines()[-1:]])
            found.append(line)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=30, help="Locust users (default 30: see the docstring)")
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second (default 10)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args(argv)

    children = Children()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(args, children)
    except BenchError as error:
        print(f"\nload test could not run: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping child processes", file=sys.stderr)
        return 130
    except Exception:  # a broken setup (database, migrations, a child's answer): could not run
        traceback.print_exc()
        print("\nload test could not run (see the traceback above)", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the bounded clean-up finish
        children.stop_all()


def run(args, children: Children) -> int:
    if args.duration < 5 or args.users < 2 or args.spawn_rate <= 0:
        raise BenchError("--duration must be at least 5, --users at least 2, --spawn-rate positive")
    # Locust runs in its own process: importing it here would monkey-patch this one with gevent.
    if importlib.util.find_spec("locust") is None:
        raise BenchError("locust is not installed: pip install -r requirements-dev.txt")
    check_loopback(args.database_url, "--database-url")
    check_loopback(args.redis_url, "--redis-url")
    workdir = Path(tempfile.mkdtemp(prefix="allumi-load-"))
    (workdir / "static").mkdir()
    env = dict(bench_environment(args), TRUSTED_PROXIES="127.0.0.1/32", STATIC_ROOT=str(workdir / "static"))
    os.environ.update({name: env[name] for name in (
        "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "RATELIMIT_ENABLE",
        "DATABASE_URL", "REDIS_URL", "SITE_URL", "LOG_LEVEL", "TRUSTED_PROXIES", "STATIC_ROOT",
    )})
    os.environ.pop("SENTRY_DSN", None)

    # 1-2. database, Redis, creator, links
    started = time.monotonic()
    ensure_database(args.database_url)
    flush_redis(args.redis_url)
    import django
    import redis as redis_lib
    from django.core.management import call_command

    django.setup()
    migrate(args.database_url)
    call_command("flush", interactive=False, verbosity=0)  # every row of the last run, in one TRUNCATE
    from django.conf import settings
    from django.db import connection
    from django.test.utils import override_settings

    # Production pages need collectstatic's manifest (hashed URLs). The plain manifest storage
    # writes the same manifest in half a second; whitenoise's gzip and brotli copies, which no
    # request here asks for, would take a minute of CPU.
    manifest_only = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}
    with override_settings(STORAGES=manifest_only):
        call_command("collectstatic", interactive=False, verbosity=0)

    from billing.models import WhopConnection

    password, whop_secret = secrets.token_urlsafe(18), "ws_" + secrets.token_urlsafe(32)
    creds = provision(env, password, whop_secret)
    creator_id = int(creds["creator_id"])
    connection_id = WhopConnection.objects.get(creator_id=creator_id).id
    connection.close()
    redis = redis_lib.Redis.from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=5)

    # 3. worker with beat, web server
    celery_log, gunicorn_log = workdir / "celery.log", workdir / "gunicorn.log"
    celery = children.start("celery", [
        sys.executable, "-m", "celery", "-A", "allumi", "worker", "--beat", "--concurrency=2", "--loglevel=info",
        f"--schedule={workdir / 'celerybeat-schedule'}", f"--hostname=load-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ], env=env, log_path=celery_log)
    port = free_port()
    gunicorn = children.start("gunicorn", [
        sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "allumi.wsgi:application",
    ], env=dict(env, GUNICORN_BIND=f"127.0.0.1:{port}"), log_path=gunicorn_log)
    wait_healthy(port, gunicorn, gunicorn_log)
    short_ids = create_links(port, creds["api_key"])
    wait_for_line(celery, celery_log, r"ready\.", 60, "celery worker")
    workers = env.get("WEB_CONCURRENCY") or f"{(os.cpu_count() or 1) * 2}"
    print(f"setup: creator {creator_id}, {len(short_ids)} links, gunicorn on 127.0.0.1:{port} ({workers} workers),"
          f" celery worker x2 with beat, in {time.monotonic() - started:.1f}s")

    with CpuMeter({"gunicorn": gunicorn, "celery": celery}) as idle:
        time.sleep(2.0)
    background = idle.used["other"] / idle.used["capacity"]
    print(f"background load before the run: {background:.0%} of the machine (not this test's processes)")

    # 4. Locust
    # A creator per 15 users, each paced so that the dashboard gets its share of the requests.
    creators = max(1, round(args.users / 15))
    traffic_rate = (args.users - creators) * PACE
    creator_pace = traffic_rate * DASHBOARD_SHARE / (1 - DASHBOARD_SHARE) / creators
    offered = traffic_rate + creators * creator_pace
    config, ledger_path, csv_prefix = workdir / "load.json", workdir / "ledger.json", workdir / "locust"
    config.write_text(json.dumps({
        "short_ids": short_ids, "api_key": creds["api_key"], "webhook_path": creds["whop_webhook_url"],
        "whop_secret": whop_secret, "email": EMAIL, "password": password, "pace": PACE, "ledger": str(ledger_path),
        "creators": creators, "creator_pace": creator_pace,
    }))
    locust_log = workdir / "locust.log"
    print(f"run: {args.users - creators} Traffic users x {PACE:g} requests/s + {creators} Creator users x {creator_pace:.2f} pages/s"
          f" = {offered:.0f} requests/s offered, for {args.duration}s (spawn rate {args.spawn_rate:g}/s) ...", flush=True)
    with CpuMeter({"gunicorn": gunicorn, "celery": celery}) as meter, OtherDatabases() as other_databases:
        proc = children.start("locust", [
            sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--only-summary",
            "--users", str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", f"{args.duration}s",
            "--stop-timeout", "10", "--host", f"http://127.0.0.1:{port}", "--csv", str(csv_prefix), "--loglevel", "WARNING",
        ], env=dict(env, LOAD_CONFIG=str(config)), log_path=locust_log)
        try:
            proc.wait(timeout=args.duration + 90)
        except subprocess.TimeoutExpired:
            raise BenchError(f"locust did not finish in time:\n{tail(locust_log)}") from None
        children.forget(proc)
    if not ledger_path.exists():
        raise BenchError(f"locust exited with {proc.returncode} and wrote no ledger:\n{tail(locust_log)}")
    ledger = json.loads(ledger_path.read_text())
    queue_at_stop = redis.llen("celery")

    # 5. report, settle, verify
    print()
    fivexx_total, redirect_p95 = print_table(ledger["requests"], ledger["stopped"] - ledger["started"])
    used = meter.used
    print(f"  offered {offered:.0f} requests/s; CPU seconds: gunicorn {used['gunicorn']:.1f}, celery {used['celery']:.1f},"
          f" locust {used['wrk']:.1f}, postgres (all its databases) {used['postgres']:.1f}, redis {used['redis-server']:.1f}, other {used['other']:.1f}"
          f" of {used['capacity']:.0f} ({used['all'] / used['capacity']:.0%} busy)")
    print(f"  at stop: {redis.llen('celery')} Celery messages queued ({queue_at_stop} when Locust exited); waiting for the worker ...", flush=True)
    left, waited = settle(celery, redis, creator_id, connection_id, len(ledger["webhooks"]))
    print(f"  settled in {waited:.1f}s" if not any(left.values()) else f"  NOT settled after {waited:.0f}s: {left}")
    checks = verify(ledger, creator_id, connection_id)
    children.stop(gunicorn, grace=15)
    shutil.rmtree(workdir / "static", ignore_errors=True)  # 25 MB of copies; the logs stay
    print()
    print(f"  {'':<36} {'sent':>7} {'stored':>7} {'lost':>6}")
    for label, key in (("redirects 302 -> clicks", "clicks"), ("track 2xx -> conversions", "track"),
                       ("webhooks 2xx -> events processed", "events"), ("webhooks 2xx -> payment conversions", "payments")):
        sent, stored, lost = checks[key]
        print(f"  {label:<36} {sent:>7} {stored:>7} {lost:>6}")
    print(f"  clicks stored but not seen by Locust (answered after it stopped): {checks['clicks_unseen']};"
          f" 302 without a click id: {ledger['redirects_without_cid']}")
    print(f"  webhook events {dict(checks['event_statuses'])}; conversions by status {checks['attribution']}")
    for name, log, pattern in (("gunicorn", gunicorn_log, r"ERROR|CRITICAL|Traceback"), ("celery", celery_log, r"ERROR|CRITICAL|Traceback|Retry in"),
                               ("locust", locust_log, r"CPU usage above|Traceback|^\s*\d+\s+(GET|POST) ")):
        lines = problems(log, pattern)
        if lines:
            print(f"  {name} log: {len(lines)} error lines, e.g.:")
            for line, count in Counter(lines).most_common(4):
                print(f"    {count} x {line[:300]}")
    if background > 0.10 or used["other"] / used["capacity"] > 0.10:
        print(f"  NOTE: other processes used {max(background, used['other'] / used['capacity']):.0%} of the CPU: latencies are pessimistic")
    if other_databases.share > 0.10:
        print(f"  NOTE: other databases of this PostgreSQL ran queries {other_databases.share:.0%} of the time (their CPU is in 'postgres'):"
              " latencies are pessimistic")
    print(f"  logs and Locust CSV: {workdir}")
    print()

    lost = sum(checks[key][2] for key in ("clicks", "track", "events", "payments"))
    targets = [
        (fivexx_total == 0, f"no 5xx: {fivexx_total}"),
        (redirect_p95 < TARGET_REDIRECT_P95_MS, f"redirect p95 {redirect_p95:.1f} ms < {TARGET_REDIRECT_P95_MS:.0f} ms"),
        (lost == 0 and sum(checks[key][0] for key in ("clicks", "track", "events")) > 0, f"nothing lost: {lost} lost"),
    ]
    for ok, text in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    passed = all(ok for ok, _ in targets)
    print(f"{'PASS' if passed else 'FAIL'}  overall")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
