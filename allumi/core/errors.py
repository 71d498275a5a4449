"""Error pages and answers: JSON in the API error format under /api/ and /webhooks/, HTML for
the dashboard. Nothing internal (stack traces, SQL, paths, settings) ever reaches a client."""

from django.shortcuts import render

from allumi.core.api import error_response

_JSON_PREFIXES = ("/api/", "/webhooks/")


def _wants_json(request) -> bool:
    return request.path.startswith(_JSON_PREFIXES)


def rate_limited(request, exception=None):
    """django-ratelimit's view for a blocked request (RATELIMIT_VIEW)."""
    if _wants_json(request):
        response = error_response("rate_limited", "Too many requests; slow down and retry later.", 429)
    else:
        response = render(request, "429.html", status=429)
    response["Retry-After"] = "60"
    return response


def not_found(request, exception=None):
    if _wants_json(request):
        return error_response("not_found", "Not found.", 404)
    return render(request, "404.html", status=404)


def server_error(request):
    if _wants_json(request):
        return error_response("server_error", "Something went wrong on our side; it has been reported.", 500)
    return render(request, "500.html", status=500)


def bad_request(request, exception=None):
    if _wants_json(request):
        return error_response("bad_request", "The request could not be understood.", 400)
    return render(request, "400.html", status=400)


def permission_denied(request, exception=None):
    if _wants_json(request):
        return error_response("permission_denied", "You may not do this.", 403)
    return render(request, "403.html", status=403)
