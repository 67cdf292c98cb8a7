"""The ledger is the only way money moves, and it keeps balance == sum(entries) >= 0."""

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from panel import ledger
from panel.models import LedgerEntry
from tests.conftest import make_customer

pytestmark = pytest.mark.django_db


def _entries(user) -> list[tuple[str, Decimal, Decimal]]:
    return list(LedgerEntry.objects.filter(user=user).order_by("id")
                .values_list("kind", "amount", "balance_after"))


def test_every_move_writes_an_entry_with_the_balance_after(staff_member):
    carol = make_customer("carol", "0")

    ledger.deposit(carol.pk, Decimal("50"), actor_id=staff_member.pk, memo="bank transfer")
    ledger.charge(carol.pk, Decimal("12.34567"), order_id=1)
    ledger.refund(carol.pk, Decimal("2.00001"), order_id=1)
    ledger.adjust(carol.pk, Decimal("-5"), actor_id=staff_member.pk, reason="chargeback")

    carol.refresh_from_db()
    assert carol.balance == Decimal("34.65434")
    assert _entries(carol) == [
        ("deposit", Decimal("50.00000"), Decimal("50.00000")),
        ("charge", Decimal("-12.34567"), Decimal("37.65433")),
        ("refund", Decimal("2.00001"), Decimal("39.65434")),
        ("adjustment", Decimal("-5.00000"), Decimal("34.65434")),
    ]
    assert ledger.mismatched_balances() == []


def test_a_charge_beyond_the_balance_is_refused_and_changes_nothing():
    carol = make_customer("carol", "10")

    with pytest.raises(ledger.InsufficientFunds):
        ledger.charge(carol.pk, Decimal("10.00001"), order_id=7)

    carol.refresh_from_db()
    assert carol.balance == Decimal("10")
    assert [e[0] for e in _entries(carol)] == ["deposit"]


def test_a_charge_of_exactly_the_balance_leaves_zero():
    carol = make_customer("carol", "10")

    ledger.charge(carol.pk, Decimal("10"), order_id=7)

    carol.refresh_from_db()
    assert carol.balance == Decimal("0")


def test_a_second_refund_of_one_order_is_refused():
    carol = make_customer("carol", "10")
    ledger.charge(carol.pk, Decimal("4"), order_id=3)
    ledger.refund(carol.pk, Decimal("1"), order_id=3)

    with pytest.raises(ledger.AlreadyRecorded):
        ledger.refund(carol.pk, Decimal("1"), order_id=3)

    carol.refresh_from_db()
    assert carol.balance == Decimal("7")


def test_a_refund_larger_than_the_charge_is_refused():
    carol = make_customer("carol", "10")
    ledger.charge(carol.pk, Decimal("4"), order_id=3)

    with pytest.raises(ledger.LedgerError):
        ledger.refund(carol.pk, Decimal("4.00001"), order_id=3)
    with pytest.raises(ledger.LedgerError):
        ledger.refund(carol.pk, Decimal("1"), order_id=99)  # never charged


def test_staff_adjustments_need_a_reason(staff_member):
    carol = make_customer("carol", "10")

    with pytest.raises(ledger.LedgerError):
        ledger.adjust(carol.pk, Decimal("5"), actor_id=staff_member.pk, reason="  ")


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1"), 5, 1.5])
def test_amounts_must_be_positive_decimals(amount):
    carol = make_customer("carol", "10")

    with pytest.raises(ledger.LedgerError):
        ledger.deposit(carol.pk, amount)


def test_check_ledger_passes_when_balances_match(capsys):
    make_customer("carol", "10")

    call_command("check_ledger")

    assert "every balance equals" in capsys.readouterr().out


def test_check_ledger_names_a_customer_whose_balance_drifted():
    carol = make_customer("carol", "10")
    make_customer("dave", "5")
    with connection.cursor() as cursor:  # what a bug writing balances directly would do
        cursor.execute("UPDATE panel_user SET balance = 11 WHERE id = %s", [carol.pk])

    err = io.StringIO()
    # CommandError is what makes `manage.py check_ledger` exit with status 1.
    with pytest.raises(CommandError, match="1 customer"):
        call_command("check_ledger", stderr=err)
    assert f"user {carol.pk} (carol): balance 11.00000 != sum of entries 10" in err.getvalue()
    assert "dave" not in err.getvalue()
