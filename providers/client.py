"""The only code that talks to upstream API v2 providers.

Plain Python on purpose (no Django): it takes a URL and a key, speaks the form-POST protocol of
`api-v2.md`, turns whatever real upstreams send into dataclasses, and raises `ProviderError`,
which says whether the failure is *definite* (nothing was created upstream, safe to try again or
elsewhere) or the outcome is *unknown* (the request may have been acted on: never resend blindly).

Outbound safety: every connection goes to an address that was resolved and vetted in the same
step (see `_connect_vetted`), so a DNS answer that changes between a check and the connect
cannot reach a private address. A `Client` is not thread-safe (one `requests.Session` each).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as urllib3_exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.connection import allowed_gai_family

logger = logging.getLogger("providers.client")

MAX_IDS_PER_REQUEST = 100  # the protocol's limit for `orders` / `refills`
MAX_REPLY_BYTES = 16 * 1024 * 1024  # a big catalog is a few MB; more is an upstream gone wrong
SNIPPET_CHARS = 160  # how much of an odd reply goes into an error message
# Calls that change nothing upstream: a reply to them may be read leniently (see
# `_trailing_json`), since misreading one can never buy anything.
READ_ONLY_ACTIONS = frozenset({"services", "status", "refill_status", "balance"})
MAX_JSON_STARTS = 1000  # places in an HTML prefix where the trailing JSON may begin
# A reply must have arrived this many read timeouts after the request started (a reply that
# trickles in a byte at a time never trips the read timeout itself).
REPLY_READS = 2

T = TypeVar("T")
AddParam = str | int | Sequence[str] | None
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]

# Every parameter of every service type's `add`. An unknown name is refused rather than sent:
# a typo the upstream silently ignores ("quantitiy") could buy something else than was sold.
# fmt: off
ADD_PARAMS = frozenset({
    "link", "quantity", "runs", "interval", "comments", "usernames", "hashtags", "hashtag",
    "username", "media", "min", "max", "posts", "old_posts", "delay", "expiry", "answer_number",
    "groups",
})
# fmt: on


@dataclass(frozen=True)
class UpstreamCall:
    """One HTTP exchange with an upstream, as CALL_OBSERVERS see it."""

    provider: str
    action: str
    outcome: str  # "ok", or "<ErrorKind>/definite" or "<ErrorKind>/unknown"
    seconds: float
    http_status: int | None


# Called after every exchange (the panel counts them for its metrics); an observer that fails
# is ignored, so counting can never break a call. Kept here as plain callables: no Django.
CALL_OBSERVERS: list[Callable[[UpstreamCall], None]] = []
# What the caller is doing, added to each exchange's log line (the order and the request id
# of the API call that placed it, say): set by the panel around a call, read only here.
log_context: ContextVar[tuple[tuple[str, object], ...]] = ContextVar("provider_log_context",
                                                                    default=())


class ErrorKind(StrEnum):
    INVALID_KEY = "invalid_key"
    NOT_ENOUGH_FUNDS = "not_enough_funds"
    INCORRECT_SERVICE = "incorrect_service"
    QUANTITY_BOUNDS = "quantity_bounds"
    BAD_LINK = "bad_link"
    DUPLICATE_LINK = "duplicate_link"
    INCORRECT_ORDER = "incorrect_order"
    UNSAFE_URL = "unsafe_url"
    # An action the upstream does not have (UNSUPPORTED_WORDS); on `add`, the same words
    # refuse parameters it does not take.
    UNSUPPORTED = "unsupported"
    RATE_LIMITED = "rate_limited"
    TRANSPORT = "transport"
    BAD_REPLY = "bad_reply"
    OTHER = "other"


class Phase(StrEnum):
    """Where in an exchange a call failed: what staff need to guess whether it was bought."""

    CONNECT = "connect"  # before a byte of the request left (refused, unresolvable, unsafe)
    SEND = "send"  # the connection broke while the request was being written
    READ = "read"  # sent, and no (complete) reply came: a timeout, a reset, a reply too slow
    HTTP = "http"  # a reply with an HTTP status that is not an answer (5xx, a 4xx page, 3xx)
    PARSE = "parse"  # a reply that cannot be read (HTML, garbage, cut off, odd fields)
    REPLY = "reply"  # an answer that refuses: `{"error": …}`


REPLY_START_CHARS = 500  # how much of a failed reply's body is kept for staff


class ProviderError(Exception):
    """A failed upstream call.

    `definite` is True when nothing can have been created upstream (the request never left, or
    the upstream answered with an error); False when the request may have been acted on.
    `phase`, `http_status` and `reply_start` (the body's first REPLY_START_CHARS, the key
    masked) say what exactly happened, for the staff who settle an unknown outcome.
    """

    def __init__(
        self, kind: ErrorKind, message: str, *, definite: bool, action: str = "",
        timed_out: bool = False, phase: Phase | None = None, http_status: int | None = None,
        reply_start: str = "",
    ) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message
        self.definite = definite
        self.action = action
        self.phase = phase
        self.http_status = http_status
        self.reply_start = reply_start
        # The upstream took longer than the read timeout to answer (a slow, not a broken,
        # upstream): callers asking about many ids at once ask about fewer next time.
        self.timed_out = timed_out

    @property
    def key_refused(self) -> bool:
        """The upstream refused our key or the account behind it (KEY_REFUSALS): nothing
        will work there until an admin deals with it."""
        return self.definite and self.kind == ErrorKind.INVALID_KEY

    @property
    def unsupported(self) -> bool:
        """The upstream says it has no such action (UNSUPPORTED_WORDS): asking again, or
        in another form, cannot help."""
        return self.definite and self.kind == ErrorKind.UNSUPPORTED

    @property
    def temporary(self) -> bool:
        """A definite refusal that says "not now" rather than "never": we were rate limited,
        or our own balance at the upstream is too low. Trying again later is right."""
        return self.definite and self.kind in (ErrorKind.RATE_LIMITED, ErrorKind.NOT_ENOUGH_FUNDS)

    def __str__(self) -> str:
        certainty = "definite" if self.definite else "outcome unknown"
        return f"{self.action or 'request'}: {self.message} [{self.kind}, {certainty}]"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments need help to survive pickling (Celery results, multiprocessing).
        rebuild = functools.partial(ProviderError, definite=self.definite, action=self.action,
                                    timed_out=self.timed_out, phase=self.phase,
                                    http_status=self.http_status, reply_start=self.reply_start)
        return (rebuild, (self.kind, self.message))


class UpstreamStatus(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    CANCELED = "Canceled"


class RefillState(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    REJECTED = "Rejected"


@dataclass(frozen=True)
class UpstreamService:
    service: int
    name: str
    type: str
    category: str
    rate: Decimal  # per 1000 units, in the upstream's currency
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool
    description: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class OrderStatus:
    status: UpstreamStatus
    charge: Decimal | None
    start_count: int | None
    remains: int | None  # None: upstream said "Unknown" or nothing; never negative
    currency: str | None
    # Not in the protocol, but some upstreams say how many units they took the order for
    # (a list they split differently counts fewer): None when it does not say.
    quantity: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def clamped_remains(self, quantity: int) -> int | None:
        """Remains within 0..quantity: upstreams report more than was ordered, or less than 0."""
        if self.remains is None:
            return None
        return max(0, min(self.remains, quantity))


@dataclass(frozen=True)
class Balance:
    amount: Decimal
    currency: str  # "" when the upstream does not say


# --- Outbound safety ----------------------------------------------------------------------------


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse a provider URL that is not plain http(s) to public addresses only.

    Raises ProviderError(UNSAFE_URL, definite=True); a host that does not resolve at all is a
    TRANSPORT error (definite) since nothing about it is unsafe yet.
    """
    host, port = _split_url(url)
    try:
        _vetted_addresses(host, port, allow_private=allow_private)
    except socket.gaierror as exc:
        raise ProviderError(
            ErrorKind.TRANSPORT, f"cannot resolve {host}: {exc}", definite=True
        ) from None


def longest_exchange_seconds(connect_timeout: float, read_timeout: float) -> float:
    """The longest one request and its reply can take, unretried (as every `add` is): the
    connect (all addresses together), the wait for the reply's headers, and the body, which
    must have arrived REPLY_READS read timeouts after the start, checked after each chunk
    (so one more wait for a chunk can pass). Local work on either side is not counted."""
    return connect_timeout + (REPLY_READS + 1) * read_timeout


def _split_url(url: str) -> tuple[str, int]:
    """Host and port of an acceptable URL, or UNSAFE_URL."""
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        # Parsers disagree about these; a disagreement is how a check gets bypassed.
        raise _unsafe("URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        raise _unsafe("URL cannot be parsed (brackets or port)") from None
    if scheme not in ("http", "https"):
        raise _unsafe(f"only http and https URLs are allowed, not {scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise _unsafe("credentials in the URL are not allowed")
    if not host:
        raise _unsafe("URL has no host")
    return host, port or (443 if scheme == "https" else 80)


def _unsafe(message: str) -> ProviderError:
    return ProviderError(ErrorKind.UNSAFE_URL, message, definite=True)


def _vetted_addresses(host: str, port: int, *, allow_private: bool) -> list[AddrInfo]:
    """Resolve host; refuse unless every address is public. Raises socket.gaierror if none."""
    host = host.strip("[]")
    if not allow_private:
        _refuse_literal(host)  # even where getaddrinfo could not resolve it
    try:
        host.encode("idna")
    except UnicodeError:
        raise _unsafe(f"{host[:SNIPPET_CHARS]!r} is not a valid host name") from None
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(f"no addresses for {host}")
    if allow_private:
        return infos
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope id ("fe80::1%eth0")
        reason = _refusal(ipaddress.ip_address(address))
        if reason:
            # Refuse when *any* address is unsafe: the OS may pick any of them.
            raise _unsafe(f"{host} resolves to {address}, a {reason} address")
    return infos


def _refuse_literal(host: str) -> None:
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name (or a numeric trick such as "0x7f000001"): judged once resolved
    reason = _refusal(literal)
    if reason:
        raise _unsafe(f"{host} is a {reason} address")


def _refusal(ip: IPAddress) -> str | None:
    """Why an address is not one we may connect to, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or _nat64_embedded(ip)
        if embedded is not None and _refusal(embedded):
            return f"{_refusal(embedded)} (embedded in IPv6)"
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_private, "private"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),  # 224.0.0.0/4 counts as "global" in ipaddress
        (ip.is_reserved, "reserved"),
        (ip.is_unspecified, "unspecified"),
        (not ip.is_global, "non-global"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _nat64_embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # 64:ff9b::/96 reaches the embedded IPv4 address through a NAT64 gateway.
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _connect_vetted(conn: HTTPConnection, *, allow_private: bool) -> socket.socket:
    """urllib3's `_new_conn`, but connecting only to the addresses vetted in this same call.

    Resolution and connect share one getaddrinfo answer, so DNS rebinding between a check and
    the connect is impossible, and the check covers the exact host urllib3 parsed from the URL
    (no parser-differential tricks). Host header and TLS SNI/certificate keep the hostname.
    """
    try:
        infos = _vetted_addresses(
            conn._dns_host, conn.port or conn.default_port, allow_private=allow_private
        )
        sock = _connect_first(infos, conn)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        message = f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        raise ConnectTimeoutError(conn, message) from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    return sock


def _connect_first(infos: list[AddrInfo], conn: HTTPConnection) -> socket.socket:
    # The connect timeout bounds the whole connect, however many addresses are tried: the
    # watchdog's threshold for a stuck send is computed from it (longest_exchange_seconds).
    limit = conn.timeout if isinstance(conn.timeout, int | float) else None
    deadline = None if limit is None else time.monotonic() + limit
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("connect timeout spent on earlier addresses")
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if deadline is not None:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
            elif conn.timeout is None:
                sock.settimeout(None)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error or OSError("no address to connect to")


@functools.cache
def _pinned_pool_classes(allow_private: bool) -> dict[str, type[HTTPConnectionPool]]:
    class PinnedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _connect_vetted(self, allow_private=allow_private)

    class PinnedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _connect_vetted(self, allow_private=allow_private)

    class PinnedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPSConnection

    return {"http": PinnedHTTPConnectionPool, "https": PinnedHTTPSConnectionPool}


class _NoRedirectSession(requests.Session):
    def get_redirect_target(self, resp: requests.Response) -> str | None:
        # Redirects are never followed, nor even parsed (a broken Location would raise): a 3xx
        # reaches `_decode` as it is, whatever allow_redirects says.
        return None


class _PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections only reach vetted addresses."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private  # read by init_poolmanager, called by __init__
        # urllib3 must never resend on its own: whether a resend is safe is decided here.
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pinned_pool_classes(self._allow_private)


# --- Keys ---------------------------------------------------------------------------------------


def mask_key(key: str) -> str:
    """Enough of the ends to tell two keys apart in a log; never enough to guess the rest."""
    if len(key) < 20:
        return "****"
    return f"{key[:4]}…{key[-4:]}"


# --- Reading replies ----------------------------------------------------------------------------


class _Malformed(Exception):
    """A reply, or one item of it, that cannot be read: BAD_REPLY, outcome unknown."""


def _bad_reply(message: str) -> ProviderError:
    # Whatever the upstream meant, it received the request and may have acted on it.
    return ProviderError(ErrorKind.BAD_REPLY, message, definite=False)


def _transport(message: str, *, definite: bool, phase: Phase | None = None) -> ProviderError:
    return ProviderError(ErrorKind.TRANSPORT, message, definite=definite, phase=phase)


# How real panels say that our key, or the account behind it, is refused: every request
# will fail the same way until an admin deals with it at the upstream. One wording per line,
# lower case, in the pattern language below; add a panel's own words here.
KEY_REFUSALS: tuple[str, ...] = (
    r"(invalid|incorrect|wrong|bad|unknown) (api )?key\b",
    r"\bapi key (is )?(invalid|incorrect|wrong|not valid|not found|expired|revoked|disabled)",
    r"\bkey (is )?(not found|expired|revoked|disabled)",
    r"api (access )?(is )?disabled? for this user",  # "API is disable for this user or …"
    r"\buser (is )?not found",                          # "User not found", "User Not Found!"
    r"\b(your )?account (is |has been )?(banned|blocked|suspended|disabled|deactivated|"
    r"inactive|locked)",
    r"\b(user|account) (is )?(banned|blocked|suspended)",
    r"\bapi (access )?(is )?(disabled|not enabled|turned off)",
    r"^unauthori[sz]ed\b",
)

# How real panels answer an action they do not have (refill, refill_status or cancel on a
# panel without them): not the protocol's "Incorrect request", which upstreams also use for
# a list of ids they do not take, and which single-id requests then get past.
UNSUPPORTED_WORDS: tuple[str, ...] = (
    r"^request invalid\b",                  # "Request Invalid"
    r"\b(this )?action is invalid",          # "This action is Invalid"
    r"\b(invalid|unknown|unsupported) action",
    r"\baction (is )?(not found|not supported|not allowed|not available|disabled)",
    r"\b(method|action|function) not (supported|implemented)",
)

# Checked in order; a space in a pattern matches any run of spaces, "_", "." or "-", so the
# English texts and the untranslated keys ("neworder.error.min_quantity") share one pattern.
_ERROR_PATTERNS = {
    # Before BAD_LINK: "neworder.error.link_duplicate" mentions a link too.
    ErrorKind.DUPLICATE_LINK: r"active order with (this|the same) link|link duplicate|"
    r"duplicate (link|order)",
    ErrorKind.INVALID_KEY: "|".join(KEY_REFUSALS),
    ErrorKind.NOT_ENOUGH_FUNDS: r"not enough (funds|balance|money)|insufficient (funds|balance)|"
    r"low balance",
    ErrorKind.INCORRECT_SERVICE: r"(invalid|incorrect|wrong|unknown|bad) service|"
    r"service (id )?(not found|disabled|inactive|not active)",
    ErrorKind.QUANTITY_BOUNDS: r"quantity (less|more|greater|lower|higher|must|should|out)|"
    r"(min|max)(imal|imum)? quantity|(invalid|incorrect|wrong) quantity",
    ErrorKind.BAD_LINK: r"(invalid|incorrect|wrong|bad) (link|url)|neworder\.error\.link\b|"
    r"\blink (is )?(invalid|incorrect)",
    ErrorKind.INCORRECT_ORDER: r"(invalid|incorrect|wrong|unknown|bad) (order|refill)|"
    r"(order|refill) (id )?not found",
    ErrorKind.UNSUPPORTED: "|".join(UNSUPPORTED_WORDS),
}
_ERROR_REGEXES = [
    (kind, re.compile(pattern.replace(" ", r"[\s_.-]*")))
    for kind, pattern in _ERROR_PATTERNS.items()
]


def classify_error(text: str) -> ErrorKind:
    """ErrorKind of an upstream `{"error": text}`, English text or untranslated key."""
    lowered = text.lower()
    return next((kind for kind, regex in _ERROR_REGEXES if regex.search(lowered)), ErrorKind.OTHER)


def _error_text(reply: Any) -> str | None:
    """The message of an `{"error": …}` reply or item, or None when it is not one."""
    if not isinstance(reply, Mapping) or not reply.get("error"):
        return None
    error = reply["error"]
    if isinstance(error, Mapping):  # {"error": {"message": "…"}} and the like
        return str(error.get("message") or error.get("text") or _snippet(error))
    return str(error)


def _raise_for_error(value: Any) -> None:
    error = _error_text(value)
    if error is not None:
        raise ProviderError(classify_error(error), error, definite=True)


def _parse_json(body: bytes) -> Any:
    # Floats stay strings: money never passes through float, and `raw` stays JSON-serialisable.
    try:
        return json.loads(body, parse_float=str, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise _Malformed(f"reply is not JSON ({exc.__class__.__name__})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


_JSON_DECODER = json.JSONDecoder(parse_float=str, parse_constant=_refuse_constant)
# Where a JSON value may begin after an HTML prefix: right after a tag's closing ">".
_AFTER_TAG = re.compile(r">\s*([\[{])")


def _trailing_json(body: bytes) -> Any:
    """The JSON value that ends a body whose beginning is HTML: a PHP panel in development
    mode prints pages of warnings before every reply. The value must start right after an
    HTML tag and run to the very end, so the tail of a truncated or garbled JSON reply (which
    never follows a tag) is not mistaken for a whole reply. _Malformed when there is none."""
    text = body.decode("utf-8", "replace").rstrip()
    if not text.endswith(("}", "]")):
        raise _Malformed("reply is not JSON, nor HTML ending in JSON")
    for number, match in enumerate(_AFTER_TAG.finditer(text)):
        if number >= MAX_JSON_STARTS:
            break
        try:
            value, end = _JSON_DECODER.raw_decode(text, match.start(1))
        except (ValueError, RecursionError):
            continue
        if end == len(text):
            return value
    raise _Malformed("reply is not JSON, nor HTML ending in JSON")


def _to_decimal(value: Any) -> Decimal | None:
    """A number sent as a number or a string; None for null or ""."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _Malformed(f"not a number: {_snippet(value)}")
    try:
        number = Decimal(str(value).strip())  # via str: 0.1 stays 0.1, not 0.1000000000000000055
    except InvalidOperation:
        raise _Malformed(f"not a number: {_snippet(value)}") from None
    if not number.is_finite() or number.adjusted() > 18:
        raise _Malformed(f"not a usable number: {_snippet(value)}")
    return number


def _to_int(value: Any) -> int | None:
    number = _to_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise _Malformed(f"not a whole number: {_snippet(value)}")
    return int(number)


def _lenient(parse: Callable[[Any], T | None], value: Any) -> T | None:
    """For informational fields: a value we cannot read is as good as a missing one."""
    try:
        return parse(value)
    except _Malformed:
        return None


_TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", ""})


def _to_bool(value: Any) -> bool:
    """true/false, 1/0, "1"/"0", "yes"/"no"; anything else is malformed."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return value != 0
    word = str(value).strip().lower()
    if word not in _TRUE_WORDS | _FALSE_WORDS:
        raise _Malformed(f"not a yes/no value: {_snippet(value)}")
    return word in _TRUE_WORDS


def _flag(value: Any) -> bool:
    # A catalog flag we cannot read means "not offered": the safe side for refill and cancel.
    return bool(_lenient(_to_bool, value))


def _text(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        return ""
    return str(value).strip()


def _status_word(value: Any) -> str:
    """'IN PROGRESS', 'in_progress', 'inprogress' and 'In progress' all become 'inprogress'."""
    if not isinstance(value, str):
        raise _Malformed(f"status is not text: {_snippet(value)}")
    return re.sub(r"[\s_-]+", "", value).lower()


_ORDER_STATUSES = {
    "pending": UpstreamStatus.PENDING,
    "inprogress": UpstreamStatus.IN_PROGRESS,
    "processing": UpstreamStatus.PROCESSING,
    "completed": UpstreamStatus.COMPLETED,
    "complete": UpstreamStatus.COMPLETED,
    "partial": UpstreamStatus.PARTIAL,
    "canceled": UpstreamStatus.CANCELED,
    "cancelled": UpstreamStatus.CANCELED,
    "refunded": UpstreamStatus.CANCELED,  # refunded in full: the money outcome of a cancel
}

_REFILL_STATES = {
    "pending": RefillState.PENDING,
    "inprogress": RefillState.IN_PROGRESS,
    "processing": RefillState.IN_PROGRESS,
    "completed": RefillState.COMPLETED,
    "complete": RefillState.COMPLETED,
    "rejected": RefillState.REJECTED,
    "error": RefillState.REJECTED,
}


def _order_status(item: Any) -> OrderStatus:
    _raise_for_error(item)
    if not isinstance(item, Mapping):
        raise _Malformed(f"order status is not an object: {_snippet(item)}")
    status = _ORDER_STATUSES.get(_status_word(item.get("status")))
    if status is None:
        raise _Malformed(f"unknown order status {_snippet(item.get('status'))}")
    return OrderStatus(
        status=status,
        charge=_lenient(_to_decimal, item.get("charge")),
        start_count=_lenient(_to_int, item.get("start_count")),
        remains=_remains(item.get("remains")),
        currency=_text(item.get("currency")) or None,
        quantity=_lenient(_to_int, item.get("quantity")),
        raw=dict(item),
    )


def _remains(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() in ("unknown", "n/a", "-"):
        return None
    remains = _to_int(value)
    # Negative remains means over-delivered: nothing is left to refund.
    return None if remains is None else max(0, remains)


def _refill_state(value: Any) -> RefillState:
    _raise_for_error(value)
    state = _REFILL_STATES.get(_status_word(value))
    if state is None:
        raise _Malformed(f"unknown refill status {_snippet(value)}")
    return state


def _upstream_id(value: Any) -> int:
    _raise_for_error(value)
    number = _lenient(_to_int, value)
    if number is None or number <= 0:
        raise _Malformed(f"not an id: {_snippet(value)}")
    return number


def _cancel_accepted(value: Any) -> bool:
    _raise_for_error(value)
    return _to_bool(value)


def _field(name: str, parse: Callable[[Any], T]) -> Callable[[Any], T]:
    """A reader of a single-form reply `{name: value}` (`{"order": 1}`, `{"status": "…"}`)."""

    def read(reply: Any) -> T:
        if not isinstance(reply, Mapping) or name not in reply:
            raise _Malformed(f"no {name!r} in {_snippet(reply)}")
        return parse(reply[name])

    return read


def _balance(reply: Any) -> Balance:
    amount = _field("balance", _to_decimal)(reply)
    if amount is None:
        raise _Malformed(f"no balance in {_snippet(reply)}")
    return Balance(amount=amount, currency=_text(reply.get("currency")))


def _service(item: Any) -> UpstreamService:
    if not isinstance(item, Mapping):
        raise _Malformed(f"service is not an object: {_snippet(item)}")
    service, rate = _to_int(item.get("service")), _to_decimal(item.get("rate"))
    low, high = _to_int(item.get("min")), _to_int(item.get("max"))
    if service is None or rate is None or low is None or high is None:
        raise _Malformed(f"service {service} lacks service/rate/min/max")
    if rate < 0 or low < 0 or high < low:
        raise _Malformed(f"service {service} has rate {rate}, min {low}, max {high}")
    return UpstreamService(
        service=service,
        name=_text(item.get("name")),
        type=_text(item.get("type")) or "Default",
        category=_text(item.get("category")),
        rate=rate,
        min=low,
        max=high,
        refill=_flag(item.get("refill")),
        cancel=_flag(item.get("cancel")),
        dripfeed=_flag(item.get("dripfeed")),
        description=_text(item.get("description")),
        raw=dict(item),
    )


def _service_items(reply: Any) -> list[Any]:
    if isinstance(reply, list):
        return reply
    # Some panels key the catalog by service id; the values are the services.
    if isinstance(reply, Mapping) and reply and all(isinstance(v, Mapping) for v in reply.values()):
        return list(reply.values())
    raise _Malformed(f"services reply is not a list: {_snippet(reply)}")


def _index_batch(
    reply: Any, ids: Sequence[int], id_field: str, value_field: str | None
) -> dict[int, Any]:
    """Map each id of a batch reply to its value, whichever shape came back.

    The value is the whole item when `value_field` is None (status), else that field of it
    (`refill`, `status`, `cancel`). Entries whose id cannot be read are skipped: the ids they
    were meant for then count as missing.
    """
    if isinstance(reply, list):
        pairs = (_list_entry(entry, id_field, value_field) for entry in reply)
        return dict(pair for pair in pairs if pair is not None)
    if isinstance(reply, Mapping) and all(re.fullmatch(r"\s*\d+\s*", str(k)) for k in reply):
        return {int(k): _unwrap(v, value_field) for k, v in reply.items()}
    if isinstance(reply, Mapping) and len(ids) == 1 and (value_field or "status") in reply:
        # One id asked and the single-id shape answered: unambiguous.
        return {ids[0]: _unwrap(reply, value_field)}
    raise _Malformed(f"unexpected batch reply: {_snippet(reply)}")


def _list_entry(entry: Any, id_field: str, value_field: str | None) -> tuple[int, Any] | None:
    if not isinstance(entry, Mapping):
        return None
    entry_id = _lenient(_to_int, entry.get(id_field, entry.get("id")))
    return None if entry_id is None else (entry_id, _unwrap(entry, value_field))


def _unwrap(value: Any, value_field: str | None) -> Any:
    if value_field is not None and isinstance(value, Mapping) and value_field in value:
        return value[value_field]
    return value


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _snippet(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = re.sub(r"\s+", " ", value if isinstance(value, str) else repr(value)).strip()
    return repr(text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else ""))


def _add_form(params: Mapping[str, AddParam]) -> dict[str, str]:
    form: dict[str, str] = {}
    for name, value in params.items():
        if name not in ADD_PARAMS:
            raise ValueError(f"unknown add parameter {name!r}")
        if isinstance(value, bool):
            raise TypeError(f"add parameter {name!r} must not be a bool")
        if value is None:
            continue
        if isinstance(value, str | int):
            form[name] = str(value)
        else:
            form[name] = "\n".join(str(line) for line in value)  # lists go one per line
    return form


def _decode(action: str, http_status: int, body: bytes, location: str) -> Any:
    """The JSON of a reply, or ProviderError for a redirect, an HTTP error or an error reply."""
    if 300 <= http_status < 400:
        # Definite: redirects come from the web server or routing (http→https, a moved domain, a
        # trailing slash) before any API code runs; the API itself answers 200 with JSON. It is
        # not followed, so nothing is resent anywhere: the provider URL needs fixing.
        message = f"HTTP {http_status} redirect to {_snippet(location)} not followed; fix the URL"
        raise _transport(message, definite=True)
    if http_status == 429:
        # Rate limited: refused before anything was done, and only for now.
        raise ProviderError(ErrorKind.RATE_LIMITED, f"HTTP 429 rate limited: {_snippet(body)}",
                            definite=True)
    if not 200 <= http_status < 500:
        # The application may have crashed after acting on the request.
        raise _transport(f"HTTP {http_status}: {_snippet(body)}", definite=False)
    try:
        reply = _parse_json(body)
    except _Malformed as exc:
        if http_status >= 400:
            # A 4xx page (forbidden, rate limited, not found) refuses the request unprocessed.
            raise _transport(f"HTTP {http_status}: {_snippet(body)}", definite=True) from None
        reply = _lenient_reply(action, body, exc)
    if action == "add" and _error_text(reply) and reply.get("order"):
        # An error *and* an order id: the order may exist.
        raise _bad_reply(f"error with an order id: {_snippet(reply)}")
    _raise_for_error(reply)
    if http_status >= 400:
        raise _transport(f"HTTP {http_status}: {_snippet(reply)}", definite=True)
    return reply


def _lenient_reply(action: str, body: bytes, exc: _Malformed) -> Any:
    """A read-only call's JSON found after an HTML prefix; anything else stays garbage. An
    `add`, `refill` or `cancel` answered that way keeps its unknown outcome: whatever the
    JSON at the end says, the page before it shows the upstream did not run as it should."""
    if action not in READ_ONLY_ACTIONS:
        raise _bad_reply(f"{exc}: {_snippet(body)}")
    try:
        reply = _trailing_json(body)
    except _Malformed:
        raise _bad_reply(f"{exc}: {_snippet(body)}") from None
    logger.warning("action=%s reply of %d bytes began with HTML; read the JSON at its end",
                   action, len(body))
    return reply


_NOT_SENT_ERRORS = (
    requests.ConnectTimeout,  # raised only while connecting, before anything was written
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


def _failed_before_sending(exc: requests.RequestException) -> bool:
    """True when requests failed before any byte of the request can have left."""
    if isinstance(exc, _NOT_SENT_ERRORS):
        return True
    # Refused, unreachable, name resolution (NewConnectionError), or a certificate rejected in
    # the TLS handshake. Other TLS errors can happen while reading the reply: they stay unknown.
    not_sent = NewConnectionError | ssl.SSLCertVerificationError
    return any(isinstance(cause, not_sent) for cause in _causes(exc))


def _read_timed_out(exc: requests.RequestException) -> bool:
    """The request went out and no reply came within the read timeout (requests raises
    ReadTimeout waiting for the headers, ConnectionError around urllib3's ReadTimeoutError
    while streaming the body)."""
    return any(isinstance(cause, requests.ReadTimeout | ReadTimeoutError)
               for cause in _causes(exc))


def _phase_of(exc: requests.RequestException, not_sent: bool) -> Phase:
    if not_sent:
        return Phase.CONNECT
    if any(isinstance(cause, BrokenPipeError) for cause in _causes(exc)):
        return Phase.SEND
    return Phase.READ


def _phase_after_reply(exc: ProviderError | _Malformed) -> Phase:
    """The phase of a failure once a reply with an HTTP status came back."""
    if isinstance(exc, _Malformed) or exc.kind == ErrorKind.BAD_REPLY:
        return Phase.PARSE
    if exc.kind in (ErrorKind.TRANSPORT, ErrorKind.RATE_LIMITED):
        return Phase.HTTP
    return Phase.REPLY


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """exc and what it wraps: requests and urllib3 nest errors in args, `.reason` and causes."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = (getattr(current, "reason", None), current.__cause__, *current.args)
        pending.extend(item for item in wrapped if isinstance(item, BaseException))


def _as_they_come(response: requests.Response) -> Iterator[bytes]:
    """The body in pieces as they arrive. requests' iter_content waits for a full chunk
    (a buffered read of 64 KiB loops over the socket until it has them), so a reply that
    trickles in a byte at a time would never reach the caller's deadline check; read1
    returns whatever one read brought. urllib3's errors become requests' ones, as there."""
    raw = response.raw
    try:
        while chunk := raw.read1(64 * 1024, decode_content=True):
            yield chunk
    except urllib3_exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3_exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except urllib3_exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except urllib3_exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


# --- The client ---------------------------------------------------------------------------------


class Client:
    """One upstream API v2 provider. Not thread-safe: one requests.Session per Client."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        name: str = "provider",
        connect_timeout: float = 5,
        read_timeout: float = 20,
        allow_private: bool = False,
        read_retries: int = 2,
        retry_backoff: float = 0.5,
        user_agent: str = "smm-reseller-panel/1.0",
    ) -> None:
        if min(connect_timeout, read_timeout) <= 0 or min(read_retries, retry_backoff) < 0:
            raise ValueError("timeouts must be positive, retries and backoff not negative")
        self.url = url
        self._key = key
        self.name = name
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.allow_private = allow_private
        self.read_retries = read_retries
        self.retry_backoff = retry_backoff
        self._session = self._make_session(user_agent)

    def _make_session(self, user_agent: str) -> requests.Session:
        session = _NoRedirectSession()
        # No proxy or netrc from the environment: a proxy would resolve and connect for us,
        # bypassing the address pinning, and netrc could attach credentials.
        session.trust_env = False
        session.verify = True
        adapter = _PinnedAdapter(allow_private=self.allow_private)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        return session

    def __repr__(self) -> str:
        url, key = self._scrub(self.url), mask_key(self._key)
        return f"Client(name={self.name!r}, url={url!r}, key={key!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Actions ---

    def services(self) -> list[UpstreamService]:
        """The upstream catalog. Malformed entries are skipped and logged, not fatal."""
        return self._call("services", {}, self._catalog, read_only=True)

    def add(self, service: int, **params: AddParam) -> int:
        """Place an order; the upstream order id. Never resent: a resend can buy twice.

        Lists (comments, usernames, …) are sent one per line; None values are left out.
        """
        form = {"service": str(service), **_add_form(params)}
        return self._call("add", form, _field("order", _upstream_id), read_only=False)

    def status(self, order: int) -> OrderStatus:
        return self._call("status", {"order": str(order)}, _order_status, read_only=True)

    def statuses(self, orders: Sequence[int]) -> dict[int, OrderStatus | ProviderError]:
        return self._batch("status", "orders", orders, ("order", None), _order_status, True)

    def refill(self, order: int) -> int:
        """Ask for a refill; the upstream refill id. Never resent."""
        read = _field("refill", _upstream_id)
        return self._call("refill", {"order": str(order)}, read, read_only=False)

    def refills(self, orders: Sequence[int]) -> dict[int, int | ProviderError]:
        return self._batch("refill", "orders", orders, ("order", "refill"), _upstream_id, False)

    def refill_status(self, refill: int) -> RefillState:
        read = _field("status", _refill_state)
        return self._call("refill_status", {"refill": str(refill)}, read, read_only=True)

    def refill_statuses(self, refills: Sequence[int]) -> dict[int, RefillState | ProviderError]:
        fields = ("refill", "status")
        return self._batch("refill_status", "refills", refills, fields, _refill_state, True)

    def cancel(self, orders: Sequence[int]) -> dict[int, bool | ProviderError]:
        """True: the cancel request was accepted; the order's later status tells. Never resent."""
        return self._batch("cancel", "orders", orders, ("order", "cancel"), _cancel_accepted, False)

    def balance(self) -> Balance:
        return self._call("balance", {}, _balance, read_only=True)

    def _catalog(self, reply: Any) -> list[UpstreamService]:
        items, services, skipped = _service_items(reply), [], []
        for item in items:
            try:
                services.append(_service(item))
            except _Malformed as exc:
                skipped.append(str(exc))
        if skipped:
            first = self._scrub(skipped[0])
            logger.warning("provider=%s skipped %d services: %s", self.name, len(skipped), first)
        if items and not services:
            raise _Malformed("no readable service in the catalog")
        return services

    # --- Batches ---

    def _batch(
        self,
        action: str,
        id_param: str,
        ids: Sequence[int],
        fields: tuple[str, str | None],
        parse: Callable[[Any], T],
        read_only: bool,
    ) -> dict[int, T | ProviderError]:
        """Per-id results or errors, sending at most 100 ids per request.

        Raises when the first request fails as a whole (no other request is sent then). When a
        later one fails, its ids carry that error and the ids not sent yet a definite error.
        """
        unique = list(dict.fromkeys(int(i) for i in ids))  # repeats would confuse keyed replies
        results: dict[int, T | ProviderError] = {}
        for number, chunk in enumerate(_chunks(unique, MAX_IDS_PER_REQUEST)):
            form = {id_param: ",".join(map(str, chunk))}
            read = self._batch_reader(action, chunk, fields, parse)
            try:
                results.update(self._call(action, form, read, read_only=read_only, ids=len(chunk)))
            except ProviderError as err:
                if number == 0:
                    raise
                results.update(dict.fromkeys(chunk, err))
                unsent = _transport(
                    f"not sent after an earlier failure: {err.message}", definite=True
                )
                results.update(dict.fromkeys(unique[len(results) :], self._finish(unsent, action)))
                break
        return results

    def _batch_reader(
        self,
        action: str,
        chunk: list[int],
        fields: tuple[str, str | None],
        parse: Callable[[Any], T],
    ) -> Callable[[Any], dict[int, T | ProviderError]]:
        def read(reply: Any) -> dict[int, T | ProviderError]:
            index = _index_batch(reply, chunk, *fields)
            return {i: self._batch_item(action, i, index, parse) for i in chunk}

        return read

    def _batch_item(
        self, action: str, item_id: int, index: Mapping[int, Any], parse: Callable[[Any], T]
    ) -> T | ProviderError:
        try:
            if item_id not in index:
                # It may have been acted on and left out of the reply: unknown, not definite.
                raise _Malformed(f"no entry for {item_id} in the reply")
            return parse(index[item_id])
        except (ProviderError, _Malformed) as exc:
            return self._finish(exc, action)

    # --- Transport ---

    def _call(
        self,
        action: str,
        params: Mapping[str, str],
        read: Callable[[Any], T],
        *,
        read_only: bool,
        ids: int | None = None,
    ) -> T:
        """Post, decode and read one reply. Only read-only actions are retried."""
        attempts = 1 + (self.read_retries if read_only else 0)
        for attempt in range(1, attempts + 1):
            try:
                return self._exchange(action, params, read, ids=ids, attempt=attempt)
            except ProviderError as err:
                # An {"error"} reply is an answer, and an unsafe URL stays unsafe: no retry.
                # Nor is a list of ids that timed out asked again as it is: an upstream that
                # slows down with the list's size would time out again; the caller shrinks it.
                retryable = err.kind in (ErrorKind.TRANSPORT, ErrorKind.BAD_REPLY) and not (
                    err.timed_out and (ids or 0) > 1)
                if attempt == attempts or not retryable:
                    raise
            time.sleep(self.retry_backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        action: str,
        params: Mapping[str, str],
        read: Callable[[Any], T],
        *,
        ids: int | None,
        attempt: int,
    ) -> T:
        """One HTTP request and its reply, logged as one record."""
        started, http_status, body = time.monotonic(), None, b""
        try:
            try:
                check_url(self.url, allow_private=self.allow_private)
            except ProviderError as exc:
                exc.phase = Phase.CONNECT
                raise
            http_status, body, location = self._post(action, params)
            result = read(_decode(action, http_status, body, location))
        except (ProviderError, _Malformed) as exc:
            phase = getattr(exc, "phase", None) or _phase_after_reply(exc)
            err = self._finish(exc, action, phase=phase, http_status=http_status, body=body)
            self._log(action, ids, attempt, started, http_status, err)
            raise err from None
        self._log(action, ids, attempt, started, http_status, None)
        return result

    def _post(self, action: str, params: Mapping[str, str]) -> tuple[int, bytes, str]:
        data = {"key": self._key, "action": action, **params}
        timeout = (self.connect_timeout, self.read_timeout)
        try:
            started = time.monotonic()
            with self._session.post(
                self.url, data=data, timeout=timeout, allow_redirects=False, stream=True
            ) as response:
                body = self._read_body(response, started)
                return response.status_code, body, response.headers.get("Location", "")
        except requests.RequestException as exc:
            message = f"{exc.__class__.__name__}: {exc}"
            not_sent = _failed_before_sending(exc)
            error = _transport(message, definite=not_sent, phase=_phase_of(exc, not_sent))
            error.timed_out = _read_timed_out(exc)
            raise error from None
        except ProviderError as exc:
            exc.phase = exc.phase or Phase.CONNECT  # refused by the pinned connection
            raise
        except Exception as exc:
            # Anything else escaping the HTTP stack: we cannot tell how far the request got.
            # (No traceback logged: its text is not scrubbed of the key.)
            raise _transport(f"{exc.__class__.__name__}: {exc}", definite=False,
                             phase=Phase.READ) from None

    def _read_body(self, response: requests.Response, started: float) -> bytes:
        # read_timeout bounds each wait for data; the deadline bounds a reply that trickles in.
        deadline = started + self.connect_timeout + REPLY_READS * self.read_timeout
        chunks, size = [], 0
        for chunk in _as_they_come(response):
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise ProviderError(ErrorKind.BAD_REPLY, f"reply larger than {MAX_REPLY_BYTES} "
                                    "bytes", definite=False, phase=Phase.READ)
            if time.monotonic() > deadline:
                error = _transport("reply took too long to arrive", definite=False,
                                   phase=Phase.READ)
                error.timed_out = True
                raise error
            chunks.append(chunk)
        return b"".join(chunks)

    # --- Errors and logs never carry the key ---

    def _finish(self, exc: ProviderError | _Malformed, action: str, *, phase: Phase | None = None,
                http_status: int | None = None, body: bytes = b"") -> ProviderError:
        """The error as callers see it: key scrubbed, action named, and where it happened."""
        err = _bad_reply(str(exc)) if isinstance(exc, _Malformed) else exc
        message = self._scrub(err.message)
        # Scrubbed before it is cut, so a key across the cut cannot leave a piece behind.
        head = body[:REPLY_START_CHARS * 4 + 3 * len(self._key)].decode("utf-8", "replace")
        # NUL cannot be stored in a PostgreSQL text column: an upstream's garbage may hold it.
        reply_start = self._scrub(head).replace("\x00", "\ufffd")[:REPLY_START_CHARS]
        return ProviderError(err.kind, message, definite=err.definite, action=action,
                             phase=phase or err.phase, http_status=http_status or err.http_status,
                             reply_start=reply_start or err.reply_start, timed_out=err.timed_out)

    def _scrub(self, text: str) -> str:
        if not self._key:
            return text
        for variant in {self._key, quote_plus(self._key), quote(self._key, safe="")}:
            text = text.replace(variant, mask_key(self._key))
        return text

    def _log(
        self,
        action: str,
        ids: int | None,
        attempt: int,
        started: float,
        http_status: int | None,
        err: ProviderError | None,
    ) -> None:
        seconds = time.monotonic() - started
        duration_ms = round(seconds * 1000)
        outcome = "ok"
        if err is not None:
            outcome = f"{err.kind}/{'definite' if err.definite else 'unknown'}"
        context = dict(log_context.get())
        logger.log(
            logging.INFO if err is None else logging.WARNING,
            "provider=%s action=%s ids=%s attempt=%d http=%s duration_ms=%d outcome=%s%s%s%s",
            self.name,
            action,
            "-" if ids is None else ids,
            attempt,
            http_status or "-",
            duration_ms,
            outcome,
            "".join(f" {name}={value}" for name, value in context.items()),
            "" if err is None or err.phase is None else f" phase={err.phase}",
            "" if err is None else f" error={err.message}",  # already scrubbed
            extra={
                "provider": self.name,
                "upstream_action": action,
                "ids": ids,
                "http_status": http_status,
                "duration_ms": duration_ms,
                "outcome": outcome,
                "phase": None if err is None else err.phase,
                **context,
            },
        )
        call = UpstreamCall(self.name, action, outcome, seconds, http_status)
        for observe in CALL_OBSERVERS:
            try:
                observe(call)
            except Exception:
                logger.debug("an upstream call observer failed", exc_info=True)
