"""The upstream client against a real local HTTP server that replays real-shaped replies.

No database: the client is plain Python. Every server here listens on 127.0.0.1 only.
"""

import functools
import json
import logging
import pickle
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from providers import client as client_module
from providers.client import (
    Balance,
    Client,
    ErrorKind,
    OrderStatus,
    ProviderError,
    RefillState,
    UpstreamStatus,
    check_url,
    mask_key,
)

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"
KEY = "sk_live_5f2b9c0e7d14a8b3SECRETKEY"


def fixture_reply(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- A canned upstream ---------------------------------------------------------------------------


@dataclass
class Reply:
    body: Any = b""  # bytes or str sent as is; anything else as JSON
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (read timeouts)
    mode: str = "normal"  # "drop": close without answering; "short": promise more than is sent


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class Upstream:
    """An API v2 upstream on 127.0.0.1: replies queued per test (the last one repeats), or made
    by a function of the request form; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.replies: deque[Reply] = deque()
        self.answer: Callable[[dict[str, str]], Reply] | None = None
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.server.upstream = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v2"
        serve = functools.partial(self.server.serve_forever, poll_interval=0.01)
        threading.Thread(target=serve, daemon=True).start()

    def queue(self, *replies: Reply | Any) -> None:
        self.replies.extend(r if isinstance(r, Reply) else Reply(body=r) for r in replies)

    def next_reply(self, form: dict[str, str]) -> Reply:
        if self.answer is not None:
            return self.answer(form)
        if len(self.replies) > 1:
            return self.replies.popleft()
        return self.replies[0] if self.replies else Reply(body={"error": "nothing canned"})

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real panels behind nginx

    def do_POST(self) -> None:
        upstream: Upstream = self.server.upstream  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        upstream.requests.append(Seen(self.command, self.path, dict(self.headers), form))
        reply = upstream.next_reply(form)
        if reply.delay:
            upstream.stopping.wait(reply.delay)
        if reply.mode == "drop":
            self.close_connection = True
            return
        body = reply.body
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        payload = body.encode() if isinstance(body, str) else body
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        promised = len(payload) + (500 if reply.mode == "short" else 0)
        self.send_header("Content-Length", str(promised))
        self.end_headers()
        self.wfile.write(payload)
        if reply.mode == "short":
            self.close_connection = True

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.stop()


@pytest.fixture
def make_client(upstream: Upstream) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**overrides: Any) -> Client:
        options: dict[str, Any] = {
            "name": "acme",
            "connect_timeout": 1,
            "read_timeout": 0.3,
            "allow_private": True,  # the canned upstream is on loopback
            "read_retries": 2,
            "retry_backoff": 0.01,
        }
        options.update(overrides)
        url = options.pop("url", upstream.url)
        made.append(Client(url, options.pop("key", KEY), **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- The request ---------------------------------------------------------------------------------


def test_every_call_is_a_form_post_with_key_action_and_user_agent(upstream, make_client):
    upstream.queue({"balance": "1", "currency": "USD"})
    make_client().balance()

    (seen,) = upstream.requests
    assert seen.method == "POST"
    assert seen.path == "/api/v2"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.headers["User-Agent"] == "smm-reseller-panel/1.0"
    assert seen.form == {"key": KEY, "action": "balance"}


def test_the_user_agent_can_be_named(upstream, make_client):
    upstream.queue({"balance": "1", "currency": "USD"})
    make_client(user_agent="my-panel/2.0 (+https://panel.example)").balance()
    assert upstream.requests[0].headers["User-Agent"] == "my-panel/2.0 (+https://panel.example)"


# --- services ------------------------------------------------------------------------------------


def test_services_reads_a_real_shaped_catalog_and_skips_broken_entries(
    upstream, make_client, caplog
):
    upstream.queue(fixture_reply("services.json"))
    services = {s.service: s for s in make_client().services()}

    assert sorted(services) == [1, 2, 3, 4, 5]  # 6 has no rate, the string is no service
    first = services[1]
    assert (first.name, first.type, first.category) == ("Followers", "Default", "First Category")
    assert (first.rate, first.min, first.max) == (Decimal("0.90"), 50, 10000)
    assert (first.refill, first.cancel, first.dripfeed) == (True, True, False)
    likes = services[3]
    assert likes.name == "Likes [Drip-feed]"
    assert likes.rate == Decimal("0.0123")  # a JSON number, read without float rounding
    assert (likes.min, likes.max) == (100, 50000)
    assert (likes.refill, likes.cancel, likes.dripfeed) == (True, False, True)
    assert likes.description.startswith("Real-looking likes")
    assert likes.raw["average_time"] == "3 hours"
    assert (services[4].type, services[4].refill, services[4].cancel) == ("Package", False, True)
    # No type means Default; a flag that cannot be read is "not offered".
    assert (services[5].type, services[5].refill, services[5].cancel) == ("Default", False, False)
    assert "skipped 2 services" in caplog.text


def test_services_keyed_by_id_are_read_too(upstream, make_client):
    catalog = {str(s["service"]): s for s in fixture_reply("services.json")[:2]}
    upstream.queue(catalog)
    assert [s.service for s in make_client().services()] == [1, 2]


def test_an_empty_catalog_is_empty(upstream, make_client):
    upstream.queue([])
    assert make_client().services() == []


@pytest.mark.parametrize("reply", [{"services": "soon"}, "a string", 42, [{"service": "x"}]])
def test_a_reply_that_is_no_catalog_is_a_bad_reply(upstream, make_client, reply):
    upstream.queue(reply)
    with pytest.raises(ProviderError) as caught:
        make_client(read_retries=0).services()
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.BAD_REPLY, False)


# --- add -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [{"order": 23501}, {"order": "23501"}, {"order": "23501.0"}])
def test_add_returns_the_upstream_order_id(upstream, make_client, reply):
    upstream.queue(reply)
    assert make_client().add(1, link="https://instagram.com/p/x", quantity=100) == 23501
    assert upstream.requests[0].form == {
        "key": KEY,
        "action": "add",
        "service": "1",
        "link": "https://instagram.com/p/x",
        "quantity": "100",
    }


def test_add_sends_the_parameters_of_every_type_with_lists_one_per_line(upstream, make_client):
    upstream.queue({"order": 7})
    make_client().add(
        9,
        link="https://t.me/c/1",
        quantity=10,
        runs=None,  # left out
        comments=["nice", "great post"],
        usernames="alice\nbob",
        hashtags=["#a", "#b"],
        hashtag="cats",
        username="owner",
        media="https://instagram.com/p/y",
        min=10,
        max=20,
        posts=5,
        old_posts=2,
        delay=30,
        expiry="31/12/2026",
        answer_number=2,
        groups=["g1", "g2", "g3"],
        interval=None,
    )
    form = upstream.requests[0].form
    assert form["comments"] == "nice\ngreat post"
    assert form["groups"] == "g1\ng2\ng3"
    assert form["usernames"] == "alice\nbob"
    assert form["expiry"] == "31/12/2026"
    assert "runs" not in form and "interval" not in form
    assert set(form) == {"key", "action", "service"} | (
        client_module.ADD_PARAMS - {"runs", "interval"}
    )


def test_add_refuses_unknown_parameters_without_sending(upstream, make_client):
    with pytest.raises(ValueError, match="quantitiy"):
        make_client().add(1, link="https://x.example/p", quantitiy=100)
    with pytest.raises(ValueError, match="key"):
        make_client().add(1, key="other-key")
    assert upstream.requests == []


@pytest.mark.parametrize("reply", [{"status": "ok"}, {"order": None}, {"order": 0}, [23501], "ok"])
def test_an_add_reply_without_an_order_id_is_unknown(upstream, make_client, reply):
    upstream.queue(reply)
    with pytest.raises(ProviderError) as caught:
        make_client().add(1, link="https://x.example/p", quantity=100)
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.BAD_REPLY, False)
    assert len(upstream.requests) == 1


def test_an_add_reply_with_both_an_error_and_an_order_id_is_unknown(upstream, make_client):
    upstream.queue({"order": 23501, "error": "Something went wrong"})
    with pytest.raises(ProviderError) as caught:
        make_client().add(1, link="https://x.example/p", quantity=100)
    assert caught.value.definite is False


# --- status --------------------------------------------------------------------------------------


def test_status_reads_the_seed_example(upstream, make_client):
    upstream.queue(fixture_reply("status_batch.json")["1"])
    status = make_client().status(1)

    assert status == OrderStatus(
        status=UpstreamStatus.PARTIAL,
        charge=Decimal("0.27819"),
        start_count=3572,
        remains=157,
        currency="USD",
    )
    assert status.raw["charge"] == "0.27819"
    assert upstream.requests[0].form == {"key": KEY, "action": "status", "order": "1"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Pending", UpstreamStatus.PENDING),
        ("pending", UpstreamStatus.PENDING),
        ("In progress", UpstreamStatus.IN_PROGRESS),
        ("IN PROGRESS", UpstreamStatus.IN_PROGRESS),
        ("inprogress", UpstreamStatus.IN_PROGRESS),
        ("in_progress", UpstreamStatus.IN_PROGRESS),
        ("In  Progress ", UpstreamStatus.IN_PROGRESS),
        ("Processing", UpstreamStatus.PROCESSING),
        ("completed", UpstreamStatus.COMPLETED),
        ("COMPLETED", UpstreamStatus.COMPLETED),
        ("Partial", UpstreamStatus.PARTIAL),
        ("Canceled", UpstreamStatus.CANCELED),
        ("Cancelled", UpstreamStatus.CANCELED),
        ("Refunded", UpstreamStatus.CANCELED),
    ],
)
def test_order_statuses_are_read_in_any_spelling(upstream, make_client, word, expected):
    upstream.queue({"charge": "1", "start_count": "0", "status": word, "remains": "0"})
    assert make_client().status(5).status is expected


@pytest.mark.parametrize(
    ("remains", "expected", "clamped"),
    [
        ("157", 157, 157),
        (157, 157, 157),
        ("157.0", 157, 157),
        ("-25", 0, 0),  # over-delivered
        (-3, 0, 0),
        ("999999999", 999999999, 1000),  # more than ordered
        ("Unknown", None, None),
        ("unknown", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_remains_are_normalised(upstream, make_client, remains, expected, clamped):
    upstream.queue({"charge": "1", "status": "Partial", "remains": remains})
    status = make_client().status(5)
    assert status.remains == expected
    assert status.clamped_remains(1000) == clamped


@pytest.mark.parametrize(
    ("charge", "expected"),
    [
        ("0.27819", Decimal("0.27819")),
        ("0.1", Decimal("0.1")),
        ("", None),
        (None, None),
        ("12", 12),
    ],
)
def test_charge_is_decimal_from_strings(upstream, make_client, charge, expected):
    upstream.queue({"charge": charge, "status": "Completed", "remains": "0"})
    assert make_client().status(5).charge == expected


def test_charge_as_a_json_number_keeps_its_digits(upstream, make_client):
    upstream.queue(b'{"charge": 0.27819, "start_count": 3572, "status": "Completed", "remains": 0}')
    status = make_client().status(5)
    assert status.charge == Decimal("0.27819")
    assert status.start_count == 3572


@pytest.mark.parametrize("reply", [{"status": "Exploded"}, {"status": None}, {"charge": "1"}])
def test_an_unreadable_status_is_a_bad_reply(upstream, make_client, reply):
    upstream.queue(reply)
    with pytest.raises(ProviderError) as caught:
        make_client(read_retries=0).status(5)
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.BAD_REPLY, False)


def test_statuses_normalise_a_batch_of_odd_replies(upstream, make_client):
    reply = fixture_reply("status_batch.json")
    upstream.queue(reply)
    ids = [int(k) for k in reply] + [999]
    result = make_client().statuses(ids)

    assert upstream.requests[0].form["orders"] == ",".join(map(str, ids))
    assert set(result) == set(ids)
    assert result[1].status is UpstreamStatus.PARTIAL
    assert result[100].status is UpstreamStatus.IN_PROGRESS
    assert (result[101].status, result[101].charge) == (
        UpstreamStatus.COMPLETED,
        Decimal("0.27819"),
    )
    assert (result[102].status, result[102].start_count, result[102].remains) == (
        UpstreamStatus.IN_PROGRESS,
        3572,
        0,
    )
    assert (result[103].status, result[103].charge, result[103].remains) == (
        UpstreamStatus.CANCELED,
        None,
        None,
    )
    assert result[103].currency is None
    assert result[104].status is UpstreamStatus.CANCELED
    assert result[104].clamped_remains(100) == 100
    assert [result[i].status for i in (105, 106, 107)] == [
        UpstreamStatus.IN_PROGRESS,
        UpstreamStatus.IN_PROGRESS,
        UpstreamStatus.PROCESSING,
    ]
    for order, kind, definite in [
        (10, ErrorKind.INCORRECT_ORDER, True),
        (109, ErrorKind.INCORRECT_ORDER, True),
        (108, ErrorKind.BAD_REPLY, False),  # an unknown status word
        (110, ErrorKind.BAD_REPLY, False),  # remains that are not a number
        (999, ErrorKind.BAD_REPLY, False),  # left out of the reply
    ]:
        error = result[order]
        assert isinstance(error, ProviderError)
        assert (error.kind, error.definite, error.action) == (kind, definite, "status")


def test_statuses_as_a_list_are_read_too(upstream, make_client):
    upstream.queue(
        [
            {"order": 1, "status": "Completed", "remains": "0", "charge": "1"},
            {"order": "2", "status": "Pending", "remains": "10", "charge": "1"},
            "junk",
            {"status": "Pending"},
        ]
    )
    result = make_client().statuses([1, 2, 3])
    assert result[1].status is UpstreamStatus.COMPLETED
    assert result[2].status is UpstreamStatus.PENDING
    assert isinstance(result[3], ProviderError) and result[3].kind is ErrorKind.BAD_REPLY


def test_a_single_form_reply_to_a_one_id_batch_is_read(upstream, make_client):
    upstream.queue({"charge": "1", "status": "Completed", "remains": "0"})
    assert make_client().statuses([42])[42].status is UpstreamStatus.COMPLETED


def test_a_batch_reply_of_an_unexpected_shape_is_a_bad_reply(upstream, make_client):
    upstream.queue({"orders": "1,2"})
    with pytest.raises(ProviderError) as caught:
        make_client(read_retries=0).statuses([1, 2])
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.BAD_REPLY, False)


def test_an_empty_batch_sends_nothing(upstream, make_client):
    client = make_client()
    assert client.statuses([]) == {}
    assert client.cancel([]) == {}
    assert upstream.requests == []


def test_repeated_ids_are_sent_once(upstream, make_client):
    upstream.queue({"1": {"status": "Pending"}, "2": {"status": "Pending"}})
    assert sorted(make_client().statuses([1, 2, 1, 2])) == [1, 2]
    assert upstream.requests[0].form["orders"] == "1,2"


# --- refill, refill_status, cancel ---------------------------------------------------------------


@pytest.mark.parametrize("reply", [{"refill": "1"}, {"refill": 1}])
def test_refill_returns_the_refill_id(upstream, make_client, reply):
    upstream.queue(reply)
    assert make_client().refill(23501) == 1
    assert upstream.requests[0].form == {"key": KEY, "action": "refill", "order": "23501"}


def test_a_refill_error_inside_the_reply_is_definite(upstream, make_client):
    upstream.queue({"refill": {"error": "Order not eligible for refill"}})
    with pytest.raises(ProviderError) as caught:
        make_client().refill(1)
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.OTHER, True)
    assert "not eligible" in caught.value.message


def test_refills_read_per_order_results_and_errors(upstream, make_client):
    upstream.queue(fixture_reply("refill_batch.json"))
    result = make_client().refills([1, 2, 3, 4, 5])

    assert upstream.requests[0].form["orders"] == "1,2,3,4,5"
    assert (result[1], result[2]) == (1, 2)
    assert (result[3].kind, result[3].definite) == (ErrorKind.INCORRECT_ORDER, True)
    assert (result[4].kind, result[4].definite) == (ErrorKind.OTHER, True)
    # "soon" is no refill id: the refill may exist upstream.
    assert (result[5].kind, result[5].definite) == (ErrorKind.BAD_REPLY, False)


def test_refills_keyed_by_order_are_read_too(upstream, make_client):
    upstream.queue({"1": 11, "2": {"refill": "12"}, "3": {"error": "Incorrect order ID"}})
    result = make_client().refills([1, 2, 3])
    assert (result[1], result[2], result[3].kind) == (11, 12, ErrorKind.INCORRECT_ORDER)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Completed", RefillState.COMPLETED),
        ("Pending", RefillState.PENDING),
        ("In progress", RefillState.IN_PROGRESS),
        ("Processing", RefillState.IN_PROGRESS),
        ("Rejected", RefillState.REJECTED),
        ("Error", RefillState.REJECTED),
        ("rejected", RefillState.REJECTED),
    ],
)
def test_refill_status_reads_every_state(upstream, make_client, word, expected):
    upstream.queue({"status": word})
    assert make_client().refill_status(3) is expected
    assert upstream.requests[0].form == {"key": KEY, "action": "refill_status", "refill": "3"}


def test_refill_statuses_read_per_refill_results_and_errors(upstream, make_client):
    upstream.queue(fixture_reply("refill_status_batch.json"))
    result = make_client().refill_statuses(range(1, 9))

    assert upstream.requests[0].form["refills"] == "1,2,3,4,5,6,7,8"
    assert [result[i] for i in (1, 2, 4, 5, 6, 7)] == [
        RefillState.COMPLETED,
        RefillState.REJECTED,
        RefillState.REJECTED,
        RefillState.IN_PROGRESS,
        RefillState.IN_PROGRESS,
        RefillState.PENDING,
    ]
    assert (result[3].kind, result[3].definite) == (ErrorKind.INCORRECT_ORDER, True)
    assert (result[8].kind, result[8].definite) == (ErrorKind.BAD_REPLY, False)


def test_cancel_reads_accepted_refused_and_errors(upstream, make_client):
    upstream.queue(fixture_reply("cancel_batch.json"))
    result = make_client().cancel([9, 2, 3, 4, 5, 6])

    assert upstream.requests[0].form == {"key": KEY, "action": "cancel", "orders": "9,2,3,4,5,6"}
    assert [result[i] for i in (2, 3, 4, 5)] == [True, True, True, False]
    assert (result[9].kind, result[9].definite) == (ErrorKind.INCORRECT_ORDER, True)
    assert (result[6].kind, result[6].definite) == (ErrorKind.OTHER, True)


def test_cancel_keyed_by_order_is_read_too(upstream, make_client):
    upstream.queue({"2": 1, "9": {"error": "Incorrect order ID"}, "4": {"cancel": "0"}})
    result = make_client().cancel([2, 9, 4])
    assert (result[2], result[4], result[9].kind) == (True, False, ErrorKind.INCORRECT_ORDER)


# --- balance -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"balance": "100.84292", "currency": "USD"}', Balance(Decimal("100.84292"), "USD")),
        (b'{"balance": 100.84292, "currency": "EUR"}', Balance(Decimal("100.84292"), "EUR")),
        (b'{"balance": 0}', Balance(Decimal(0), "")),
    ],
)
def test_balance_is_decimal(upstream, make_client, body, expected):
    upstream.queue(body)
    assert make_client().balance() == expected


@pytest.mark.parametrize("reply", [{"balance": None}, {"balance": "lots"}, {"currency": "USD"}])
def test_a_balance_without_an_amount_is_a_bad_reply(upstream, make_client, reply):
    upstream.queue(reply)
    with pytest.raises(ProviderError) as caught:
        make_client(read_retries=0).balance()
    assert caught.value.kind is ErrorKind.BAD_REPLY


# --- Error texts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Invalid API key", ErrorKind.INVALID_KEY),
        ("invalid api key", ErrorKind.INVALID_KEY),
        ("error.incorrect_key", ErrorKind.INVALID_KEY),
        ("error.invalid_key", ErrorKind.INVALID_KEY),
        ("Incorrect service ID", ErrorKind.INCORRECT_SERVICE),
        ("error.incorrect_service_id", ErrorKind.INCORRECT_SERVICE),
        ("Not enough funds on balance", ErrorKind.NOT_ENOUGH_FUNDS),
        ("neworder.error.not_enough_funds", ErrorKind.NOT_ENOUGH_FUNDS),
        ("Quantity less than minimal 50", ErrorKind.QUANTITY_BOUNDS),
        ("Quantity more than maximum 10000", ErrorKind.QUANTITY_BOUNDS),
        ("neworder.error.min_quantity", ErrorKind.QUANTITY_BOUNDS),
        ("neworder.error.max_quantity", ErrorKind.QUANTITY_BOUNDS),
        ("Incorrect link", ErrorKind.BAD_LINK),
        ("neworder.error.link", ErrorKind.BAD_LINK),
        (
            "You have active order with this link. Please wait until order being completed.",
            ErrorKind.DUPLICATE_LINK,
        ),
        ("neworder.error.link_duplicate", ErrorKind.DUPLICATE_LINK),
        ("Incorrect order ID", ErrorKind.INCORRECT_ORDER),
        ("error.incorrect_order_id", ErrorKind.INCORRECT_ORDER),
        ("Refill not found", ErrorKind.INCORRECT_ORDER),
        ("Incorrect request", ErrorKind.OTHER),
        ("Order not eligible for refill", ErrorKind.OTHER),
        ("Order not eligible for cancel", ErrorKind.OTHER),
        ("Сервис временно недоступен", ErrorKind.OTHER),
    ],
)
def test_error_texts_and_untranslated_keys_map_to_kinds(upstream, make_client, text, kind):
    upstream.queue({"error": text})
    with pytest.raises(ProviderError) as caught:
        make_client().add(1, link="https://x.example/p", quantity=100)
    error = caught.value
    assert (error.kind, error.definite, error.message, error.action) == (kind, True, text, "add")
    assert len(upstream.requests) == 1


def test_an_error_reply_with_a_4xx_status_is_still_that_error(upstream, make_client):
    upstream.queue(Reply(body={"error": "Invalid API key"}, status=401))
    with pytest.raises(ProviderError) as caught:
        make_client().balance()
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.INVALID_KEY, True)
    assert len(upstream.requests) == 1  # an answer: not retried


# --- Splitting batches ---------------------------------------------------------------------------


def _answer_every_id(form: dict[str, str]) -> Reply:
    """Answer a batch for exactly the ids asked, in the shape of its action."""
    ids = [int(i) for i in (form.get("orders") or form["refills"]).split(",")]
    shapes: dict[str, Callable[[int], Any]] = {
        "status": lambda i: (str(i), {"status": "Completed", "remains": "0", "charge": "1"}),
        "refill": lambda i: {"order": i, "refill": i + 1000},
        "refill_status": lambda i: {"refill": i, "status": "Completed"},
        "cancel": lambda i: {"order": i, "cancel": 1},
    }
    items = [shapes[form["action"]](i) for i in ids]
    return Reply(body=dict(items) if form["action"] == "status" else items)


@pytest.mark.parametrize("method", ["statuses", "refills", "refill_statuses", "cancel"])
def test_250_ids_go_in_3_requests_of_at_most_100(upstream, make_client, method):
    upstream.answer = _answer_every_id
    ids = list(range(1, 251))
    result = getattr(make_client(), method)(ids)

    sent = [r.form.get("orders") or r.form["refills"] for r in upstream.requests]
    assert [len(s.split(",")) for s in sent] == [100, 100, 50]
    assert [int(i) for s in sent for i in s.split(",")] == ids
    assert sorted(result) == ids
    assert not any(isinstance(v, ProviderError) for v in result.values())


def test_a_later_failed_request_marks_its_ids_and_stops_the_batch(upstream, make_client):
    answers = deque([_answer_every_id, lambda form: Reply(status=502, body="Bad Gateway")])
    upstream.answer = lambda form: answers.popleft()(form)
    result = make_client().cancel(range(1, 251))

    assert len(upstream.requests) == 2  # never resent, and the third part never sent
    assert all(result[i] is True for i in range(1, 101))
    failed, unsent = result[150], result[250]
    assert (failed.kind, failed.definite) == (ErrorKind.TRANSPORT, False)
    assert all(result[i] is failed for i in range(101, 201))
    assert (unsent.kind, unsent.definite) == (ErrorKind.TRANSPORT, True)
    assert all(result[i] is unsent for i in range(201, 251))


def test_a_failed_first_request_raises(upstream, make_client):
    upstream.queue(Reply(status=500, body="oops"))
    with pytest.raises(ProviderError) as caught:
        make_client().refills(range(1, 251))
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.TRANSPORT, False)
    assert len(upstream.requests) == 1


# --- Failure classification ----------------------------------------------------------------------

UNKNOWN_FAILURES = {
    "read timeout": (Reply(body={"order": 1}, delay=2), ErrorKind.TRANSPORT),
    "500": (Reply(status=500, body="<h1>Internal Server Error</h1>"), ErrorKind.TRANSPORT),
    "503": (Reply(status=503, body={"error": "Service unavailable"}), ErrorKind.TRANSPORT),
    "html": (Reply(body="<html><body>Welcome to nginx</body></html>"), ErrorKind.BAD_REPLY),
    "php notice": (Reply(body='Notice: Undefined index\n{"order": 1}'), ErrorKind.BAD_REPLY),
    "truncated json": (Reply(body='{"order": 235'), ErrorKind.BAD_REPLY),
    "empty body": (Reply(body=""), ErrorKind.BAD_REPLY),
    "body shorter than promised": (Reply(body='{"order": 1', mode="short"), ErrorKind.TRANSPORT),
    "connection dropped": (Reply(mode="drop"), ErrorKind.TRANSPORT),
}

DEFINITE_FAILURES = {
    "error reply": (Reply(body={"error": "Incorrect order ID"}), ErrorKind.INCORRECT_ORDER),
    "redirect": (
        Reply(status=302, headers={"Location": "https://x.example/"}),
        ErrorKind.TRANSPORT,
    ),
    "redirect to nonsense": (
        Reply(status=301, headers={"Location": "http://[broken"}),
        ErrorKind.TRANSPORT,
    ),
    "403 page": (Reply(status=403, body="<h1>Forbidden</h1>"), ErrorKind.TRANSPORT),
    "429 page": (Reply(status=429, body="Too Many Requests"), ErrorKind.RATE_LIMITED),
}

WRITES: dict[str, Callable[[Client], Any]] = {
    "add": lambda c: c.add(1, link="https://x.example/p", quantity=100),
    "refill": lambda c: c.refill(1),
    "refills": lambda c: c.refills([1, 2]),
    "cancel": lambda c: c.cancel([1, 2]),
}


@pytest.mark.parametrize("failure", UNKNOWN_FAILURES)
def test_failures_after_sending_are_unknown(upstream, make_client, failure):
    reply, kind = UNKNOWN_FAILURES[failure]
    upstream.queue(reply)
    with pytest.raises(ProviderError) as caught:
        make_client(read_retries=0).status(1)
    assert (caught.value.kind, caught.value.definite) == (kind, False)


@pytest.mark.parametrize("failure", DEFINITE_FAILURES)
def test_answers_that_refuse_the_request_are_definite(upstream, make_client, failure):
    reply, kind = DEFINITE_FAILURES[failure]
    upstream.queue(reply)
    with pytest.raises(ProviderError) as caught:
        make_client(read_retries=0).status(1)
    assert (caught.value.kind, caught.value.definite) == (kind, True)


def test_connection_refused_is_definite(make_client, closed_port):
    client = make_client(url=f"http://127.0.0.1:{closed_port}/api/v2")
    with pytest.raises(ProviderError) as caught:
        client.add(1, link="https://x.example/p", quantity=100)
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.TRANSPORT, True)


def test_a_name_that_does_not_resolve_is_definite(make_client, monkeypatch):
    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(ProviderError) as caught:
        make_client(url="http://provider.invalid/api/v2").add(1, link="https://x.example/p")
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.TRANSPORT, True)


def test_an_unexpected_failure_in_the_http_stack_is_unknown(upstream, make_client, monkeypatch):
    client = make_client()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("something odd in the HTTP stack")

    monkeypatch.setattr(client._session, "post", broken)
    with pytest.raises(ProviderError) as caught:
        client.add(1, link="https://x.example/p", quantity=100)
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.TRANSPORT, False)


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("failure", UNKNOWN_FAILURES)
def test_writes_are_sent_exactly_once_when_the_outcome_is_unknown(
    upstream, make_client, write, failure
):
    upstream.queue(UNKNOWN_FAILURES[failure][0])
    with pytest.raises(ProviderError) as caught:
        WRITES[write](make_client(read_retries=5))
    assert caught.value.definite is False
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("write", WRITES)
def test_writes_are_not_retried_after_a_definite_failure_either(make_client, closed_port, write):
    client = make_client(url=f"http://127.0.0.1:{closed_port}/api/v2", read_retries=5)
    with pytest.raises(ProviderError) as caught:
        WRITES[write](client)
    assert caught.value.definite is True


READS: dict[str, tuple[Callable[[Client], Any], Any]] = {
    "services": (lambda c: c.services(), fixture_reply("services.json")),
    "status": (lambda c: c.status(1), {"status": "Pending", "remains": "5"}),
    "statuses": (lambda c: c.statuses([1]), {"1": {"status": "Pending"}}),
    "refill_status": (lambda c: c.refill_status(1), {"status": "Completed"}),
    "refill_statuses": (lambda c: c.refill_statuses([1]), [{"refill": 1, "status": "Pending"}]),
    "balance": (lambda c: c.balance(), {"balance": "1.5", "currency": "USD"}),
}


@pytest.mark.parametrize("read", READS)
def test_reads_are_retried_after_transport_failures_and_bad_replies(upstream, make_client, read):
    call, good = READS[read]
    upstream.queue(Reply(status=502, body="Bad Gateway"), Reply(body="<html>"), good)
    call(make_client(read_retries=2))
    assert len(upstream.requests) == 3


@pytest.mark.parametrize("read", READS)
def test_reads_give_up_after_their_retries(upstream, make_client, read):
    upstream.queue(Reply(status=500, body="oops"))
    with pytest.raises(ProviderError) as caught:
        READS[read][0](make_client(read_retries=2))
    assert caught.value.definite is False
    assert len(upstream.requests) == 3


def test_reads_retry_a_read_timeout(upstream, make_client):
    upstream.queue(Reply(body={"balance": "1"}, delay=2), {"balance": "2"})
    assert make_client(read_retries=1).balance().amount == Decimal(2)
    assert len(upstream.requests) == 2


def test_reads_are_not_retried_after_an_error_reply(upstream, make_client):
    upstream.queue({"error": "Incorrect order ID"})
    with pytest.raises(ProviderError):
        make_client(read_retries=2).status(1)
    assert len(upstream.requests) == 1


def test_retries_back_off_exponentially(upstream, make_client, monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", pauses.append)
    upstream.queue(Reply(status=500, body="oops"))
    with pytest.raises(ProviderError):
        make_client(read_retries=3, retry_backoff=0.5).balance()
    assert pauses == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(upstream, make_client, status):
    elsewhere = Upstream()
    try:
        elsewhere.queue({"order": 99})
        upstream.queue(Reply(status=status, headers={"Location": elsewhere.url}))
        with pytest.raises(ProviderError) as caught:
            make_client().add(1, link="https://x.example/p", quantity=100)
        assert (caught.value.kind, caught.value.definite) == (ErrorKind.TRANSPORT, True)
        assert "redirect" in caught.value.message
        assert len(upstream.requests) == 1
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_an_oversized_reply_is_a_bad_reply(upstream, make_client, monkeypatch):
    monkeypatch.setattr(client_module, "MAX_REPLY_BYTES", 1000)
    upstream.queue([{"service": i, "name": "x" * 50} for i in range(100)])
    with pytest.raises(ProviderError) as caught:
        make_client(read_retries=0).services()
    assert (caught.value.kind, caught.value.definite) == (ErrorKind.BAD_REPLY, False)


# --- The key stays secret, the calls are logged --------------------------------------------------


def test_the_key_never_appears_in_logs_errors_or_reprs(upstream, make_client, caplog, closed_port):
    caplog.set_level(logging.DEBUG)  # urllib3's own debug records included
    upstream.queue(
        Reply(status=500, body=f"<pre>POST key={KEY}&action=status</pre>"),
        Reply(body={"error": f"Invalid API key {KEY}"}),
        Reply(body=f"<html>your key is {KEY}</html>"),
        Reply(body={"1": {"error": f"key {KEY} may not see order 1"}}),
    )
    client = make_client(read_retries=0)
    errors: list[ProviderError] = []
    for call in (client.status, client.add, client.status):
        with pytest.raises(ProviderError) as caught:
            call(1)
        errors.append(caught.value)
    errors.append(client.statuses([1])[1])
    leaky = make_client(url=f"http://127.0.0.1:{closed_port}/api/v2?key={KEY}", read_retries=0)
    with pytest.raises(ProviderError) as caught:
        leaky.balance()
    errors.append(caught.value)

    assert errors[1].kind is ErrorKind.INVALID_KEY
    texts = [caplog.text, repr(client), repr(leaky)]
    for error in errors:
        texts += [
            str(error),
            repr(error),
            error.message,
            "".join(traceback.format_exception(error)),
        ]
    assert all(KEY not in text for text in texts)
    assert mask_key(KEY) in errors[1].message


def test_mask_key_shows_only_the_ends_of_long_keys():
    assert mask_key(KEY) == "sk_l…TKEY"
    assert mask_key("short-key") == "****"
    assert mask_key("") == "****"
    assert KEY not in repr(Client("https://panel.example/api/v2", KEY))


def test_each_request_is_logged_once_with_its_outcome(upstream, make_client, caplog):
    caplog.set_level(logging.INFO, logger="providers.client")
    upstream.queue({"1": {"status": "Pending"}, "2": {"status": "Completed"}}, {"error": "Nope"})
    client = make_client(name="acme")
    client.statuses([1, 2])
    with pytest.raises(ProviderError):
        client.refill(3)

    records = [r for r in caplog.records if r.name == "providers.client"]
    assert len(records) == 2
    ok, failed = records
    assert (ok.provider, ok.upstream_action, ok.ids, ok.outcome) == ("acme", "status", 2, "ok")
    assert isinstance(ok.duration_ms, int) and ok.duration_ms >= 0
    assert (failed.upstream_action, failed.ids, failed.outcome) == (
        "refill",
        None,
        "other/definite",
    )
    assert failed.levelno == logging.WARNING
    assert "provider=acme action=refill" in failed.getMessage()


def test_retries_log_one_record_per_attempt(upstream, make_client, caplog):
    caplog.set_level(logging.INFO, logger="providers.client")
    upstream.queue(Reply(status=500, body="oops"), {"balance": "1"})
    make_client(read_retries=2).balance()
    outcomes = [r.outcome for r in caplog.records if r.name == "providers.client"]
    assert outcomes == ["transport/unknown", "ok"]


# --- Small contracts -----------------------------------------------------------------------------


def test_provider_errors_survive_pickling():
    error = ProviderError(ErrorKind.BAD_LINK, "Incorrect link", definite=True, action="add")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.kind, copy.message, copy.definite, copy.action) == (
        ErrorKind.BAD_LINK,
        "Incorrect link",
        True,
        "add",
    )
    assert str(copy) == "add: Incorrect link [bad_link, definite]"


def test_enum_values_are_the_protocol_words():
    assert [s.value for s in UpstreamStatus] == [
        "Pending",
        "In progress",
        "Processing",
        "Completed",
        "Partial",
        "Canceled",
    ]
    assert ErrorKind.INVALID_KEY == "invalid_key"
    assert RefillState.REJECTED == "Rejected"


def test_check_url_accepts_a_loopback_url_when_private_is_allowed(upstream):
    check_url(upstream.url, allow_private=True)
