"""The client reaches only public addresses: no loopback, private, link-local or metadata
address, no numeric tricks, no DNS rebinding, no redirects, no proxies from the environment.

Refused addresses are refused before any connect: a recorder of every `socket.connect` and a
listening socket on 127.0.0.1 prove it. The only traffic these tests send goes to loopback
servers that a test allows on purpose (allow_private=True). Public-looking addresses exist only
inside a fake resolver and are never connected to.
"""

import datetime
import functools
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from providers import client as client_module
from providers.client import Client, ErrorKind, ProviderError, check_url

KEY = "sk_live_5f2b9c0e7d14a8b3SECRETKEY"
PUBLIC = "93.184.216.34"  # only ever returned by the fake resolver, never connected to


class RecordingServer:
    """A loopback API v2 upstream that answers a balance and records what reached it."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        self.server_names: list[str | None] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.recorder = self  # type: ignore[attr-defined]
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        serve = functools.partial(self.server.serve_forever, poll_interval=0.01)
        threading.Thread(target=serve, daemon=True).start()

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}/api/v2"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        recorder: RecordingServer = self.server.recorder  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        recorder.requests.append(dict(self.headers))
        body = json.dumps({"balance": "5.00", "currency": "USD"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    running = RecordingServer()
    yield running
    running.stop()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket listening on 127.0.0.1 that nothing must reach (no connection, not even TCP)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_untouched(listener: socket.socket) -> None:
    # The kernel completes a TCP handshake without accept(): a pending one would show here.
    with pytest.raises(BlockingIOError):
        listener.accept()


@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address any socket in this process tries to connect to, during the test."""
    seen: list[Any] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


FakeAnswers = dict[str, list[list[str]]]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeAnswers], list[str]]:
    """Answer made-up names from a script: each lookup of a name takes its next answer (the
    last one repeats). Other names go to the real resolver. Returns the log of lookups."""

    def install(answers: FakeAnswers) -> list[str]:
        lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in answers:
                return real(host, port, *args, **kwargs)
            lookups.append(host)
            script = answers[host]
            addresses = script.pop(0) if len(script) > 1 else script[0]
            return [_addrinfo(address, int(port)) for address in addresses]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return lookups

    return install


def _addrinfo(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def refused(call: Callable[[], Any]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.UNSAFE_URL, True)
    return caught.value


def every_call(url: str) -> list[Callable[[], Any]]:
    client = Client(url, KEY, connect_timeout=0.5, read_timeout=0.5, retry_backoff=0)
    return [
        lambda: check_url(url, allow_private=False),
        client.balance,
        client.services,
        lambda: client.add(1, link="https://x.example/p", quantity=100),
        lambda: client.cancel([1, 2]),
    ]


# --- Addresses that are never reached ------------------------------------------------------------

LOOPBACK_URLS = [
    "http://127.0.0.1:{port}/api/v2",
    "https://127.0.0.1:{port}/api/v2",
    "http://localhost:{port}/api/v2",
    "http://0x7f000001:{port}/api/v2",
    "http://2130706433:{port}/api/v2",
    "http://127.1:{port}/api/v2",
    "http://0177.0.0.1:{port}/api/v2",
    "http://[::1]:{port}/api/v2",
    "http://[::ffff:127.0.0.1]:{port}/api/v2",
    "http://0.0.0.0:{port}/api/v2",
]

NON_PUBLIC_URLS = [
    "http://10.0.0.1/api/v2",
    "http://172.16.5.4/api/v2",
    "http://192.168.1.1/api/v2",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/api/v2",  # carrier-grade NAT
    "http://224.0.0.1/api/v2",  # multicast
    "http://240.0.0.1/api/v2",  # reserved
    "http://[fe80::1]/api/v2",
    "http://[fc00::1]/api/v2",
    "http://[ff02::1]/api/v2",
    "http://[2002:7f00:1::]/api/v2",  # 6to4 wrapping 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/api/v2",  # NAT64 wrapping 169.254.169.254
]


@pytest.mark.parametrize("template", LOOPBACK_URLS)
def test_loopback_in_any_spelling_is_refused_before_connecting(template, listener, connects):
    url = template.format(port=listener.getsockname()[1])
    for call in every_call(url):
        refused(call)
    assert connects == []
    assert_untouched(listener)


@pytest.mark.parametrize("url", NON_PUBLIC_URLS)
def test_private_link_local_and_special_addresses_are_refused_before_connecting(url, connects):
    for call in every_call(url):
        refused(call)
    assert connects == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://provider.example/api/v2",
        "file:///etc/passwd",
        "gopher://provider.example:70/_",
        "javascript:alert(1)",
        "provider.example/api/v2",
        "//provider.example/api/v2",
        "http:///api/v2",
        "http://user:secret@provider.example/api/v2",
        "http://provider.example:99999/api/v2",
        "http://provider.example\\@127.0.0.1/api/v2",
        "http://provider.example /api/v2",
        "http://provider.example/api/v2\r\nX-Injected: 1",
        "http://[::1/api/v2",
        "http://" + "a" * 70 + ".example/api/v2",  # a DNS label longer than 63
    ],
)
def test_urls_that_are_not_plain_http_are_refused_without_a_lookup(url, monkeypatch, connects):
    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no name may be looked up for this URL")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    for call in every_call(url):
        refused(call)
    assert connects == []


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["::1"], ["10.1.2.3"], ["169.254.169.254"], [PUBLIC, "192.168.0.7"]],
)
def test_a_name_that_resolves_to_a_private_address_is_refused(fake_dns, listener, connects, answer):
    fake_dns({"evil.example": [answer]})
    for call in every_call(f"http://evil.example:{listener.getsockname()[1]}/api/v2"):
        error = refused(call)
    assert "evil.example resolves to" in error.message
    assert connects == []
    assert_untouched(listener)


def test_a_name_rebound_to_loopback_after_the_saved_check_is_refused(fake_dns, listener, connects):
    lookups = fake_dns({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.example:{listener.getsockname()[1]}/api/v2"
    check_url(url, allow_private=False)  # when the provider was saved: public

    refused(Client(url, KEY).balance)  # at the call: loopback
    assert lookups == ["rebind.example", "rebind.example"]
    assert connects == []
    assert_untouched(listener)


def test_the_connection_itself_refuses_a_rebound_name(fake_dns, listener, connects, monkeypatch):
    # The call's own check passed (here: skipped); the name turns to loopback just before the
    # connect. The connection resolves and vets in one step and connects to what it vetted.
    monkeypatch.setattr(client_module, "check_url", lambda url, allow_private: None)
    lookups = fake_dns({"rebind.example": [["127.0.0.1"]]})
    client = Client(f"http://rebind.example:{listener.getsockname()[1]}/api/v2", KEY)

    refused(lambda: client.add(1, link="https://x.example/p", quantity=100))
    refused(client.balance)
    assert lookups == ["rebind.example", "rebind.example"]  # one per connection attempt
    assert connects == []
    assert_untouched(listener)


# --- What is allowed, and how the connection is pinned -------------------------------------------


def test_loopback_works_when_private_addresses_are_allowed(server, connects):
    for url in (server.url(), server.url("localhost")):
        assert Client(url, KEY, allow_private=True).balance().amount == 5
    assert len(server.requests) == 2
    assert {address[1] for address in connects} == {server.port}


def test_the_connection_goes_to_the_vetted_address_and_keeps_the_hostname(
    server, fake_dns, connects, monkeypatch
):
    monkeypatch.setattr(client_module, "check_url", lambda url, allow_private: None)
    lookups = fake_dns({"provider.test": [["127.0.0.1"]]})
    Client(server.url("provider.test"), KEY, allow_private=True).balance()

    assert lookups == ["provider.test"]  # resolved once, by the vetting step, for the connect
    assert connects == [("127.0.0.1", server.port)]
    assert server.requests[0]["Host"] == f"provider.test:{server.port}"


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for provider.test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provider.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("provider.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tls_files: tuple[Path, Path]) -> Iterator[RecordingServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    running = RecordingServer(tls=context)
    yield running
    running.stop()


def test_tls_keeps_sni_and_certificate_hostname_on_the_pinned_address(
    tls_server, tls_files, fake_dns, connects
):
    fake_dns({"provider.test": [["127.0.0.1"]]})
    client = Client(tls_server.url("provider.test", "https"), KEY, allow_private=True)
    client._session.verify = str(tls_files[0])  # trust the test certificate, nothing else

    assert client.balance().amount == 5
    assert tls_server.server_names == ["provider.test"]
    assert tls_server.requests[0]["Host"] == f"provider.test:{tls_server.port}"
    assert connects == [("127.0.0.1", tls_server.port)]


def test_an_untrusted_certificate_is_a_definite_failure(tls_server, fake_dns):
    fake_dns({"provider.test": [["127.0.0.1"]]})
    client = Client(tls_server.url("provider.test", "https"), KEY, allow_private=True)
    with pytest.raises(ProviderError) as caught:
        client.add(1, link="https://x.example/p", quantity=100)

    assert (caught.value.kind, caught.value.definite) == (ErrorKind.TRANSPORT, True)
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert tls_server.requests == []


@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:{port}/api/v2", "http://169.254.169.254/latest/meta-data/"]
)
def test_redirects_are_not_followed_anywhere(server, connects, monkeypatch, location):
    target = RecordingServer()
    try:
        monkeypatch.setattr(
            _Handler, "do_POST", _redirect_to(location.format(port=target.port)), raising=True
        )
        with pytest.raises(ProviderError) as caught:
            Client(server.url(), KEY, allow_private=True, read_retries=0).balance()
        assert (caught.value.kind, caught.value.definite) == (ErrorKind.TRANSPORT, True)
        assert len(server.requests) == 1
        assert target.requests == []
        assert {address[1] for address in connects} == {server.port}
    finally:
        target.stop()


def _redirect_to(location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def do_POST(handler: BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        handler.server.recorder.requests.append(dict(handler.headers))  # type: ignore[attr-defined]
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return do_POST


def test_proxies_from_the_environment_are_ignored(server, monkeypatch):
    proxy = RecordingServer()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url())
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        Client(server.url(), KEY, allow_private=True).balance()
        assert len(server.requests) == 1
        assert proxy.requests == []
    finally:
        proxy.stop()
