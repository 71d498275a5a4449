from urllib.parse import parse_qsl, urlsplit

import pytest

from links.destinations import merge_utm, split_for_click_id, with_click_id
from links.models import Link


def _landing(url: str, utm: dict[str, str], click_id: str | None) -> str:
    prefix, fragment = split_for_click_id(url, utm)
    return with_click_id(prefix, fragment, click_id)


def test_it_keeps_the_destinations_own_query_byte_for_byte_in_order_and_its_fragment():
    url = "https://shop.example/p/offer?b=2&a=1&x=%7E+y&flag&empty=&q=caf%C3%A9&enc=a%2Fb#buy-now?x=1"

    merged = merge_utm(url, {"utm_source": "youtube", "utm_campaign": "launch"})

    assert merged == (
        "https://shop.example/p/offer?b=2&a=1&x=%7E+y&flag&empty=&q=caf%C3%A9&enc=a%2Fb"
        "&utm_source=youtube&utm_campaign=launch#buy-now?x=1"
    )


def test_it_leaves_a_destination_alone_when_the_link_sets_nothing():
    url = "https://shop.example/offer?b=2&a=1#buy"

    assert merge_utm(url, {}) == url
    assert merge_utm("https://shop.example/offer", {}) == "https://shop.example/offer"


def test_it_adds_a_query_to_a_destination_without_one_before_the_fragment():
    assert merge_utm("https://shop.example/offer#top", {"utm_source": "yt"}) == "https://shop.example/offer?utm_source=yt#top"
    assert merge_utm("https://shop.example/offer?", {"utm_source": "yt"}) == "https://shop.example/offer?utm_source=yt"


def test_it_keeps_an_empty_fragment():
    assert merge_utm("https://shop.example/offer#", {"utm_source": "yt"}) == "https://shop.example/offer?utm_source=yt#"


def test_the_links_utm_field_wins_over_the_same_parameter_in_the_destination():
    url = "https://shop.example/offer?utm_source=old&ref=yt&utm_medium=keep#buy"

    merged = merge_utm(url, {"utm_source": "youtube"})

    assert merged == "https://shop.example/offer?ref=yt&utm_medium=keep&utm_source=youtube#buy"
    query = parse_qsl(urlsplit(merged).query)
    assert [value for name, value in query if name == "utm_source"] == ["youtube"]


def test_the_links_utm_field_replaces_every_copy_and_spelling_of_the_parameter():
    url = "https://shop.example/offer?utm_source=a&utm%5Fsource=b&ref=1&utm_source=c"

    assert merge_utm(url, {"utm_source": "youtube"}) == "https://shop.example/offer?ref=1&utm_source=youtube"


def test_a_click_id_already_in_the_destination_is_removed_and_replaced():
    url = "https://shop.example/offer?allumi_cid=c_stale&ref=yt&allumi_cid=c_other#buy"

    assert merge_utm(url, {}) == "https://shop.example/offer?ref=yt#buy"
    assert _landing(url, {"utm_source": "yt"}, "c_new") == (
        "https://shop.example/offer?ref=yt&utm_source=yt&allumi_cid=c_new#buy"
    )


def test_a_click_id_is_appended_with_the_right_separator():
    assert _landing("https://shop.example/offer", {}, "c_1") == "https://shop.example/offer?allumi_cid=c_1"
    assert _landing("https://shop.example/offer?a=1", {}, "c_1") == "https://shop.example/offer?a=1&allumi_cid=c_1"
    assert _landing("https://shop.example/offer#buy", {}, "c_1") == "https://shop.example/offer?allumi_cid=c_1#buy"


def test_without_a_click_id_the_stale_one_is_still_dropped():
    assert _landing("https://shop.example/offer?allumi_cid=c_stale#buy", {}, None) == "https://shop.example/offer#buy"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("summer sale", "summer%20sale"),
        ("tom & jerry", "tom%20%26%20jerry"),
        ("a=b", "a%3Db"),
        ("a/b?c#d", "a%2Fb%3Fc%23d"),
        ("caf\u00e9", "caf%C3%A9"),
        ("100%", "100%25"),
        ("a+b", "a%2Bb"),
    ],
)
def test_it_percent_encodes_utm_values(value, encoded):
    merged = merge_utm("https://shop.example/offer?ref=1#buy", {"utm_campaign": value})

    assert merged == f"https://shop.example/offer?ref=1&utm_campaign={encoded}#buy"
    assert dict(parse_qsl(urlsplit(merged).query))["utm_campaign"] == value


def test_a_links_destination_merges_its_own_utm_fields_in_field_order():
    link = Link(
        url="https://shop.example/offer?utm_medium=old&ref=1#buy",
        utm_content="pinned comment",
        utm_medium="video",
        utm_source="youtube",
    )

    assert link.destination == (
        "https://shop.example/offer?ref=1&utm_source=youtube&utm_medium=video&utm_content=pinned%20comment#buy"
    )
