"""Fuzz the REST API from its own OpenAPI schema: no input may cause a 5xx or an answer that
contradicts the schema."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_create
from allumi.wsgi import application
from links.services import link_create

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def keep_test_connection():
    """The WSGI handler closes database connections after each request; inside a test that
    would close the test's own transaction (Django's test client unhooks this the same way)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def credentials(alice, settings, keep_test_connection):
    settings.RATELIMIT_ENABLE = False
    link_create(creator=alice, url="https://shop.example/offer")
    secret = api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="fuzz")[1]
    publishable = api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="fuzz")[1]
    return {"Authorization": f"Bearer {secret}", "X-Allumi-Key": publishable}


@schema.parametrize()
@hypothesis_settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_never_fails_on_generated_input(case, credentials):
    # A valid-looking request may still be refused (say, a URL the schema cannot describe as
    # invalid), so rejection of positive data is not a failure; everything else is checked.
    case.call_and_validate(
        headers=credentials,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
