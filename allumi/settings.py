"""Allumi settings: one module, read from the environment.

Every variable is listed with a comment in `.env.example`. A bad value fails at start-up with
`ImproperlyConfigured`, never later in a request.
"""

import ipaddress
import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# --- strict environment helpers -------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in env_list(name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid network {item!r}") from None
    return networks


# --- mode and secrets -----------------------------------------------------------------------

DEBUG = env_bool("DEBUG", True)
TESTING = False  # tests.settings turns this on

_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 (refused when DEBUG=false)
SECRET_KEY = env_str("SECRET_KEY") or _DEV_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or (["127.0.0.1", "localhost", "testserver"] if DEBUG else [])

if not DEBUG:
    if SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            "DEBUG=false needs a real SECRET_KEY (at least 50 random characters)."
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DEBUG=false needs ALLOWED_HOSTS (comma-separated host names).")

SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")


# --- applications ---------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "csp",
    "axes",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allumi.core",
    "allumi.accounts",
    "allumi.integrations",
    "links",
    "attribution",
    "billing",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "allumi.core.alerts.RequestStatsMiddleware",
    "allumi.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "allumi.core.middleware.SecurityHeadersMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allumi.core.middleware.SessionTimeoutMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "allumi.urls"
WSGI_APPLICATION = "allumi.wsgi.application"
AUTH_USER_MODEL = "accounts.Creator"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "reports:overview"
LOGOUT_REDIRECT_URL = "accounts:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --- data -----------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "allumi",
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


# --- backups --------------------------------------------------------------------------------

# `manage.py backup` and the daily beat task write here and keep the newest BACKUP_KEEP backups.
BACKUP_DIR = Path(env_str("BACKUP_DIR") or BASE_DIR / "var" / "backups")
BACKUP_KEEP = env_int("BACKUP_KEEP", 14, minimum=1)


# --- Celery ---------------------------------------------------------------------------------

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL  # the embedded default runs tasks in-process
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# acks_late needs the visibility timeout above the longest task (the hard time limit).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_CONSUMER = "allumi.celery:BrokerLossConsumer"
# Celery closes the database connection around every task unless told to reuse it, and a new
# PostgreSQL session (a backend started, its catalogs read) cost more than the task itself. Reused
# here for up to this many tasks; allumi.celery checks it before each task and drops it after a
# failed one (an interrupted query can leave a connection unusable without Django noticing).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)
CELERY_BEAT_SCHEDULE = {
    "flush-clicks": {"task": "attribution.tasks.flush_clicks", "schedule": 1.0},
    "sweep-pending-conversions": {"task": "attribution.tasks.sweep_pending_conversions", "schedule": 60.0},
    "sweep-recomputes": {"task": "attribution.tasks.sweep_recomputes", "schedule": 60.0},
    "sweep-whop-events": {"task": "billing.tasks.sweep_whop_events", "schedule": 60.0},
    "run-rollups": {"task": "attribution.tasks.run_rollups", "schedule": 30.0},
    "check-alerts": {"task": "allumi.core.alerts.check_alerts", "schedule": 60.0},
    "backup-database": {"task": "allumi.core.tasks.backup_database", "schedule": crontab(hour=3, minute=30)},
    "reconcile-whop-payments": {"task": "billing.tasks.reconcile_whop_payments", "schedule": 600.0},
    "send-conversion-alerts": {"task": "attribution.tasks.send_conversion_alerts", "schedule": 60.0},
    "send-weekly-reports": {"task": "attribution.tasks.send_weekly_reports", "schedule": crontab(hour=8, minute=0)},
    "sweep-queued-emails": {"task": "allumi.accounts.tasks.sweep_queued_emails", "schedule": 300.0},
    "deliver-webhooks": {"task": "integrations.tasks.deliver_due", "schedule": 15.0},
}


# Outgoing webhooks never go to loopback, private, link-local or metadata addresses. Tests turn
# this on to deliver to a receiver on 127.0.0.1; it is deliberately not read from the environment.
INTEGRATIONS_ALLOW_PRIVATE_TARGETS = False


# --- click capture --------------------------------------------------------------------------

# Seconds a worker process keeps a link in memory. A change to a link also bumps a shared version
# that every process checks once a second, so edits reach all workers within about a second.
LINK_CACHE_LOCAL_TTL = env_float("LINK_CACHE_LOCAL_TTL", 300.0)
LINK_CACHE_SHARED_TTL = env_int("LINK_CACHE_SHARED_TTL", 300, minimum=1)
# Where each web process spools the clicks it captures before shipping them to the Redis buffer
# (attribution/spool.py), every CLICK_SPOOL_INTERVAL seconds. Empty: every click goes to Redis
# from the redirect itself, a round trip per request. A local directory of the web machine.
CLICK_SPOOL_DIR = env_str("CLICK_SPOOL_DIR", str(Path(tempfile.gettempdir()) / "allumi-clicks"))
CLICK_SPOOL_INTERVAL = env_float("CLICK_SPOOL_INTERVAL", 0.2)
CLICK_FLUSH_BATCH_SIZE = env_int("CLICK_FLUSH_BATCH_SIZE", 250, minimum=1)
# Between two batches the flusher, and between two parts of a run the click rollup, pause this many
# times as long as the last one took (0: never), leaving the CPU to the web processes on the same
# machine (attribution.services.clicks_flush, attribution.rollups.rollup_clicks).
CLICK_FLUSH_PAUSE_RATIO = env_float("CLICK_FLUSH_PAUSE_RATIO", 1.0)
# A flusher that dies keeps the buffer locked this long; each batch renews the lock.
CLICK_FLUSH_LOCK_TIMEOUT = env_int("CLICK_FLUSH_LOCK_TIMEOUT", 30, minimum=1)
VISITOR_COOKIE_NAME = "allumi_vid"
VISITOR_COOKIE_MAX_AGE = 60 * 60 * 24 * 365
# Production: Secure; SameSite=None so the cookie also travels with the track API's CORS calls.
VISITOR_COOKIE_SECURE = not DEBUG


# Seconds a newly allocated row id is given to commit before rollups read past it (writers on
# SQLite queue one at a time, so nothing needs to settle there).
ROLLUP_SETTLE_SECONDS = env_int("ROLLUP_SETTLE_SECONDS", 30 if DATABASE_URL else 0, minimum=0)


# --- auth, sessions, email ------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
EMAIL_CONFIRMATION_MAX_AGE = 60 * 60 * 24 * 3
# Outgoing email: a provider's HTTP API through django-anymail when ANYMAIL_PROVIDER is set (with
# its ANYMAIL_API_KEY), else EMAIL_BACKEND: the console by default, SMTP with the EMAIL_HOST settings.
_ANYMAIL_KEY_SETTINGS = {
    "postmark": "POSTMARK_SERVER_TOKEN",
    "sendgrid": "SENDGRID_API_KEY",
    "mailgun": "MAILGUN_API_KEY",
    "resend": "RESEND_API_KEY",
    "brevo": "BREVO_API_KEY",
    "sparkpost": "SPARKPOST_API_KEY",
    "mailersend": "MAILERSEND_API_TOKEN",
}
ANYMAIL_PROVIDER = env_str("ANYMAIL_PROVIDER").lower()
if ANYMAIL_PROVIDER:
    if ANYMAIL_PROVIDER not in _ANYMAIL_KEY_SETTINGS:
        raise ImproperlyConfigured(f"ANYMAIL_PROVIDER must be one of {', '.join(sorted(_ANYMAIL_KEY_SETTINGS))}")
    if not env_str("ANYMAIL_API_KEY"):
        raise ImproperlyConfigured("ANYMAIL_PROVIDER needs ANYMAIL_API_KEY")
    ANYMAIL = {_ANYMAIL_KEY_SETTINGS[ANYMAIL_PROVIDER]: env_str("ANYMAIL_API_KEY")}
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    f"anymail.backends.{ANYMAIL_PROVIDER}.EmailBackend" if ANYMAIL_PROVIDER else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)  # a stuck server fails the attempt; the task retries
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Allumi <no-reply@allumi.invalid>")
# Sales arriving within this many minutes of the first go out in one conversion alert.
CONVERSION_ALERT_WINDOW_MINUTES = env_int("CONVERSION_ALERT_WINDOW_MINUTES", 10, minimum=1)
# Who receives the marketing site's demo requests (comma-separated); empty: stored, not emailed.
DEMO_REQUEST_RECIPIENTS = env_list("DEMO_REQUEST_RECIPIENTS")

# Log-in brute-force protection: five failures for one email from one address lock it for 15 min.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"  # the log-in form's field, which holds the email
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "allumi.core.client_ip.client_ip"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

SESSION_COOKIE_HTTPONLY = True
# Absolute lifetime of a session, and how long it survives without a request.
SESSION_COOKIE_AGE = env_int("SESSION_ABSOLUTE_HOURS", 24 * 14, minimum=1) * 3600
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_MINUTES", 120, minimum=1) * 60
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=(), interest-cohort=(), clipboard-write=(self)"
)
if not DEBUG:
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Behind a trusted proxy, X-Forwarded-Proto: https marks a request as secure.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]


# --- API ------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["allumi.accounts.authentication.SecretKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "allumi.core.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["allumi.core.ratelimits.AllumiRateThrottle"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Allumi API",
    "DESCRIPTION": "Tracked links, conversions and attribution for creators.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "allumi.core.openapi.add_error_responses",
    ],
}


# Content Security Policy: no inline script or style anywhere; a nonce where a page must inline.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_REPORT_URI = env_str("CSP_REPORT_URI")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        **({"report-uri": [CONTENT_SECURITY_REPORT_URI]} if CONTENT_SECURITY_REPORT_URI else {}),
    },
}

# Browsers call the track endpoint from creators' own sites: CORS there echoes any calling origin
# with credentials so the allumi_vid cookie can travel where the browser allows it (allumi.core.cors).
# The demo capture answers CORS only for Allumi's marketing site (MARKETING_ORIGIN, comma-separated
# origins such as https://allumi.example). No other path answers CORS at all.
MARKETING_ORIGIN = [origin.rstrip("/") for origin in env_list("MARKETING_ORIGIN")]
for _origin in MARKETING_ORIGIN:
    if not re.fullmatch(r"https?://[^/?#\s]+", _origin):
        raise ImproperlyConfigured(f"MARKETING_ORIGIN has {_origin!r}: use scheme://host[:port], no path")
CORS_URLS_REGEX = r"^/api/(v1/conversions/track|demo/capture)$"
CORS_ANY_ORIGIN_URLS_REGEX = r"^/api/v1/conversions/track$"
CORS_ALLOWED_ORIGINS = MARKETING_ORIGIN
CORS_ALLOW_ALL_ORIGINS = False
CORS_ALLOW_CREDENTIALS = True
CORS_ALLOW_METHODS = ["POST", "OPTIONS"]
CORS_ALLOW_HEADERS = ["content-type", "x-allumi-key", "authorization"]
CORS_PREFLIGHT_MAX_AGE = 86400


# --- static files, i18n ---------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Development serves straight from the source folders; production from collectstatic's output.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True


# --- logging --------------------------------------------------------------------------------

# Plain lines in development, one JSON object per line in production (LOG_FORMAT overrides).
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "allumi.core.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}, "celery.app.trace": {"level": "WARNING"}},
}


# --- monitoring -----------------------------------------------------------------------------

SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")
SENTRY_RELEASE = env_str("SENTRY_RELEASE")
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.05)
if SENTRY_DSN:
    from allumi.core.sentry import sentry_init  # noqa: E402

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, release=SENTRY_RELEASE, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
WHOP_WEBHOOK_SECRET = env_str("WHOP_WEBHOOK_SECRET")
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
# Limits per client address or key, as django-ratelimit rates ("<count>/<period>").
RATELIMITS = {
    "track": env_str("RATELIMIT_TRACK", "10/m"),
    "link_create": env_str("RATELIMIT_LINK_CREATE", "20/m"),
    "webhook_failures": env_str("RATELIMIT_WEBHOOK_FAILURES", "50/m"),
    "demo_capture": env_str("RATELIMIT_DEMO_CAPTURE", "5/m"),
    "api": env_str("RATELIMIT_API", "100/m"),
    "signup": env_str("RATELIMIT_SIGNUP", "10/h"),
    "password_reset": env_str("RATELIMIT_PASSWORD_RESET", "5/h"),
}
RATELIMIT_VIEW = "allumi.core.errors.rate_limited"
SILENCED_SYSTEM_CHECKS = []
if not REDIS_URL:
    # The local-memory cache counts per process: fine for trying Allumi, not for production.
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Covering indexes (INCLUDE) are a PostgreSQL speed-up; SQLite builds them without the extra columns.
    SILENCED_SYSTEM_CHECKS += ["models.W040"]

# Alert checks (a periodic task): thresholds, the window they look at, and who is told.
ALERT_ERROR_RATE = env_float("ALERT_ERROR_RATE", 0.01)
ALERT_P95_MS = env_float("ALERT_P95_MS", 1000.0)
ALERT_ATTRIBUTION_RATE = env_float("ALERT_ATTRIBUTION_RATE", 0.60)
ALERT_WINDOW_MINUTES = env_int("ALERT_WINDOW_MINUTES", 5, minimum=1)
ALERT_MIN_REQUESTS = env_int("ALERT_MIN_REQUESTS", 100, minimum=1)
OPERATOR_EMAILS = env_list("OPERATOR_EMAILS")

# Prometheus metrics at /metrics: in production only with this bearer token (or from
# METRICS_ALLOWED_NETWORKS, e.g. the scraper's network).
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS")
