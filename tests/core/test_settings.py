"""Production mode refuses to start with development secrets; environment values are strict."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from allumi.settings import env_bool, env_int, env_networks

STRONG_KEY = "k" * 10 + "".join(chr(ord("a") + i % 26) for i in range(60))


def _start(**env):
    """Import the settings in a fresh interpreter, as a web process would at start-up."""
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DJANGO_SETTINGS_MODULE")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import allumi.settings"],
        cwd=settings.BASE_DIR, env=clean, capture_output=True, text=True, timeout=60,
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = _start(DEBUG="false", ALLOWED_HOSTS="allumi.example")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_a_weak_secret_key():
    result = _start(DEBUG="false", ALLOWED_HOSTS="allumi.example", SECRET_KEY="short")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = _start(DEBUG="false", SECRET_KEY=STRONG_KEY)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_starts_with_a_real_key_and_hosts():
    result = _start(DEBUG="false", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="allumi.example")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_a_boolean_that_is_not_one_is_refused(monkeypatch, value):
    monkeypatch.setenv("SOME_FLAG", value)

    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env_bool("SOME_FLAG", True)


def test_integers_and_networks_are_checked(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "ten")
    monkeypatch.setenv("SOME_NETWORKS", "10.0.0.0/8, not-a-network")

    with pytest.raises(ImproperlyConfigured, match="SOME_NUMBER"):
        env_int("SOME_NUMBER", 1)
    with pytest.raises(ImproperlyConfigured, match="not-a-network"):
        env_networks("SOME_NETWORKS")
