"""`make run`'s demo data: the three logins, a customer with money and orders in every status,
the sandbox and its catalog for sale; loading twice changes nothing."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from orders.models import Order, Refill, Service, ServiceUpdate
from panel.devdb import free_port
from panel.models import ApiKey, LedgerEntry, User
from providers.models import Provider
from support.models import Ticket

pytestmark = pytest.mark.django_db


def test_demo_data_loads_once(settings, tmp_path, monkeypatch, capsys):
    from panel.management.commands import seed_demo

    settings.SANDBOX_URL = f"http://127.0.0.1:{free_port()}/api/v2"
    settings.PAYMENTS_DEMO_ENABLED = True
    settings.PAYMENTS_DEMO_SECRET = "demo-gateway-secret"
    monkeypatch.setattr(seed_demo, "SANDBOX_DB", tmp_path / "sandbox.sqlite3")

    call_command("seed_demo")
    call_command("seed_demo")

    out = capsys.readouterr().out
    assert "admin / admin-demo-pass" in out and "customer / customer-demo-pass" in out
    assert User.objects.get(username="admin").is_superuser
    assert User.objects.get(username="staff").groups.filter(name="Staff").exists()
    customer = User.objects.get(username="customer")
    entries = LedgerEntry.objects.filter(user=customer)
    assert entries.filter(kind="deposit").get().amount == Decimal("100")
    assert customer.balance == sum(e.amount for e in entries) > 0
    assert ApiKey.objects.filter(user=customer).count() == 1
    provider = Provider.objects.get(name="Sandbox")
    assert provider.services.count() == 51
    assert Service.objects.count() == 51
    assert {s.type for s in Service.objects.all()} >= {"Default", "Subscriptions", "Poll"}
    assert "already loaded" in out
    mine = Order.objects.for_customer(customer.pk)
    assert {o.customer_status for o in mine} == {
        "Pending", "In progress", "Processing", "Completed", "Partial", "Canceled"}
    assert mine.count() == 9  # placed once, however often the seed runs
    assert Refill.objects.filter(user=customer).count() == 1
    assert mine.get(runs=4).runs_set.count() == 4  # a drip-feed the panel runs itself
    assert mine.filter(service__type="Subscriptions").count() == 1
    assert ServiceUpdate.objects.filter(kind="price_up").exists()
    # Add funds offers the demo gateway first (it is on under DEBUG and in the tests); the
    # real gateways wait for their secrets, the bank transfer for a customer who paid once.
    from payments.models import PaymentMethod

    assert PaymentMethod.objects.count() == 4
    offered = [m.gateway for m in PaymentMethod.objects.offered_to(customer)]
    assert offered == ["demo"]
    tickets = Ticket.objects.filter(user=customer)
    assert sorted(t.subject for t in tickets) == ["order", "payment"]  # once, too
    asked = tickets.get(subject="order")
    assert mine.get(pk=asked.order_ids[0]).customer_status == "In progress"
    assert list(Ticket.objects.mentioning(asked.order_ids[0])) == [asked]


def test_demo_data_loads_through_a_sandbox_that_already_runs(settings, tmp_path, monkeypatch):
    """The seed need not run before the sandbox: with `make run`'s sandbox already up on
    SANDBOX_URL (and its store), it seeds through that one instead of starting its own."""
    from panel.management.commands import seed_demo
    from providers.sandbox import SandboxServer

    store = tmp_path / "running.sqlite3"
    monkeypatch.setattr(seed_demo, "SANDBOX_DB", tmp_path / "unused.sqlite3")
    with SandboxServer(port=free_port(), db=str(store), step_seconds=20) as running:
        settings.SANDBOX_URL = running.url
        call_command("seed_demo")

        customer = User.objects.get(username="customer")
        sent = Order.objects.filter(user=customer, upstream_id__isnull=False)
        assert sent.count() >= 6
        assert all(running.order(o.upstream_id) is not None for o in sent)
        statuses = {o.customer_status for o in Order.objects.for_customer(customer.pk)}
        assert {"Completed", "Partial", "Canceled", "In progress"} <= statuses
    assert not (tmp_path / "unused.sqlite3").exists()  # no second sandbox was started
