import ipaddress

import pytest
from django.test import RequestFactory

from allumi.core.client_ip import client_ip, network_prefix


def _request(peer, forwarded=None):
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **headers)


def test_without_trusted_proxies_it_is_the_peer_whatever_the_header_says(settings):
    settings.TRUSTED_PROXIES = []

    assert client_ip(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_an_untrusted_peer_cannot_claim_another_address(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]

    assert client_ip(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_behind_trusted_proxies_it_is_the_rightmost_untrusted_entry(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]

    request = _request("10.1.1.1", "6.6.6.6, 198.51.100.1, 2001:db8::5, 10.2.2.2")

    assert client_ip(request) == "198.51.100.1"


def test_a_garbled_hop_stops_the_walk_at_the_last_good_address(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]

    assert client_ip(_request("10.1.1.1", "198.51.100.1, garbage, 10.2.2.2")) == "10.2.2.2"


def test_a_trusted_peer_without_the_header_is_the_client(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]

    assert client_ip(_request("10.1.1.1")) == "10.1.1.1"


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("81.2.69.142", "81.2.69.0/24"),
        ("2001:db8:abcd:12:1::9", "2001:db8:abcd::/48"),
        ("::ffff:81.2.69.142", "81.2.69.0/24"),
        ("nonsense", ""),
        (None, ""),
    ],
)
def test_network_prefix_is_a_24_or_a_48(ip, network):
    assert network_prefix(ip) == network
