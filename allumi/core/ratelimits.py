"""Rate limits for the API, on django-ratelimit counters in the shared cache (Redis).

Each view names its limit per method (`ratelimit_groups = {"POST": "link_create"}`); everything
else falls under RATELIMITS["api"]. Requests with an API key are counted per key, others per
client address (the TRUSTED_PROXIES rule).
"""

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle

from allumi.core.client_ip import client_ip


def client_key(group, request) -> str:
    """A server's secret key is counted on its own; browsers sharing a publishable key per address."""
    api_key = getattr(request, "auth", None)
    if api_key is not None and getattr(api_key, "kind", "") == "secret":
        return f"key:{api_key.pk}"
    return f"ip:{client_ip(request) or 'unknown'}"


class AllumiRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        group = getattr(view, "ratelimit_groups", {}).get(request.method, "api")
        usage = get_usage(request, group=f"api:{group}", key=client_key, rate=settings.RATELIMITS[group], increment=True)
        if usage is None:  # RATELIMIT_ENABLE is off
            return True
        self._wait = usage["time_left"]
        return not usage["should_limit"]

    def wait(self):
        # At least a second: DRF leaves Retry-After out for a wait of 0 (the window's last instant).
        return max(1, getattr(self, "_wait", 60) or 0)


def ip_key(group, request) -> str:
    return client_ip(request) or "unknown"


def rate_for(name: str):
    """A django-ratelimit rate callable reading RATELIMITS at request time (tests override it)."""

    def _rate(group, request):
        return settings.RATELIMITS[name]

    return _rate
