"""CORS per endpoint. django-cors-headers answers only CORS_URLS_REGEX; of those paths, the ones
matching CORS_ANY_ORIGIN_URLS_REGEX (the track endpoint, called from creators' own sites) allow
every origin, and the rest only CORS_ALLOWED_ORIGINS (the demo capture: Allumi's marketing site)."""

import re

from django.conf import settings


def any_origin_allowed(sender, request, **kwargs) -> bool:
    """corsheaders' check_request_enabled signal: True lets this request's origin through."""
    pattern = getattr(settings, "CORS_ANY_ORIGIN_URLS_REGEX", "")
    return bool(pattern) and re.match(pattern, request.path_info) is not None
