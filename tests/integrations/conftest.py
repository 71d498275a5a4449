"""A real HTTP receiver on 127.0.0.1 that records what Allumi sends it, and endpoints pointing at it.

Delivering to 127.0.0.1 needs INTEGRATIONS_ALLOW_PRIVATE_TARGETS, which these fixtures turn on;
tests of the SSRF refusals leave it off.
"""

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from standardwebhooks.webhooks import Webhook

from allumi.integrations.models import EventType
from allumi.integrations.services import endpoint_create


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0  # seconds to wait before answering
    drip: float = 0.0  # seconds between body bytes (a server that never quite finishes)
    endless: bool = False  # stream a body that never ends
    headers: dict = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def verify(self, secret: str) -> dict:
        """The body, once its Standard Webhooks signature checks out with `secret` (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self):
        self.requests: list[Received] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = "/hooks/allumi") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order; then with `default`."""
        self.replies.extend(replies)

    def events(self, secret: str) -> list[dict]:
        return [request.verify(secret) for request in self.requests]

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.endless:
                        self.end_headers()
                        while True:
                            self.wfile.write(b"x" * 65536)
                    elif reply.drip:
                        self.send_header("Content-Length", "1000")
                        self.end_headers()
                        for _ in range(1000):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    else:
                        self.send_header("Content-Length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                except OSError:
                    pass  # Allumi hung up: it reads only so much, and only for so long

            def log_message(self, *args):
                pass

        return Handler

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def allow_private(settings):
    settings.INTEGRATIONS_ALLOW_PRIVATE_TARGETS = True
    settings.SITE_URL = "https://allumi.example"


@pytest.fixture
def alice_endpoint(alice, receiver, allow_private):
    """Alice's endpoint on the local receiver, subscribed to every event: (endpoint, secret)."""
    return endpoint_create(creator=alice, url=receiver.url(), events=EventType.values)


_real_getaddrinfo = socket.getaddrinfo


class FakeDns:
    """Names that resolve to chosen addresses: `dns["crm.example"] = ["10.1.2.3"]`, or with
    `dns.in_turn(name, [first answer], [second answer], ...)` a different answer per lookup."""

    def __init__(self):
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def __setitem__(self, host: str, addresses: list[str]) -> None:
        self.answers[host] = [addresses]

    def in_turn(self, host: str, *answers: list[str]) -> None:
        self.answers[host] = list(answers)

    def getaddrinfo(self, host, port, *args, **kwargs):
        if host not in self.answers:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.lookups.append(host)
        answers = self.answers[host]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in addresses
        ]


@pytest.fixture
def dns():
    """DNS leaves the machine, so it is the one thing these tests fake."""
    fake = FakeDns()
    with mock.patch("socket.getaddrinfo", autospec=True, side_effect=fake.getaddrinfo):
        yield fake
