import pytest
from django.core.exceptions import ValidationError

from links.validators import MAX_URL_LENGTH, validate_destination, validate_slug

SITE_URL = "https://go.allumi.test"


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = SITE_URL


def _url_of_length(length: int) -> str:
    base = "https://shop.example/offer?q="
    return base + "a" * (length - len(base))


def _refusal_code(validator, value) -> str:
    with pytest.raises(ValidationError) as error:
        validator(value)
    return error.value.code


# --- destinations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/offer",
        "http://shop.example/",
        "HTTPS://Shop.Example/Offer?a=1&b=2#buy",
        "https://shop.example:8443/offer",
        "https://[2001:db8::1]/offer",
        "https://xn--caf-dma.example/menu",
    ],
)
def test_it_accepts_http_and_https_destinations(url):
    validate_destination(url)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript://shop.example/%0aalert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "ftp://files.example/offer.pdf",
        "mailto:alice@example.com",
        "file:///etc/passwd",
        "shop.example/offer",
        "//shop.example/offer",
    ],
)
def test_it_refuses_every_scheme_but_http_and_https(url):
    assert _refusal_code(validate_destination, url) in ("invalid_scheme", "invalid_url")


def test_it_names_the_scheme_when_refusing_one():
    assert _refusal_code(validate_destination, "ftp://files.example/offer.pdf") == "invalid_scheme"


def test_it_accepts_a_destination_of_exactly_2048_characters():
    url = _url_of_length(2048)
    assert len(url) == MAX_URL_LENGTH == 2048

    validate_destination(url)


def test_it_refuses_a_destination_of_2049_characters():
    url = _url_of_length(2049)
    assert len(url) == 2049

    assert _refusal_code(validate_destination, url) == "url_too_long"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@shop.example/offer",
        "https://user@shop.example/offer",
        "https://:pass@shop.example/offer",
        "https://@shop.example/offer",
        "https://shop.example\\@evil.example/",
    ],
)
def test_it_refuses_credentials_in_a_destination(url):
    assert _refusal_code(validate_destination, url) == "credentials_in_url"


@pytest.mark.parametrize("url", ["https://", "https:///offer", "http:/shop.example", "http:shop.example", "https://:443/"])
def test_it_refuses_a_destination_without_a_host(url):
    assert _refusal_code(validate_destination, url) == "invalid_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/my offer",
        " https://shop.example/offer",
        "https://shop.example/offer\n",
        "https://shop.example/\toffer",
        "https://shop.example/\x00offer",
        "https://shop.example/\roffer",
        "https://shop.example/offer\x7f",
        "https://shop.example/\x1boffer",
        "https://shop.example/a\u00a0b",
        "https://shop.example/a\u2028b",
        "https://shop.example/a\x85b",
        "https://shop.example/a\u3000",
        "https://shop.example/a\u200bb",
    ],
)
def test_it_refuses_spaces_and_control_characters(url):
    assert _refusal_code(validate_destination, url) == "invalid_url"


def test_it_refuses_a_malformed_port():
    assert _refusal_code(validate_destination, "https://shop.example:99999/") == "invalid_url"


@pytest.mark.parametrize(
    "url",
    [
        f"{SITE_URL}/l/abc1234",
        "https://GO.allumi.test/l/launch",
        "http://go.allumi.test/l/abc1234?x=1",
        "https://go.allumi.test:443/l/abc1234",
        # spellings the server routes to the same short link
        "https://go.allumi.test/%6C/abc1234",
        "https://go.allumi.test/l%2Fabc1234",
        "https://go.allumi.test/./l/abc1234",
        "https://go.allumi.test/x/../l/abc1234",
        "https://go.allumi.test./l/abc1234",
    ],
)
def test_it_refuses_a_link_to_an_allumi_short_link(url):
    assert _refusal_code(validate_destination, url) == "self_link"


def test_it_refuses_a_short_link_on_an_allowed_host(settings):
    settings.ALLOWED_HOSTS = ["links.allumi.test"]

    assert _refusal_code(validate_destination, "https://links.allumi.test/l/abc1234") == "self_link"


@pytest.mark.parametrize(
    "url",
    [
        f"{SITE_URL}/pricing",
        f"{SITE_URL}/",
        f"{SITE_URL}/links/",
        "https://shop.example/l/abc1234",
        "https://go.allumi.test.shop.example/l/abc1234",
    ],
)
def test_it_accepts_other_paths_on_allumi_and_short_link_paths_on_other_hosts(url):
    validate_destination(url)


# --- slugs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["abc", "Launch-2025", "yt_pinned", "A1-b2_C3", "a" * 64, "---", "123"])
def test_it_accepts_slugs_of_letters_digits_dashes_and_underscores(slug):
    validate_slug(slug)


@pytest.mark.parametrize("slug", ["ab", "a", "", "a" * 65])
def test_it_refuses_slugs_shorter_than_3_or_longer_than_64(slug):
    assert _refusal_code(validate_slug, slug) == "invalid_slug"


@pytest.mark.parametrize(
    "slug", ["my launch", "launch.2025", "a/b", "a+b", "caf\u00e9", "\u0661\u0662\u0663", "a%20b", "l/abc", "ab?c", "ab#c"]
)
def test_it_refuses_slugs_with_other_characters(slug):
    assert _refusal_code(validate_slug, slug) == "invalid_slug"


def test_it_refuses_a_slug_with_a_trailing_newline():
    slug = "abc\n"

    assert _refusal_code(validate_slug, slug) == "invalid_slug"


@pytest.mark.parametrize("slug", ["api", "admin", "static", "login", "API", "Admin", "LOGIN", "StAtIc", "links", "webhooks"])
def test_it_refuses_reserved_words_whatever_their_case(slug):
    assert _refusal_code(validate_slug, slug) == "reserved_slug"


@pytest.mark.parametrize("slug", ["l", "L"])
def test_it_refuses_the_short_link_prefix_as_a_slug(slug):
    with pytest.raises(ValidationError):
        validate_slug(slug)


def test_it_accepts_slugs_that_only_contain_a_reserved_word():
    validate_slug("api-launch")
    validate_slug("my_admin")
