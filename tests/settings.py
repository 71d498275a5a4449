"""Test settings: the real settings, with a fast password hasher and in-memory email."""

import os

from allumi.settings import *  # noqa: F403

TESTING = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
ROLLUP_SETTLE_SECONDS = 0
# Redirects write to the Redis buffer directly, so a test sees its clicks there at once; the spool
# has its own tests (tests/attribution/test_click_spool.py).
CLICK_SPOOL_DIR = ""
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory, so a subprocess in a test (a flusher we kill) sees the same database.
    (BASE_DIR / "var").mkdir(exist_ok=True)  # noqa: F405
    # One file per test run, so that runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
