"""The client address of a request, under the TRUSTED_PROXIES rule.

When the peer is a trusted proxy, the client is the right-most X-Forwarded-For entry that is not
itself a trusted proxy; otherwise it is the peer. Nothing else in Allumi reads X-Forwarded-For.
"""

import functools
import ipaddress

from django.conf import settings


def _parse(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted(address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def client_ip(request) -> str | None:
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return None
    if not settings.TRUSTED_PROXIES or not _is_trusted(peer):
        return str(peer)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed(forwarded.split(",")):
        address = _parse(entry)
        if address is None:
            # A garbled hop cannot be trusted further back; stop at the last good one.
            break
        if not _is_trusted(address):
            return str(address)
        peer = address
    return str(peer)


@functools.lru_cache(maxsize=16384)  # the click flusher asks for every click; visitors and NATs repeat
def network_prefix(ip: str | None) -> str:
    """The /24 (IPv4) or /48 (IPv6) network an address belongs to, as CIDR text."""
    if not ip:
        return ""
    address = _parse(ip)
    if address is None:
        return ""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    # The network address by masking the integer: the same text as ip_network(..., strict=False)
    # gives, without parsing the address a second time (the click flusher does this per click).
    if address.version == 4:
        return f"{ipaddress.IPv4Address(int(address) & 0xFFFFFF00)}/24"
    return f"{ipaddress.IPv6Address(int(address) >> 80 << 80)}/48"
