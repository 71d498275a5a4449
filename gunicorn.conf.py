"""gunicorn settings for the `web` process (Procfile). Override through the environment."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Sync workers: Django views here are short and CPU-bound; two per core keeps the CPU busy while
# one waits on PostgreSQL or Redis.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
backlog = 2048
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# The application is imported once, in the master, and each worker is forked from it: a worker
# recycled after max_requests starts in milliseconds instead of importing Django again (about a
# second of CPU; under load, workers recycled together stalled every request for that long). Nothing
# opens a connection at import: database and Redis connections are made in each worker.
preload_app = True
# Recycling is a safety net against slow leaks, and not free: a new worker spends about a second
# loading the link cache (post_worker_init) while the others take its share. At a few hundred
# redirects a second per worker, 20,000 requests recycled each worker every minute or two and
# showed in the redirect's p99; 100,000 is every several minutes at that rate. Workers that share
# the load evenly reach the limit together, so each one's limit is drawn anywhere up to half as
# much again, spreading the restarts.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 2
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """Start each worker with the links the shared cache holds, so it serves them from memory."""
    from links.cache import link_cache_warm

    worker.log.info("link cache: %d entries loaded", link_cache_warm())


def worker_exit(server, worker):
    """Ship the clicks this worker has spooled before it goes (a worker that dies unannounced
    leaves its spool file to the others, which adopt it)."""
    from attribution.services import click_spool_close

    click_spool_close()
