"""Calling a creator's URL without letting it reach Allumi's own network (SSRF).

A creator chooses the URL, so it may name a private address, the cloud metadata service, or a
public name that resolves to either (and may resolve differently a second later: DNS rebinding).
So the host is resolved once, every address it resolves to must be public, and the connection
goes to that checked address — never to the name again. The name still travels as the Host header
and, for https, as SNI and the name the certificate must carry. Redirects are not followed.

`INTEGRATIONS_ALLOW_PRIVATE_TARGETS` lifts the address check; it exists only so tests can deliver
to a receiver on 127.0.0.1 and is never read from the environment.
"""

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Ranges that the ipaddress flags below do not all catch on every Python version.
_BLOCKED_NETWORKS = [
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "169.254.0.0/16",  # link-local, with 169.254.169.254, the metadata service of most clouds
        "192.0.0.0/24",  # IETF protocol assignments
        "fc00::/7",  # unique local (fd00:ec2::254 is AWS's IPv6 metadata service)
        "fe80::/10",  # link-local
        "64:ff9b::/96",  # NAT64, which would carry an IPv4 address chosen by the URL
    )
]
_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class TargetRefused(Exception):
    """The URL may not be called: not http(s), or its host is (or resolves to) a non-public address."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    truncated: bool


def address_is_public(address: IPAddress) -> bool:
    """True when `address` is a unicast address on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address.sixtofour or address
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            return False
    if address in _METADATA_ADDRESSES or any(address in network for network in _BLOCKED_NETWORKS):
        return False
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _private_targets_allowed() -> bool:
    return bool(getattr(settings, "INTEGRATIONS_ALLOW_PRIVATE_TARGETS", False))


def url_parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL, or TargetRefused."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise TargetRefused("This is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise TargetRefused("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise TargetRefused("The URL needs a host name.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("Put credentials in the path or query string, not before the host (user:password@).")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.hostname.rstrip(".").lower(), port or _DEFAULT_PORTS[scheme], path


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


def target_check(url: str) -> Target:
    """Parse and resolve `url` once; refuse it when any address it resolves to is not public.

    Raises TargetRefused, or OSError (socket.gaierror) when the name does not resolve.
    """
    scheme, host, port, path = url_parse(url)
    addresses = _resolve(host, port)
    if not addresses:
        raise socket.gaierror(f"{host} has no address")
    if not _private_targets_allowed():
        for address in addresses:
            if not address_is_public(ipaddress.ip_address(address)):
                # One private answer is enough to refuse: which one is used is not ours to choose.
                shown = host if host == address else f"{host} resolves to {address}, which"
                raise TargetRefused(f"{shown} is not a public internet address.")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


# --- the pinned connection ----------------------------------------------------------------------


def _tls_context() -> ssl.SSLContext:
    """Certificates checked against the system's trust store, for the URL's host name."""
    return ssl.create_default_context()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a checked address, with the host name in the Host header."""

    def __init__(self, host: str, port: int, *, address: str, connect_timeout: float, read_timeout: float):
        super().__init__(host, port, timeout=read_timeout)
        self._address = address
        self._connect_timeout = connect_timeout

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), timeout=self._connect_timeout)
        self.sock.settimeout(self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI and certificate check use the host name, not the address."""

    def __init__(self, host: str, port: int, *, address: str, connect_timeout: float, read_timeout: float):
        super().__init__(host, port, timeout=read_timeout, context=_tls_context())
        self._address = address
        self._connect_timeout = connect_timeout

    def connect(self):
        sock = socket.create_connection((self._address, self.port), timeout=self._connect_timeout)
        sock.settimeout(self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _Deadline:
    """Cuts the connection once `seconds` have passed: a read timeout bounds each wait, not a
    server that drips a byte every few seconds."""

    def __init__(self, seconds: float):
        self.expired = False
        # The socket itself: http.client lets go of it once the response takes it over.
        self.sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def _cut(self):
        self.expired = True
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


def post(
    target: Target,
    *,
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float,
    read_timeout: float,
    total_timeout: float,
    max_response_bytes: int,
) -> Response:
    """POST `body` to the checked target and read at most `max_response_bytes` of the answer.

    Tries the checked addresses in order until one accepts the connection (a host with an AAAA
    record is not lost on a server without IPv6). Raises OSError (TimeoutError included) or
    http.client.HTTPException when the exchange fails.
    """
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    started = time.monotonic()
    last_error: OSError | None = None
    for address in target.addresses:
        connection = connection_class(
            target.host, target.port, address=address, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        try:
            remaining = total_timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise TimeoutError("timed out")
            with _Deadline(remaining) as deadline:
                try:
                    connection.connect()
                except OSError as error:
                    last_error = error
                    continue
                deadline.sock = connection.sock
                try:
                    return _exchange(connection, target, body, headers, max_response_bytes)
                except (OSError, http.client.HTTPException):
                    if deadline.expired:
                        raise TimeoutError(f"no complete answer within {total_timeout:g} s") from None
                    raise
        finally:
            connection.close()
    raise last_error or OSError("no address to connect to")


def _exchange(connection, target: Target, body: bytes, headers: dict[str, str], max_response_bytes: int) -> Response:
    connection.request("POST", target.path, body=body, headers={**headers, "Connection": "close"})
    response = connection.getresponse()
    chunks, size = [], 0
    while size < max_response_bytes:
        chunk = response.read1(min(16384, max_response_bytes - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    truncated = size >= max_response_bytes and not response.isclosed()
    return Response(status=response.status, body=b"".join(chunks), truncated=truncated)
