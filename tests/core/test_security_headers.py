"""The security headers every kind of response carries, and production's own settings."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from links.services import link_create

STRONG_KEY = "prod-test-" + "x7Qm2Vr9Kt4Lp3Kx8Vq2Wn" * 3


def _assert_common_headers(response):
    csp = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"] and "geolocation=()" in response["Permissions-Policy"]
    assert response["X-Request-ID"]


def test_a_dashboard_page_carries_every_security_header(alice_client):
    response = alice_client.get("/links/")

    assert response.status_code == 200
    _assert_common_headers(response)
    nonce_free = response.content.decode()
    assert "<script>" not in nonce_free and "style=" not in nonce_free


def test_an_api_response_carries_every_security_header(alice_api):
    response = alice_api.get("/api/v1/links")

    assert response.status_code == 200
    _assert_common_headers(response)
    assert "Access-Control-Allow-Origin" not in response


def test_a_redirect_carries_every_security_header(client, alice):
    link = link_create(creator=alice, url="https://shop.example/")

    response = client.get(f"/l/{link.short_id}", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0")

    assert response.status_code == 302
    _assert_common_headers(response)


def test_a_static_file_carries_every_security_header(client, db):
    response = client.get("/static/css/app.css")

    assert response.status_code == 200
    _assert_common_headers(response)


_PRODUCTION_PROBE = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("collectstatic", verbosity=0, interactive=False)
from django.test import Client
from allumi.accounts.services import creator_create
creator_create(email="prod@example.com", password="plum-orchard-delta-42", confirmed=True)
client = Client()
login = client.post("/accounts/login/", {"username": "prod@example.com", "password": "plum-orchard-delta-42"}, secure=True)
page = client.get("/links/", secure=True)
plain = Client().get("/links/")
boom = Client(raise_request_exception=False).get("/api/v1/links", secure=True, HTTP_AUTHORIZATION="Bearer sk_live_x")
print(json.dumps({
    "login_status": login.status_code,
    "session_cookie": str(login.cookies.get("sessionid")),
    "csrf_cookie": str(login.cookies.get("csrftoken")),
    "hsts": page.get("Strict-Transport-Security"),
    "page_status": page.status_code,
    "plain_http_status": plain.status_code,
    "plain_http_location": plain.get("Location"),
}))
"""


def _production_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DEBUG="false", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="testserver,allumi.example",
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}", STATIC_ROOT=str(tmp_path / "static"), DJANGO_SETTINGS_MODULE="allumi.settings", LOG_LEVEL="ERROR",
        **extra,
    )
    return env


def test_production_sets_hsts_secure_cookies_and_redirects_plain_http(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _PRODUCTION_PROBE], cwd=settings.BASE_DIR, env=_production_env(tmp_path),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["login_status"] == 302 and seen["page_status"] == 200
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    for cookie in (seen["session_cookie"], seen["csrf_cookie"]):
        assert "Secure" in cookie and "SameSite=Lax" in cookie
    assert "HttpOnly" in seen["session_cookie"]
    assert seen["plain_http_status"] == 301 and seen["plain_http_location"].startswith("https://")


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=_production_env(tmp_path), capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("path", ["/api/v1/links", "/links/"])
def test_a_server_error_reveals_nothing_internal(path, alice, alice_key, monkeypatch, settings):
    from django.test import Client

    def explode(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM internals WHERE path='/srv/allumi/settings.py'")

    monkeypatch.setattr("links.selectors.Link.objects.filter", explode)
    monkeypatch.setattr("attribution.views.link_list", explode)
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(alice)

    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {alice_key}")

    body = response.content.decode()
    assert response.status_code == 500
    for leak in ("SELECT", "Traceback", "settings.py", "RuntimeError", "/srv/"):
        assert leak not in body
    if path.startswith("/api/"):
        error = json.loads(body)["error"]
        assert error["code"] == "server_error" and error["request_id"] == response["X-Request-ID"]
