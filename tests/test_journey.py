"""A creator's first minutes, through the real client: sign up, confirm, make a link, see a click."""

import re

from django.core import mail
from django.test import TestCase

from attribution.models import Click
from links.models import Link

PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"


def test_sign_up_to_first_link_to_first_click(client, db, flush):
    with TestCase.captureOnCommitCallbacks(execute=True):  # the confirmation email is queued on commit
        response = client.post(
            "/accounts/signup/",
            {"name": "Maya", "email": "Maya@Example.org", "password": "plum-orchard-delta-42"},
        )
    assert response.status_code == 200 and b"Check your email" in response.content

    confirm_path = re.search(r"https?://[^/]+(/accounts/confirm/\S+/)", mail.outbox[-1].body).group(1)
    assert client.get(confirm_path).status_code == 302

    response = client.post(
        "/links/new/",
        {"url": "https://maya.example/offer", "title": "Launch video", "utm_source": "youtube", "pass_click_id": "on"},
    )
    link = Link.objects.get(creator__email="maya@example.org")
    assert response.status_code == 302 and response["Location"] == f"/links/{link.id}/"

    visitor = client.__class__()
    landed = visitor.get(f"/l/{link.short_id}", HTTP_USER_AGENT=PHONE, REMOTE_ADDR="81.2.69.142")
    flush()
    click = Click.objects.get(link=link)
    assert landed["Location"] == f"https://maya.example/offer?utm_source=youtube&allumi_cid={click.public_id}"

    listing = client.get("/links/")
    row = re.search(rb"Launch video.*?</tr>", listing.content, re.S).group(0)
    assert re.findall(rb'<td class="num">(\d+)</td>', row) == [b"1", b"1"]
    detail = client.get(f"/links/{link.id}/")
    assert b'id="kpi-clicks">1<' in detail.content
