import re

import pytest
from django.contrib.staticfiles import finders

ASSET_ATTRIBUTE = re.compile(r"""<(script|link|img)\b[^>]*?\b(src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_served_without_a_key(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert b"openapi: 3." in response.content


def test_the_schema_describes_every_links_operation(schema):
    paths = schema["paths"]

    assert set(paths["/api/v1/links"]) >= {"get", "post"}
    assert set(paths["/api/v1/links/{link_id}"]) >= {"get", "patch", "delete"}
    operation_ids = {operation["operationId"] for path in ("/api/v1/links", "/api/v1/links/{link_id}") for operation in paths[path].values()}
    assert operation_ids >= {"links_list", "links_create", "links_retrieve", "links_update", "links_destroy"}


def test_the_schema_documents_the_link_fields_and_the_secret_key(schema):
    created = schema["paths"]["/api/v1/links"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    link_schema = schema["components"]["schemas"][created.rsplit("/", 1)[-1]]

    assert {"id", "short_id", "short_url", "url"} <= set(link_schema["properties"])
    assert schema["components"]["securitySchemes"]["secretKey"] == {
        "type": "http", "scheme": "bearer", "description": "A secret API key (sk_live_\u2026).",
    }


def test_the_docs_page_is_served(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b'<div id="swagger-ui"></div>' in response.content
    assert b"/api/schema/" in response.content


def test_the_docs_page_loads_only_local_static_assets(client):
    html = client.get("/api/docs/").content.decode()

    assets = [url for _tag, _attribute, url in ASSET_ATTRIBUTE.findall(html)]

    assert any(url.endswith("swagger-ui-bundle.js") for url in assets)
    assert any(url.endswith("swagger-ui.css") for url in assets)
    for url in assets:
        assert url.startswith("/static/") and not url.startswith("//"), url
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file of this project"
    assert not re.search(r"""(src|href)\s*=\s*["']\s*(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"https?://[^\s\"']*(cdn|unpkg|jsdelivr|cloudflare)", html, re.IGNORECASE)
