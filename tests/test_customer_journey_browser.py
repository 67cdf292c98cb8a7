"""A new customer's whole first day in Chromium, at desktop and phone size.

Sign up, follow the verification link from the mail, log in, get funds (a staff deposit in the
admin, until payments land), order one service of every type through the form — the live
charge shown must equal the charge taken —, place a mass order of 20 lines with 2 bad ones,
watch the orders reach Completed as the sandbox delivers them, ask for a refill and a cancel,
and read the transactions. A "beat" thread runs the panel's real sweeps against the sandbox
provider over HTTP, as Celery beat and a worker would. Screenshots under
var/screenshots/journey/.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command

from orders import cancels, dispatch, polling, refills
from orders.models import Order, Refill, Service
from orders.params import SERVICE_TYPES, TYPE_SPECS
from panel.models import LedgerEntry, User
from tests.conftest import make_service, open_page, screenshot, valid_add_params

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-journey-passphrase-7"
SWEEPS = (dispatch.dispatch_due, cancels.send_cancels, refills.send_refills,
          polling.poll_orders, polling.poll_refills)


class Beat:
    """The panel's sweeps, every 0.3 s in a thread of their own, while running is set."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self.stopped.is_set():
                if self.running.is_set():
                    for sweep in SWEEPS:
                        sweep()
                time.sleep(0.3)
        finally:
            connection.close()


@pytest.fixture(autouse=True)
def fresh_limits(settings, request):
    """Own rate-limit cache per test (allauth counts mails per address); a fast hasher."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"journey-{request.node.nodeid}"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def beat(settings) -> Iterator[Beat]:
    settings.POLL_FIRST_DELAY = 0  # a sent order is looked at on the next sweep
    settings.POLL_MAX_DELAY = 1
    beat = Beat()
    beat.thread.start()
    yield beat
    beat.stopped.set()
    beat.thread.join(timeout=10)


@pytest.fixture
def shop(catalog) -> dict[str, Service]:
    """One service of every type for sale, the Default one refillable and cancellable."""
    services = {t: make_service(catalog, t) for t in SERVICE_TYPES if t != "Default"}
    services["Default"] = make_service(catalog, "Default", refill=True, cancel=True,
                                       upstream={"refill": True, "cancel": True})
    return services


def _menu(page, name: str):
    """A navigation entry; on a phone it sits behind the menu button."""
    toggle = page.locator("summary.nav-toggle")
    if toggle.is_visible() and page.locator("details.nav-menu").get_attribute("open") is None:
        toggle.click()
    return page.locator(".nav-links").get_by_role("link", name=name, exact=True)


def _sign_up_and_verify(page, live_server, username: str) -> User:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_label("I accept the terms of service").check()
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    sent = [m for m in mail.outbox if m.to == [f"{username}@example.com"]]
    assert len(sent) == 1
    link = re.search(r"https?://\S+", str(sent[0].body))
    assert link, sent[0].body
    page.goto(link.group(0))
    page.get_by_role("button", name="Yes, confirm it").click()
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".topbar-balance")).to_contain_text("0.00")
    return User.objects.get(username=username)


def _staff_deposits(chromium, live_server, customer: User, amount: str) -> None:
    from playwright.sync_api import expect

    User.objects.create_superuser("deskstaff", "desk@example.com", PASSWORD)
    page = open_page(chromium, "desktop")
    try:
        page.goto(f"{live_server.url}/admin/login/")
        page.get_by_label("Username").fill("deskstaff")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live_server.url}/admin/panel/user/{customer.pk}/deposit/")
        page.get_by_label("Amount").fill(amount)
        page.get_by_label("Memo").fill("bank transfer 1001")
        page.get_by_role("button", name="Deposit").click()
        expect(page.get_by_text(re.compile(r"Deposited .* to "))).to_be_visible()
    finally:
        page.context.close()


def _fill_type_fields(page, service: Service) -> None:
    """The service type's fields, from the same table the form is made from."""
    values = valid_add_params({"service": service.pk, "type": service.type,
                               "min": service.min_quantity})
    for field in TYPE_SPECS[service.type].fields:
        if field.name not in values:
            continue
        value = values[field.name]
        box = page.locator(f"#id_{field.name}")
        if isinstance(value, list):
            box.fill("\n".join(value))
        elif field.kind == "choice":
            box.select_option(str(value))
        else:
            box.fill(str(value))


def _order_through_the_form(page, live_server, service: Service) -> tuple[int, str]:
    """Place one order; (its id, the charge the page showed live before placing)."""
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/?service={service.pk}")
    _fill_type_fields(page, service)
    charge = page.locator("#charge-amount")
    expect(charge).to_have_text(re.compile(r"^\d+\.\d+ USD$"))
    # Each field typed asks for the charge again: read it once the last answer is in.
    page.wait_for_load_state("networkidle")
    shown = charge.inner_text()
    page.get_by_role("button", name="Place order").click()
    placed = page.locator("#order-placed")
    expect(placed).to_contain_text("is placed")
    number = re.search(r"Order #(\d+) is placed", placed.inner_text())
    assert number, placed.inner_text()
    return int(number.group(1)), shown


def _wait_for(predicate, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the sweeps did not get there in time"
        time.sleep(0.3)


def test_a_new_customer_signs_up_funds_orders_everything_and_follows_it(
        browser_page, chromium, live_server, shop, beat, sandbox, request):
    from playwright.sync_api import expect

    page = browser_page
    size = "phone" if page.viewport_size["width"] < 500 else "desktop"
    customer = _sign_up_and_verify(page, live_server, f"journey{size}")
    screenshot(page, "journey", "first-login")
    _staff_deposits(chromium, live_server, customer, "500")
    page.reload()
    expect(page.locator(".topbar-balance")).to_contain_text("500.00")

    # One service of every type through the form: the live charge is the charge taken.
    placed: dict[str, int] = {}
    for service_type, service in shop.items():
        order_id, shown = _order_through_the_form(page, live_server, service)
        order = Order.objects.get(pk=order_id, user=customer)
        assert shown == f"{order.charge} USD", (service_type, shown, order.charge)
        charged = LedgerEntry.objects.get(order_id=order_id, kind="charge").amount
        assert -charged == order.charge
        placed[service_type] = order_id
    screenshot(page, "journey", "order-placed")

    # A mass order of 20 lines, 2 of them bad: 18 placed, each bad line says why.
    default = shop["Default"]
    low = default.min_quantity
    lines = [f"{default.pk} | https://instagram.com/p/mass{n} | {low}" for n in range(18)]
    lines.insert(5, f"{default.pk} | https://instagram.com/p/toofew | {low - 1}")
    lines.insert(12, f"999999 | https://instagram.com/p/nosuch | {low}")
    _menu(page, "Mass order").click()
    page.get_by_label("Orders, one per line").fill("\n".join(lines))
    page.get_by_role("button", name="Place orders").click()
    results = page.locator("#mass-results")
    expect(results).to_contain_text("18 orders placed, 2 lines refused.")
    expect(results).to_contain_text(f"Quantity less than minimal {low}")
    expect(results).to_contain_text("Incorrect service ID")
    screenshot(page, "journey", "mass-order")
    everything = Order.objects.filter(user=customer, parent__isnull=True)
    assert everything.count() == len(shop) + 18

    # The cancel target is sent, not yet looked at, when the customer asks to cancel it.
    cancellable = make_service(shop["Default"].routes.get().provider, "Default", cancel=True,
                               upstream={"cancel": True})
    target_id, _ = _order_through_the_form(page, live_server, cancellable)
    assert dispatch.dispatch_one(target_id) or Order.objects.get(pk=target_id).upstream_id
    # The sandbox would finish it at once: it is still being delivered, upstream says.
    sent = Order.objects.get(pk=target_id)
    sandbox.force_order(sent.upstream_id, status="In progress", remains=sent.quantity)
    page.goto(f"{live_server.url}/orders/{target_id}/")
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_text(re.compile("Cancel requested"))).to_be_visible()
    screenshot(page, "journey", "cancel-requested")

    # The sandbox delivers: the orders page shows them reach Completed.
    beat.running.set()
    _wait_for(lambda: not everything.exclude(status__in=Order.TERMINAL).exists())
    _menu(page, "Orders").click()
    completed = everything.filter(status=Order.Status.COMPLETED).count()
    assert completed == everything.count() - 1  # all but the canceled one
    expect(page.get_by_role("link", name=re.compile(rf"^Completed {completed}\b"))).to_be_visible()
    screenshot(page, "journey", "orders-completed")
    target = Order.objects.get(pk=target_id)
    assert target.status == Order.Status.CANCELED and target.refunded == target.charge

    # A refill of the completed, refillable order, followed on the refills page.
    page.goto(f"{live_server.url}/orders/{placed['Default']}/")
    page.get_by_role("button", name="Refill").click()
    refill = Refill.objects.get(order_id=placed["Default"])
    expect(page.get_by_text(f"Refill #{refill.pk} requested.")).to_be_visible()
    _wait_for(lambda: Refill.objects.get(pk=refill.pk).status not in Refill.ACTIVE)
    _menu(page, "Refills").click()
    expect(page.locator("tbody tr").filter(has_text=str(placed["Default"])).locator(".badge")
           ).to_have_text(Refill.objects.get(pk=refill.pk).customer_status)
    screenshot(page, "journey", "refills")

    # The transactions: the deposit, every charge, the cancel's refund, balance after each.
    _menu(page, "Transactions").click()
    rows = page.locator("tbody tr")
    entries = LedgerEntry.objects.filter(user=customer)
    expect(rows).to_have_count(min(entries.count(), 25))  # a page of them, newest first
    customer.refresh_from_db()
    expect(rows.first).to_contain_text(f"{customer.balance:.2f}")
    assert customer.balance == Decimal(500) + sum(e.amount for e in entries.exclude(
        kind="deposit"))
    screenshot(page, "journey", "transactions")
    page.get_by_role("link", name="Refund", exact=True).click()
    expect(rows).to_have_count(entries.filter(kind="refund").count())
    page.get_by_role("link", name="Deposit", exact=True).click()
    expect(page.get_by_text("bank transfer 1001")).to_be_visible()
    call_command("check_ledger")
