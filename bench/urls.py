"""The application's URLs plus `bench/bare/<short_id>`: a view that does nothing but answer 302.

It runs behind the same middleware as `/l/<short_id>`, so the two differ only by the redirect's own
work (link lookup, click capture, cookie).
"""

from django.http import HttpResponse
from django.urls import path

from allumi.urls import urlpatterns as app_urlpatterns


def bare_redirect(request, short_id: str):
    response = HttpResponse(status=302)
    response["Location"] = "https://example.com/"
    return response


urlpatterns = [*app_urlpatterns, path("bench/bare/<str:short_id>", bare_redirect, name="bench_bare")]
