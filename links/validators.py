import posixpath
import re
import unicodedata
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

MAX_URL_LENGTH = 2048
SLUG_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,64}")
RESERVED_SLUGS = frozenset(
    """
    about account accounts admin allumi api app assets billing dashboard demo docs help healthz
    home index l link links login logout me metrics new privacy readyz settings signup static
    status support terms webhooks www
    """.split()
)
# Separators (spaces, line and paragraph breaks) and control or format characters.
_FORBIDDEN_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf"}


def validate_slug(value: str) -> None:
    if not SLUG_PATTERN.fullmatch(value):
        raise ValidationError(
            "Use 3 to 64 letters, digits, '-' or '_'.", code="invalid_slug"
        )
    if value.lower() in RESERVED_SLUGS:
        raise ValidationError(f"'{value}' is reserved; choose another slug.", code="reserved_slug")


def _own_hosts() -> set[str]:
    hosts = {urlsplit(settings.SITE_URL).hostname or ""}
    hosts.update(host.lstrip(".").lower() for host in settings.ALLOWED_HOSTS if host not in ("*", ""))
    return {host for host in hosts if host}


def validate_destination(value: str) -> None:
    if len(value) > MAX_URL_LENGTH:
        raise ValidationError(f"URLs may be at most {MAX_URL_LENGTH} characters.", code="url_too_long")
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value):
        raise ValidationError("URLs may not contain spaces or control characters.", code="invalid_url")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a malformed port
    except ValueError:
        raise ValidationError("This is not a valid URL.", code="invalid_url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError("Only http:// and https:// destinations are allowed.", code="invalid_scheme")
    if not parts.hostname:
        raise ValidationError("The URL needs a host name.", code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("URLs may not contain a user name or password.", code="credentials_in_url")
    del port
    # Compare what the server would route: a decoded path without dot segments, a host without
    # its trailing dot. Otherwise /%6C/x or /./l/x would be a link that redirects to itself.
    path = posixpath.normpath("/" + unquote(parts.path).lstrip("/"))
    if parts.hostname.lower().rstrip(".") in _own_hosts() and (path + "/").startswith("/l/"):
        raise ValidationError("A link cannot point to another Allumi short link.", code="self_link")
