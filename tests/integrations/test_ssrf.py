"""SSRF protection: only public http(s) addresses, resolved once and connected to as checked."""

import ipaddress
import time

import pytest
from django.core.exceptions import ValidationError

from allumi.integrations import ssrf
from allumi.integrations.models import EventType, WebhookDelivery
from allumi.integrations.services import endpoint_create, webhook_event_emit

REFUSED_URLS = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",  # a name that resolves to loopback
    "http://LOCALHOST./hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.1/hook",
    "http://0.0.0.0/hook",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://169.254.10.10/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://[fc00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://[::ffff:10.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "http://[ff02::1]/hook",
    "https://127.0.0.1/hook",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_it_refuses_to_create_an_endpoint_on_a_private_address(alice, url):
    with pytest.raises(ValidationError) as error:
        endpoint_create(creator=alice, url=url, events=[EventType.LINK_CREATED])

    assert "not a public internet address" in str(error.value)


@pytest.mark.parametrize("url", ["ftp://crm.example.com/hook", "file:///etc/passwd", "gopher://crm.example.com/", "crm.example.com/hook", "javascript:alert(1)"])
def test_it_refuses_schemes_other_than_http_and_https(alice, url):
    with pytest.raises(ValidationError, match="Only http:// and https://"):
        endpoint_create(creator=alice, url=url, events=[EventType.LINK_CREATED])


def test_it_refuses_credentials_before_the_host(alice):
    with pytest.raises(ValidationError, match="not before the host"):
        endpoint_create(creator=alice, url="https://user:pw@crm.example.com/hook", events=[EventType.LINK_CREATED])


@pytest.mark.parametrize("answer", [["10.1.2.3"], ["127.0.0.1"], ["169.254.169.254"], ["93.184.215.14", "10.1.2.3"], ["::ffff:192.168.0.1"]])
def test_it_refuses_a_public_name_that_resolves_to_a_private_address(alice, dns, answer):
    dns["crm.example"] = answer

    with pytest.raises(ValidationError, match="crm.example resolves to"):
        endpoint_create(creator=alice, url="https://crm.example/hook", events=[EventType.LINK_CREATED])


def test_it_accepts_a_name_that_resolves_only_to_public_addresses(alice, dns):
    dns["crm.example"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]

    endpoint, secret = endpoint_create(creator=alice, url="https://crm.example/hook", events=[EventType.LINK_CREATED])

    assert endpoint.url == "https://crm.example/hook" and secret.startswith("whsec_")


def test_it_says_when_a_name_does_not_resolve(alice, dns):
    dns["nowhere.example"] = []

    with pytest.raises(ValidationError, match="does not resolve"):
        endpoint_create(creator=alice, url="https://nowhere.example/hook", events=[EventType.LINK_CREATED])


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"])
def test_public_addresses_are_public(address):
    assert ssrf.address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_the_check_refuses_private_targets_while_the_setting_is_off(url, settings):
    assert settings.INTEGRATIONS_ALLOW_PRIVATE_TARGETS is False

    with pytest.raises(ssrf.TargetRefused):
        ssrf.target_check(url)


# --- at delivery time ---------------------------------------------------------------------------


def test_a_delivery_to_an_address_that_became_private_is_refused_and_nothing_is_sent(
    alice, alice_endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.INTEGRATIONS_ALLOW_PRIVATE_TARGETS = False  # the endpoint points at 127.0.0.1

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={"link": {"id": 1}})

    delivery.refresh_from_db()
    assert receiver.requests == []
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error.startswith("Refused: ") and "127.0.0.1" in delivery.last_error
    assert delivery.last_status_code is None


def test_a_name_rebound_to_a_private_address_after_creation_is_refused(alice, dns, receiver, settings, django_capture_on_commit_callbacks):
    dns.in_turn("crm.example", ["93.184.215.14"], ["169.254.169.254"])
    endpoint, _ = endpoint_create(creator=alice, url=f"http://crm.example:{receiver.port}/hook", events=[EventType.LINK_CREATED])

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "169.254.169.254" in delivery.last_error


def test_it_connects_to_the_address_it_checked_and_never_resolves_again(
    alice, dns, receiver, allow_private, django_capture_on_commit_callbacks
):
    """DNS rebinding: the first answer is checked and used; a later, different answer is never asked for."""
    dns["crm.example"] = ["127.0.0.1"]
    endpoint, secret = endpoint_create(creator=alice, url=f"http://crm.example:{receiver.port}/hook?src=allumi", events=[EventType.LINK_CREATED])
    dns.in_turn("crm.example", ["127.0.0.1"], ["10.255.255.1"])
    lookups_before = len(dns.lookups)

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert len(dns.lookups) - lookups_before == 1
    (request,) = receiver.requests
    assert request.headers["host"] == f"crm.example:{receiver.port}"
    assert request.path == "/hook?src=allumi"
    assert request.verify(secret)["type"] == "link.created"


def test_redirects_are_not_followed(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    from tests.integrations.conftest import Reply

    receiver.reply(Reply(status=302, body=b"", headers={"Location": "http://169.254.169.254/latest/meta-data/"}))

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    delivery.refresh_from_db()
    assert len(receiver.requests) == 1
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_status_code == 302
    assert "redirects are not followed" in delivery.last_error


def test_an_unreachable_first_address_falls_back_to_the_next(alice, dns, receiver, allow_private, django_capture_on_commit_callbacks):
    # ::1 may exist on this machine, but the receiver listens on IPv4 only: that connection is refused.
    dns["crm.example"] = ["::1", "127.0.0.1"]
    endpoint_create(creator=alice, url=f"http://crm.example:{receiver.port}/hook", events=[EventType.LINK_CREATED])

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert time.monotonic() - started < 5


# --- https to a pinned address ------------------------------------------------------------------


def _certificate(name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `name`: (certificate PEM, key PEM)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_receiver(receiver, tmp_path):
    """The receiver speaking TLS with a certificate for crm.test, trusted by Allumi for the test;
    it records the server name each client asked for (SNI)."""
    import ssl
    from unittest import mock

    certificate, key = _certificate("crm.test")
    (tmp_path / "cert.pem").write_bytes(certificate)
    (tmp_path / "key.pem").write_bytes(key)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    receiver.server_names = []
    server_context.sni_callback = lambda sock, name, context: receiver.server_names.append(name)
    receiver.server.socket = server_context.wrap_socket(receiver.server.socket, server_side=True)
    client_context = ssl.create_default_context(cadata=certificate.decode())
    with mock.patch.object(ssrf, "_tls_context", autospec=True, return_value=client_context):
        yield receiver


def test_https_goes_to_the_checked_address_with_the_name_as_sni_and_host(
    alice, dns, tls_receiver, allow_private, django_capture_on_commit_callbacks
):
    dns["crm.test"] = ["127.0.0.1"]
    _, secret = endpoint_create(creator=alice, url=f"https://crm.test:{tls_receiver.port}/hook", events=[EventType.LINK_CREATED])

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED, delivery.last_error
    assert tls_receiver.server_names == ["crm.test"]
    (request,) = tls_receiver.requests
    assert request.headers["host"] == f"crm.test:{tls_receiver.port}"
    assert request.verify(secret)["type"] == "link.created"


def test_https_refuses_a_certificate_for_another_name(alice, dns, tls_receiver, allow_private, django_capture_on_commit_callbacks):
    dns["other.test"] = ["127.0.0.1"]
    endpoint_create(creator=alice, url=f"https://other.test:{tls_receiver.port}/hook", events=[EventType.LINK_CREATED])

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error.startswith("TLS error")
    assert tls_receiver.requests == []
