import ipaddress
import socket
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _refuse_non_loopback(address: Any) -> None:
    """No test touches the internet: any connect to a non-loopback address fails loudly."""
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise OSError(f"test tried to connect to unresolved host {host!r}") from None
        if not ip.is_loopback:
            raise OSError(f"test tried to connect to non-loopback address {host}")


def _guarded(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _refuse_non_loopback(address)
        return real(self, address)

    return connect


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded(_real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded(_real_connect_ex)  # type: ignore[method-assign]


# --- shared fixtures -------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fresh_catalog_cache(settings):
    """Ids repeat across tests, so the per-process catalog cache must not outlive one; the
    test that proves the cache turns it on itself."""
    from orders import placing

    settings.CATALOG_CACHE_SECONDS = 0
    placing._catalog.clear()
    yield
    placing._catalog.clear()


@pytest.fixture
def sandbox():
    """A live API v2 upstream on 127.0.0.1 where orders finish at their first status query."""
    from providers.sandbox import SandboxServer

    server = SandboxServer(port=0, step_seconds=0, partial_every=0, rejected_every=0).start()
    yield server
    server.stop()


def make_provider(sandbox: Any, name: str = "Sandbox", **fields: Any) -> Any:
    from providers.models import Provider

    provider = Provider(name=name, api_url=sandbox.url, **fields)
    provider.api_key = fields.pop("api_key", sandbox.key)
    provider.save()
    return provider


@pytest.fixture
def provider(db, sandbox):
    return make_provider(sandbox)


def valid_add_params(service: dict[str, Any]) -> dict[str, Any]:
    """Parameters of a valid `add` for one API v2 service, at its minimum quantity."""
    kind, low = service["type"], int(service["min"])
    link = f"https://instagram.com/p/test{service['service']}"
    lines = [f"line {i}" for i in range(max(low, 1))]
    by_type: dict[str, dict[str, Any]] = {
        "Default": {"link": link, "quantity": low},
        "Package": {"link": link},
        "Custom Comments": {"link": link, "comments": lines},
        "Custom Comments Package": {"link": link, "comments": lines},
        "Mentions with Hashtags": {"link": link, "quantity": low, "usernames": ["a", "b"],
                                   "hashtags": ["#x", "#y"]},
        "Mentions Custom List": {"link": link, "usernames": [f"user{i}" for i in range(low)]},
        "Mentions Hashtag": {"link": link, "quantity": low, "hashtag": "#travel"},
        "Mentions User Followers": {"link": link, "quantity": low,
                                    "username": "https://instagram.com/someone"},
        "Mentions Media Likers": {"link": link, "quantity": low,
                                  "media": "https://instagram.com/p/media1"},
        "Subscriptions": {"username": "someone", "min": low, "max": low, "delay": 0,
                          "posts": 3},
        "Comment Likes": {"link": link, "quantity": low, "username": "owner"},
        "Comment Replies": {"link": link, "username": "owner", "comments": lines},
        "Poll": {"link": link, "quantity": low, "answer_number": 2},
        "Invites from Groups": {"link": link, "quantity": low, "groups": ["group1", "group2"]},
    }
    return by_type[kind]


def pytest_sessionstart(session: pytest.Session) -> None:
    import os

    from panel.celery import app as celery_app

    # On-commit kicks in tests must not land in the development broker's queue folder,
    # where a `make run` worker would pick them up; CI's Redis is a throwaway database.
    if not os.environ.get("REDIS_URL"):
        celery_app.conf.update(broker_url="memory://")


def make_customer(username: str, balance: Decimal | str = "100", **fields: Any) -> Any:
    from allauth.account.models import EmailAddress

    from panel import ledger
    from panel.models import User

    user = User.objects.create_user(username, f"{username}@example.com", "pw-123456789",
                                    **fields)
    # A customer who signed up has verified their address; login refuses one who has not.
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    if Decimal(balance) > 0:
        ledger.deposit(user.pk, Decimal(balance), memo="test deposit")
    user.refresh_from_db()
    return user


def make_service(provider: Any, upstream_type: str = "Default", **fields: Any) -> Any:
    """A service we sell, routed to the first offered upstream service of that type."""
    from orders.models import Category, Route, Service
    from providers.models import ProviderService

    upstream = (ProviderService.objects.filter(provider=provider, type=upstream_type,
                                               offered=True, **fields.pop("upstream", {}))
                .order_by("upstream_id").first())
    assert upstream is not None, f"no upstream {upstream_type} service; sync first"
    category, _ = Category.objects.get_or_create(name=upstream.category)
    values = {"name": upstream.name, "type": upstream.type, "min_quantity": upstream.min_quantity,
              "max_quantity": upstream.max_quantity, "refill": upstream.refill,
              "cancel": upstream.cancel, "dripfeed": upstream.dripfeed, **fields}
    service = Service.objects.create(category=category, **values)
    Route.objects.create(service=service, provider_service=upstream, priority=0)
    return service


@pytest.fixture
def catalog(provider):
    from providers.sync import sync_catalog

    assert sync_catalog(provider).ok
    return provider


@pytest.fixture
def alice(db):
    return make_customer("alice")


@pytest.fixture
def bob(db):
    return make_customer("bob")


@pytest.fixture
def ledger_stays_clean(db):
    """After each payment test: every balance still equals the sum of its entries."""
    from django.core.management import call_command

    from panel.ledger import mismatched_balances

    yield
    assert mismatched_balances() == []
    call_command("check_ledger")


@pytest.fixture
def staff_member(db):
    from panel.models import User

    return User.objects.create_user("sam", "sam@example.com", "pw-123456789", is_staff=True)


# --- browser tests ---------------------------------------------------------------------------
# One Chromium for the whole session (Debian's, never Playwright's download); a fresh context
# per test, at each size the pages must work at. pytest-django's live_server is shared too.

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="session")
def chromium():
    import os
    from pathlib import Path

    # Not importorskip or skipif: without playwright or Chromium these tests must fail, not
    # vanish (.ci/run installs Chromium).
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM_PATH).exists(), "browser tests need Debian's chromium package"
    # Playwright's sync API runs an event loop in this thread; the live server and the ORM
    # calls of the tests are plain synchronous code all the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(chromium: Any, size: str = "desktop") -> Any:
    """A new page in its own context (cookies, storage) at one of VIEWPORTS' sizes."""
    context = chromium.new_context(viewport=VIEWPORTS[size], locale="en-US",
                                   timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


@pytest.fixture(params=list(VIEWPORTS))
def browser_page(request, chromium, live_server):
    """A page at desktop size, then the same test again at phone size (390×844)."""
    from django.db import connections

    page = open_page(chromium, request.param)
    yield page
    page.context.close()
    # While Playwright's loop runs, the ORM keeps its connections in this context, not the
    # thread's: close them here, or the test database cannot be dropped at the end.
    connections.close_all()


def screenshot(page: Any, area: str, name: str) -> Any:
    """Save the whole page as var/screenshots/<area>/<name>-<desktop|phone>.png."""
    from pathlib import Path

    size = "phone" if page.viewport_size["width"] <= VIEWPORTS["phone"]["width"] else "desktop"
    path = Path(__file__).resolve().parent.parent / "var" / "screenshots" / area / \
        f"{name}-{size}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in_browser(page: Any, live_server: Any, user: Any) -> None:
    """Give the page a logged-in session for `user` without typing (the login page has its
    own tests)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                               "url": live_server.url}])


# --- the staff desk ---------------------------------------------------------------------------

def make_staff(username: str = "sam", *areas: str, superuser: bool = False) -> Any:
    """A member of the Staff group (the group's desk areas: panel.roles.STAFF_DESK_AREAS),
    plus the desk `areas` given (e.g. "balances") on the user itself."""
    from django.contrib.auth.models import Permission

    from panel.roles import ensure_groups

    staff_group, _ = ensure_groups()
    user = make_customer(username, balance="0", is_staff=True, is_superuser=superuser)
    user.groups.add(staff_group)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="desk",
                                                         codename__in=areas))
    return user


def totp_code(secret: str, at: float | None = None) -> str:
    """The six-digit RFC 6238 code of a base32 secret now (30 s steps, HMAC-SHA1), computed
    here rather than by allauth, whose acceptance of it is under test."""
    import base64
    import hashlib
    import hmac
    import struct
    import time

    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"
