"""QR codes of a link's short URL, PNG and SVG, for its creator only."""

import io

import pytest
import segno

from links.services import link_create

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SITE_URL = "https://go.allumi.test"


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = SITE_URL


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/offer", title="Launch video", slug="launch")


def _expected(link, kind: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(f"{SITE_URL}/l/{link.short_id}", error="m").save(buffer, kind=kind, scale=8 if kind == "png" else 4, border=2)
    return buffer.getvalue()


def test_the_png_is_a_png_of_the_short_url(alice_client, link):
    response = alice_client.get(f"/links/{link.id}/qr.png")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(PNG_SIGNATURE)
    assert response.content == _expected(link, "png")
    assert "Content-Disposition" not in response


def test_the_svg_is_an_svg_document_of_the_short_url(alice_client, link):
    response = alice_client.get(f"/links/{link.id}/qr.svg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    text = response.content.decode("utf-8")
    assert text.lstrip().startswith(("<?xml", "<svg"))
    assert "<svg" in text and text.rstrip().endswith("</svg>")
    assert 'xmlns="http://www.w3.org/2000/svg"' in text
    assert response.content == _expected(link, "svg")


@pytest.mark.parametrize("kind", ["png", "svg"])
def test_download_asks_the_browser_to_save_the_file(alice_client, link, kind):
    response = alice_client.get(f"/links/{link.id}/qr.{kind}", {"download": "1"})

    assert response["Content-Disposition"] == f'attachment; filename="allumi-launch.{kind}"'


def test_another_short_url_makes_another_code(alice, alice_client, link):
    other = link_create(creator=alice, url="https://shop.example/other", slug="other")

    assert alice_client.get(f"/links/{link.id}/qr.png").content != alice_client.get(f"/links/{other.id}/qr.png").content


@pytest.mark.parametrize("kind", ["gif", "jpg", "PNG", "png.svg", "pdf"])
def test_an_unknown_format_is_404(alice_client, link, kind):
    assert alice_client.get(f"/links/{link.id}/qr.{kind}").status_code == 404


@pytest.mark.parametrize("kind", ["png", "svg"])
def test_bob_gets_404_on_alices_qr_code(bob_client, link, kind):
    response = bob_client.get(f"/links/{link.id}/qr.{kind}")

    assert response.status_code == 404
    assert not response.content.startswith(PNG_SIGNATURE)
    assert b"launch" not in response.content


def test_an_unknown_link_is_404(alice_client):
    assert alice_client.get("/links/999999999/qr.png").status_code == 404


@pytest.mark.parametrize("kind", ["png", "svg"])
def test_the_qr_code_needs_a_login(client, link, kind):
    response = client.get(f"/links/{link.id}/qr.{kind}")

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/links/{link.id}/qr.{kind}"
