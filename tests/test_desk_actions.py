"""The staff's actions on the desk, through its pages: each does what the order's tested
method does, writes its audit row in the same transaction, shows in the order's history,
and asks for a reason wherever money moves."""

from decimal import Decimal

import pytest
from django.urls import reverse

from desk.models import AuditEntry
from orders.dispatch import dispatch_due, dispatch_one
from orders.models import Order, OrderEvent, Refill
from orders.placing import place_order
from orders.polling import poll_orders
from panel import ledger
from panel.models import LedgerEntry
from providers.client import OrderStatus, UpstreamStatus
from tests.conftest import make_service, make_staff, valid_add_params

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick(settings):
    settings.PROVIDER_READ_TIMEOUT = 0.5
    settings.POLL_FIRST_DELAY = 0


@pytest.fixture
def sam(db):
    return make_staff("sam")


@pytest.fixture
def desk(client, sam):
    client.force_login(sam)
    return client


def place(user, service) -> Order:
    params = valid_add_params({"service": service.pk, "type": service.type,
                               "min": service.min_quantity})
    params["link"] = f"https://instagram.com/p/desk{Order.objects.count()}"
    return place_order(user, service.pk, params)


def park(sandbox, service, user, fault="garbage") -> Order:
    """An order whose send came back with an unknown outcome, as dispatch parks it."""
    order = place(user, service)
    sandbox.set_fault(fault, action="add", times=1)
    dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.NEEDS_ATTENTION
    return order


def act(desk, order, action, **fields):
    return desk.post(reverse("desk:order_action", args=[order.pk]),
                     {"action": action, **fields})


def refunds(order) -> list[Decimal]:
    return list(LedgerEntry.objects.filter(order_id=order.pk, kind="refund")
                .values_list("amount", flat=True))


def audited(order, action) -> AuditEntry:
    entry = AuditEntry.objects.get(order=order, action=action)
    assert OrderEvent.objects.filter(order=order, kind="staff", actor=entry.actor,
                                     message__startswith=action).exists()
    return entry


def test_attach_the_upstream_id_then_polling_completes_it(sandbox, catalog, alice, sam, desk):
    service = make_service(catalog, "Default")
    order = park(sandbox, service, alice, "truncated")  # bought, though we never heard
    [bought] = [a["order"] for a in sandbox.adds() if a["params"]["link"] == order.link]
    route = service.routes.get()

    response = act(desk, order, "attach", upstream_id=bought, route=route.pk, reason="found it")
    assert response.status_code == 302
    poll_orders()
    order.refresh_from_db()
    assert (order.status, order.upstream_id, order.flagged_at) == ("completed", bought, None)
    entry = audited(order, "attach_upstream_id")
    assert (entry.actor, entry.reason, entry.customer_id) == (sam, "found it", alice.pk)
    assert entry.details["upstream_id"] == bought
    assert refunds(order) == []
    assert ledger.mismatched_balances() == []


def test_resend_asks_for_a_reason_and_then_buys_once(sandbox, catalog, alice, desk):
    service = make_service(catalog, "Default")
    order = park(sandbox, service, alice)
    route = service.routes.get()

    act(desk, order, "resend", route=route.pk, reason="")
    order.refresh_from_db()
    assert order.status == "needs_attention" and not AuditEntry.objects.exists()

    act(desk, order, "resend", route=route.pk, reason="checked upstream: not there")
    order.refresh_from_db()
    assert order.status == "queued" and order.flagged_at is None
    dispatch_one(order.pk)
    order.refresh_from_db()
    assert order.status == "pending" and order.upstream_id is not None
    assert audited(order, "resend").reason == "checked upstream: not there"


def test_fail_and_refund_pays_back_once(sandbox, catalog, alice, desk):
    service = make_service(catalog, "Default")
    order = park(sandbox, service, alice)
    act(desk, order, "fail_and_refund", reason="never bought")
    act(desk, order, "fail_and_refund", reason="double click")
    order.refresh_from_db()
    assert order.status == "failed" and refunds(order) == [order.charge]
    assert AuditEntry.objects.filter(order=order).count() == 1
    assert audited(order, "fail_and_refund").details["refunded"] == str(order.charge)


def test_mark_completed_keeps_the_charge_and_leaves_the_queue(sandbox, catalog, alice, desk):
    service = make_service(catalog, "Default")
    order = park(sandbox, service, alice)
    act(desk, order, "mark_completed", reason="")
    order.refresh_from_db()
    assert order.status == "needs_attention"
    act(desk, order, "mark_completed", reason="delivered, seen on the profile")
    order.refresh_from_db()
    assert order.status == "completed" and order.remains == 0 and refunds(order) == []
    assert not Order.objects.needing_attention().filter(pk=order.pk).exists()
    audited(order, "mark_completed")


def partial_with_unknown_remains(catalog, alice) -> Order:
    service = make_service(catalog, "Default")
    order = place(alice, service)
    dispatch_one(order.pk)
    order.refresh_from_db()
    order.apply_upstream_status(OrderStatus(UpstreamStatus.PARTIAL, None, 1, None, "USD"))
    order.refresh_from_db()
    assert order.status == "partial" and order.flagged_at is not None
    return order


def test_settle_a_partial_by_remains(catalog, alice, desk):
    order = partial_with_unknown_remains(catalog, alice)
    act(desk, order, "settle_remains", remains=order.charged_units // 2, reason="")
    assert refunds(order) == []
    act(desk, order, "settle_remains", remains=order.charged_units // 2, reason="half seen")
    order.refresh_from_db()
    assert refunds(order) == [order.undelivered_share(order.charged_units // 2)]
    assert order.flagged_at is None
    assert audited(order, "settle_partial").details["remains"] == order.charged_units // 2
    assert ledger.mismatched_balances() == []


def test_settle_a_partial_by_amount_is_capped_at_the_charge(catalog, alice, desk):
    order = partial_with_unknown_remains(catalog, alice)
    act(desk, order, "settle_amount", amount="999999", reason="nothing delivered")
    order.refresh_from_db()
    assert refunds(order) == [order.charge]
    audited(order, "settle_partial")
    # Settled: neither settlement applies any more.
    act(desk, order, "settle_amount", amount="1", reason="again")
    assert refunds(order) == [order.charge]


def test_dismiss_takes_a_flag_off_the_queue_but_not_a_parked_order(sandbox, catalog, alice,
                                                                    desk):
    service = make_service(catalog, "Default")
    parked = park(sandbox, service, alice)
    act(desk, parked, "dismiss", reason="later")
    assert Order.objects.needing_attention().filter(pk=parked.pk).exists()
    stuck = place(alice, service)
    dispatch_one(stuck.pk)
    stuck.refresh_from_db()
    stuck.flag("no progress for 24 hours")
    act(desk, stuck, "dismiss", reason="the upstream says it is slow today")
    assert not Order.objects.needing_attention().filter(pk=stuck.pk).exists()
    assert audited(stuck, "dismiss_flag").details["flag"] == "no progress for 24 hours"


def test_a_refused_action_writes_no_audit_row(sandbox, catalog, alice, desk):
    """An action that cannot happen (the order moved on) changes nothing and records nothing."""
    service = make_service(catalog, "Default")
    order = place(alice, service)
    dispatch_one(order.pk)  # sent fine: not parked
    act(desk, order, "resend", route=service.routes.get().pk, reason="why not")
    act(desk, order, "fail_and_refund", reason="why not")
    assert not AuditEntry.objects.exists()
    order.refresh_from_db()
    assert order.status == "pending" and refunds(order) == []


def test_a_route_of_another_service_is_refused(sandbox, catalog, alice, desk):
    service = make_service(catalog, "Default")
    other = make_service(catalog, "Package")
    order = park(sandbox, service, alice)
    act(desk, order, "resend", route=other.routes.get().pk, reason="wrong route")
    order.refresh_from_db()
    assert order.status == "needs_attention" and not AuditEntry.objects.exists()


def test_bulk_fail_and_refund_confirms_then_does_each_once(sandbox, catalog, alice, desk):
    service = make_service(catalog, "Default")
    parked = [park(sandbox, service, alice) for _ in range(3)]
    live = place(alice, service)
    dispatch_one(live.pk)
    ids = ",".join(str(o.pk) for o in [*parked, live])

    page = desk.get(reverse("desk:bulk"), {"action": "fail_and_refund", "ids": ids})
    assert page.status_code == 200
    text = page.content.decode()
    for order in parked:
        assert f"#{order.pk}" in text
    assert "skipped" in text  # the live one
    assert all(o.status == "needs_attention" for o in Order.objects.filter(pk__in=[
        p.pk for p in parked]))  # nothing happened before the confirmation

    desk.post(reverse("desk:bulk"), {"action": "fail_and_refund", "ids": ids, "confirm": "1",
                                     "reason": "provider outage, never bought"})
    for order in parked:
        order.refresh_from_db()
        assert order.status == "failed" and refunds(order) == [order.charge]
        audited(order, "fail_and_refund")
    live.refresh_from_db()
    assert live.status == "pending" and not AuditEntry.objects.filter(order=live).exists()
    assert ledger.mismatched_balances() == []


def test_bulk_resend_sends_each_to_its_route(sandbox, catalog, alice, desk):
    service = make_service(catalog, "Default")
    parked = [park(sandbox, service, alice) for _ in range(2)]
    ids = ",".join(str(o.pk) for o in parked)
    desk.post(reverse("desk:bulk"), {"action": "resend", "ids": ids, "confirm": "1",
                                     "reason": "checked: not there"})
    for order in parked:
        order.refresh_from_db()
        assert order.status == "queued"
        assert order.forced_route == service.routes.get()
        audited(order, "resend")


# --- refills and cancels ----------------------------------------------------------------------

def completed_refillable(catalog, alice) -> Order:
    service = make_service(catalog, "Default", upstream={"refill": True}, refill=True)
    order = place(alice, service)
    dispatch_one(order.pk)
    poll_orders()
    order.refresh_from_db()
    assert order.status == "completed"
    return order


def test_refill_reject_tells_the_customer_why(catalog, alice, desk, client):
    from orders.refills import request_refill

    order = completed_refillable(catalog, alice)
    refill = request_refill(alice, order.pk)
    desk.post(reverse("desk:refill_action", args=[refill.pk]), {"action": "reject",
                                                               "reason": ""})
    refill.refresh_from_db()
    assert refill.status == "queued"
    desk.post(reverse("desk:refill_action", args=[refill.pk]),
              {"action": "reject", "reason": "The followers are still there."})
    refill.refresh_from_db()
    assert refill.status == "rejected"
    assert AuditEntry.objects.get(action="reject_refill").details["refill"] == refill.pk
    client.force_login(alice)
    page = client.get(reverse("order_detail", args=[order.pk]))
    assert "The followers are still there." in page.content.decode()


def test_refill_mark_done_and_send_again(catalog, alice, desk):
    from orders.refills import request_refill

    order = completed_refillable(catalog, alice)
    refill = request_refill(alice, order.pk)
    Refill.objects.filter(pk=refill.pk).update(status=Refill.Status.NEEDS_ATTENTION)
    desk.post(reverse("desk:refill_action", args=[refill.pk]), {"action": "resend"})
    refill.refresh_from_db()
    assert refill.status == "queued" and refill.attempts == 0
    desk.post(reverse("desk:refill_action", args=[refill.pk]),
              {"action": "done", "reason": "seen refilled"})
    refill.refresh_from_db()
    assert refill.status == "completed"
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {
        "resend_refill", "mark_refill_done"}


def test_cancel_refused_and_canceled_by_hand(catalog, alice, desk):
    from orders.cancels import request_cancel

    service = make_service(catalog, "Default", upstream={"cancel": True}, cancel=True)
    order = place(alice, service)
    dispatch_one(order.pk)
    request_cancel(alice, order.pk)
    desk.post(reverse("desk:cancel_action", args=[order.pk]),
              {"action": "refuse", "reason": "Already started."})
    order.refresh_from_db()
    assert order.cancel_requested_at is None and order.cancel_error == "Already started."
    desk.post(reverse("desk:cancel_action", args=[order.pk]),
              {"action": "done", "reason": "canceled on the provider's site"})
    order.refresh_from_db()
    assert order.status == "canceled" and refunds(order) == [order.charge]
    assert {a.action for a in AuditEntry.objects.filter(order=order)} == {
        "refuse_cancel", "cancel_by_hand"}
    assert ledger.mismatched_balances() == []


def test_a_rejected_refill_is_not_sent_again_over_the_customers_new_one(catalog, alice, desk):
    from orders.refills import request_refill

    order = completed_refillable(catalog, alice)
    old = request_refill(alice, order.pk)
    desk.post(reverse("desk:refill_action", args=[old.pk]),
              {"action": "reject", "reason": "Nothing dropped."})
    new = request_refill(alice, order.pk)  # the customer asks again
    desk.post(reverse("desk:refill_action", args=[old.pk]), {"action": "resend"})
    old.refresh_from_db()
    assert old.status == "rejected"  # one active refill per order, in the database too
    assert Refill.objects.get(pk=new.pk).status == "queued"
    assert not AuditEntry.objects.filter(action="resend_refill").exists()


def test_the_customer_reads_why_a_cancel_was_refused(catalog, alice, desk, client):
    from orders.cancels import request_cancel

    service = make_service(catalog, "Default", upstream={"cancel": True}, cancel=True)
    order = place(alice, service)
    dispatch_one(order.pk)
    request_cancel(alice, order.pk)
    desk.post(reverse("desk:cancel_action", args=[order.pk]),
              {"action": "refuse", "reason": "It is half delivered already."})
    client.force_login(alice)
    page = client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert "Your cancel request was declined: It is half delivered already." in page
    assert "refuse_cancel" not in page  # the staff's own history entry stays on the desk


def test_a_drip_feed_the_panel_runs_is_settled_by_its_runs_not_by_hand(catalog, alice, desk):
    from django.utils import timezone

    service = make_service(catalog, "Default", upstream={"dripfeed": False}, dripfeed=True)
    parent = place_order(alice, service.pk, {"link": "https://x.com/drip", "runs": 2,
                                             "quantity": service.min_quantity, "interval": 5})
    dispatch_one(parent.pk)
    Order.objects.filter(parent=parent).update(next_check_at=timezone.now())
    dispatch_due()
    parent.refresh_from_db()
    assert parent.status in Order.POLLED and parent.upstream_id is None
    act(desk, parent, "mark_completed", reason="looks done")
    act(desk, parent, "cancel_by_hand", reason="canceled?")
    parent.refresh_from_db()
    assert parent.status in Order.POLLED and refunds(parent) == []
    assert not AuditEntry.objects.exists()
