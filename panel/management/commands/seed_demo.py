from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from orders import dispatch, polling, refills
from orders.importing import import_services
from orders.models import Category, Order, Service
from orders.placing import place_order
from panel import ledger
from panel.models import ApiKey, User
from panel.roles import ensure_groups
from payments.models import GatewayName, PaymentMethod
from providers.models import Provider
from providers.sandbox import DEFAULT_KEY, SandboxServer
from providers.sync import sync_catalog
from support.models import Ticket

DEMO_USERS = [
    # username, password, role
    ("admin", "admin-demo-pass", "admin"),
    ("staff", "staff-demo-pass", "staff"),
    ("customer", "customer-demo-pass", "customer"),
]
DEMO_DEPOSIT = Decimal("100")
DEMO_METHODS: list[tuple[str, str, dict[str, Any]]] = [
    ("Demo gateway", GatewayName.DEMO, {"fee_percent": Decimal("2"),
                                        "bonus_percent": Decimal("5"),
                                        "bonus_threshold": Decimal("50")}),
    ("Bank transfer", GatewayName.MANUAL, {
        "min_amount": Decimal("20"), "new_customers_allowed": False,
        "instructions": "Transfer to IBAN XX00 DEMO 0000 0000 and give your username as the "
                        "reference. Staff credit it once it arrives (1–2 working days)."}),
    ("Card (Stripe)", GatewayName.STRIPE, {"fee_percent": Decimal("3")}),
    ("Crypto (NOWPayments)", GatewayName.NOWPAYMENTS, {"fee_percent": Decimal("1"),
                                                       "min_amount": Decimal("10")}),
]
SANDBOX_DB = Path(settings.SANDBOX_DB)


class Command(BaseCommand):
    help = "Load the demo data the first time (idempotent) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            created = self._users()
        self._sandbox_provider()
        self._demo_orders()
        self._payment_methods()
        self._demo_tickets()
        self.stdout.write("Demo logins (http://127.0.0.1:8000/accounts/login/):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {role:<9} {username} / {password}")
        if not created:
            self.stdout.write("(demo data was already loaded)")

    def _users(self) -> bool:
        staff_group, customer_group = ensure_groups()
        created_any = False
        for username, password, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if not created:
                continue
            created_any = True
            user.set_password(password)
            user.email = f"{username}@example.com"
            user.is_staff = role in ("admin", "staff")
            user.is_superuser = role == "admin"
            user.save()
            # The demo's addresses cannot receive mail: count them as verified.
            EmailAddress.objects.create(user=user, email=user.email, verified=True,
                                        primary=True)
            if role != "admin":
                user.groups.add(staff_group if role == "staff" else customer_group)
            if role == "customer":
                ledger.deposit(user.pk, DEMO_DEPOSIT, memo="demo deposit")
                _, raw = ApiKey.issue(user, "demo key")
                self.stdout.write(f"Demo customer API key (shown once): {raw}")
        return created_any

    def _sandbox_provider(self) -> None:
        """Register the sandbox upstream and import its catalog, once, through whichever
        sandbox answers at SANDBOX_URL (demo_sandbox)."""
        if Provider.objects.filter(name="Sandbox").exists():
            return
        provider = Provider(name="Sandbox", api_url=settings.SANDBOX_URL,
                            low_balance_threshold=100)
        provider.api_key = DEFAULT_KEY
        provider.save()
        with demo_sandbox():
            result = sync_catalog(provider)
        services = import_services(provider)
        self.stdout.write(f"Sandbox provider registered at {provider.api_url}: "
                          f"{result.message or result.summary()}; {len(services)} services "
                          "for sale")

    def _demo_orders(self) -> None:
        """Give the demo customer an order in every status, a refill, a drip-feed the panel
        runs and a subscription, once, through the real workflows against the sandbox: the
        sandbox is told which status to report (its control API), and polling records it."""
        customer = User.objects.get(username="customer")
        provider = Provider.objects.get(name="Sandbox")
        if Order.objects.filter(user=customer).exists():
            return
        with demo_sandbox(step_seconds=20) as sandbox:
            placed = [self._demo_order(sandbox, customer, provider, *spec) for spec in DEMO_ORDERS]
            completed = next(o for o in placed if o.status == Order.Status.COMPLETED)
            refills.request_refill(customer, completed.pk)
            refills.send_refills()
            self._demo_dripfeed(customer, provider)
        self._demo_price_change()
        self.stdout.write(f"Demo customer: {len(placed) + 1} orders in every status, a refill, "
                          "a drip-feed and a subscription")

    def _demo_tickets(self) -> None:
        """Two tickets for the staff desk's inbox: an Order ticket asking to speed up an
        order in progress, and a Payment ticket; once."""
        customer = User.objects.get(username="customer")
        if Ticket.objects.filter(user=customer).exists():
            return
        running = Order.objects.for_customer(customer.pk).filter(
            status=Order.Status.IN_PROGRESS).first()
        if running is not None:
            Ticket.open(customer.pk, "Could this order go a little faster? It is for a launch "
                        "tomorrow.", subject=Ticket.Subject.ORDER,
                        request=Ticket.Request.SPEED_UP, order_ids=[running.pk])
        Ticket.open(customer.pk, "I paid by bank transfer yesterday; the balance did not "
                    "change yet.", subject=Ticket.Subject.PAYMENT,
                    payment_method="Bank transfer", transaction_id="DEMO-2026-001")
        self.stdout.write("Demo customer: 2 support tickets")

    def _demo_order(self, sandbox: SandboxLike, customer: User, provider: Provider,
                    upstream_id: int, status: str, params: dict[str, Any]) -> Order:
        service = _service(provider, upstream_id)
        order = place_order(customer, service.pk, params)
        dispatch.dispatch_one(order.pk)
        order.refresh_from_db()
        if order.upstream_id is not None:
            remains = {"remains": order.charged_units // 3} if status == "Partial" else {}
            sandbox.force_order(order.upstream_id, status=status, **remains)
            Order.objects.filter(pk=order.pk).update(next_check_at=timezone.now())
            polling.poll_orders()
            order.refresh_from_db()
        return order

    def _demo_dripfeed(self, customer: User, provider: Provider) -> None:
        # The sandbox drip-feeds nothing of this service, so the panel runs the runs itself
        # (one upstream order every interval); the demo offers drip-feed on it to show that.
        service = _service(provider, 122)
        Service.objects.filter(pk=service.pk).update(dripfeed=True)
        order = place_order(customer, service.pk, {
            "link": "https://instagram.com/stories/demo", "quantity": 100, "runs": 4,
            "interval": 10})
        dispatch.dispatch_one(order.pk)

    def _payment_methods(self) -> None:
        """The demo gateway first, so a newcomer can top up the demo customer at once; the
        real gateways are listed too, and shown only once their secrets are set."""
        if PaymentMethod.objects.exists():
            return
        for order, (name, gateway, extra) in enumerate(DEMO_METHODS):
            PaymentMethod.objects.create(name=name, gateway=gateway, sort_order=order, **extra)
        self.stdout.write("Payment methods: the demo gateway (Add funds), a bank transfer, "
                          "Stripe and NOWPayments (offered once their secrets are set)")

    def _demo_price_change(self) -> None:
        """An admin raises a category's markup: the Service updates page shows it."""
        category = Category.objects.filter(name="Instagram Likes").first()
        if category is not None and category.markup_percent is None:
            category.markup_percent = Decimal(40)
            category.save()


class SandboxLike(Protocol):
    def force_order(self, order_id: int, status: str | None = None,
                    remains: int | str | None = None) -> Any: ...


class RunningSandbox:
    """The sandbox already serving SANDBOX_URL (make run's, or one a developer started),
    driven through its control API over HTTP, as SandboxServer is in-process."""

    def __init__(self, api_url: str) -> None:
        parts = urlsplit(api_url)
        self.control_url = f"{parts.scheme}://{parts.netloc}/control"

    def force_order(self, order_id: int, status: str | None = None,
                    remains: int | str | None = None) -> Any:
        body = {"status": status} | ({} if remains is None else {"remains": remains})
        reply = requests.post(f"{self.control_url}/orders/{int(order_id)}", json=body,
                              timeout=10)
        reply.raise_for_status()
        return reply.json()


def _answering(api_url: str) -> bool:
    try:
        requests.post(api_url, data={"key": DEFAULT_KEY, "action": "balance"}, timeout=2)
    except requests.RequestException:
        return False
    return True


@contextmanager
def demo_sandbox(step_seconds: float = 0.0) -> Iterator[SandboxLike]:
    """The sandbox at SANDBOX_URL, whether or not it runs yet: the seed works before the real
    one starts (a short-lived one on its port and store, which the real one then reads) and
    after (through the running one), so the order of the processes does not matter."""
    if _answering(settings.SANDBOX_URL):
        yield RunningSandbox(settings.SANDBOX_URL)
        return
    port = urlsplit(settings.SANDBOX_URL).port or 80
    SANDBOX_DB.parent.mkdir(exist_ok=True)
    with SandboxServer(port=port, db=str(SANDBOX_DB), step_seconds=step_seconds) as sandbox:
        yield sandbox


def _service(provider: Provider, upstream_id: int) -> Service:
    return Service.objects.get(routes__provider_service__provider=provider,
                               routes__provider_service__upstream_id=upstream_id)


# (sandbox service id, the status its upstream reports, the order's parameters)
DEMO_ORDERS: list[tuple[int, str, dict[str, Any]]] = [
    (101, "Completed", {"link": "https://instagram.com/demo.shop", "quantity": 500}),
    (103, "Completed", {"link": "https://instagram.com/demo.cafe", "quantity": 200}),
    (201, "In progress", {"link": "https://tiktok.com/@demo.shop", "quantity": 300}),
    (111, "Processing", {"link": "https://instagram.com/p/DemoPost1", "quantity": 1000}),
    (102, "Pending", {"link": "https://instagram.com/demo.studio", "quantity": 100}),
    (202, "Partial", {"link": "https://tiktok.com/@demo.cafe", "quantity": 600}),
    (241, "Canceled", {"link": "https://tiktok.com/@demo.shop/video/1", "quantity": 200}),
    (151, "In progress", {"username": "demo.shop", "min": 50, "max": 100, "delay": 0,
                          "posts": 5}),
]
