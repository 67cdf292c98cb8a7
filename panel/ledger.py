"""The only code that changes a customer's balance.

Every change is one conditional UPDATE of the cached balance (it must stay >= 0) and one
append-only LedgerEntry, in one transaction. The database backs each rule up: a CHECK on the
balance, partial unique indexes on (order, charge), (order, refund), (payment, deposit) and
(payment, bonus), and a trigger that refuses UPDATE and DELETE of entries.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from panel.models import LedgerEntry, User
from panel.money import ZERO, quantize_money


class LedgerError(Exception):
    pass


class InsufficientFunds(LedgerError):
    def __init__(self) -> None:
        super().__init__("Not enough funds on balance")


class AlreadyRecorded(LedgerError):
    """A second charge or refund of one order, or a second deposit or bonus of one payment:
    refused by the database."""


def deposit(user_id: int, amount: Decimal, *, actor_id: int | None = None,
            memo: str = "", payment_id: int | None = None) -> LedgerEntry:
    """Credit money that came in; with `payment_id`, at most once per payment (AlreadyRecorded
    otherwise, and the caller's transaction stays usable)."""
    _require_positive(amount)
    return _move(user_id, amount, LedgerEntry.Kind.DEPOSIT, actor_id=actor_id, memo=memo,
                 payment_id=payment_id)


def bonus(user_id: int, amount: Decimal, *, payment_id: int, memo: str = "") -> LedgerEntry:
    """A payment method's bonus on top of a payment's deposit: its own entry, once per
    payment."""
    _require_positive(amount)
    return _move(user_id, amount, LedgerEntry.Kind.BONUS, payment_id=payment_id, memo=memo)


def charge(user_id: int, amount: Decimal, *, order_id: int, memo: str = "") -> LedgerEntry:
    """Debit an order's price; InsufficientFunds when the balance does not cover it.

    Call it inside the transaction that creates the order, and let a failure abort that
    transaction: a charge takes no savepoint of its own (two fewer round trips per order)."""
    _require_positive(amount)
    return _move(user_id, -amount, LedgerEntry.Kind.CHARGE, order_id=order_id, memo=memo,
                 savepoint=False)


def refund(user_id: int, amount: Decimal, *, order_id: int, memo: str = "",
           actor_id: int | None = None) -> LedgerEntry:
    """Pay back (part of) an order's charge, once per order, never more than was charged."""
    _require_positive(amount)
    charged = LedgerEntry.objects.filter(order_id=order_id, kind=LedgerEntry.Kind.CHARGE,
                                         user_id=user_id).values_list("amount", flat=True).first()
    if charged is None or amount > -charged:
        raise LedgerError(f"refund of {amount} exceeds the charge of order {order_id}")
    return _move(user_id, amount, LedgerEntry.Kind.REFUND, order_id=order_id, memo=memo,
                 actor_id=actor_id)


def adjust(user_id: int, amount: Decimal, *, actor_id: int, reason: str) -> LedgerEntry:
    """A staff correction, either sign; it needs a reason and cannot overdraw."""
    if not reason.strip():
        raise LedgerError("a staff adjustment needs a reason")
    if amount == 0:
        raise LedgerError("an adjustment of zero changes nothing")
    return _move(user_id, amount, LedgerEntry.Kind.ADJUSTMENT, actor_id=actor_id,
                 memo=reason.strip())


def _require_positive(amount: Decimal) -> None:
    if not isinstance(amount, Decimal) or amount <= ZERO:
        raise LedgerError(f"amount must be a positive Decimal, not {amount!r}")


def _move(user_id: int, amount: Decimal, kind: str, savepoint: bool = True,
          **fields: object) -> LedgerEntry:
    amount = quantize_money(amount)
    try:
        with transaction.atomic(savepoint=savepoint):
            balance_after = _update_balance(user_id, amount)
            # A refused update wrote nothing: leave the block normally, so the caller's
            # transaction stays usable, and only then say why.
            entry = None if balance_after is None else LedgerEntry.objects.create(
                user_id=user_id, amount=amount, kind=kind, balance_after=balance_after,
                **fields)
    except IntegrityError as exc:
        if "ledger_one_" in str(exc):
            ref = (f"payment {fields['payment_id']}" if fields.get("payment_id") is not None
                   else f"order {fields.get('order_id')}")
            raise AlreadyRecorded(f"{kind} of {ref} exists") from None
        raise
    if entry is None:
        if not User.objects.filter(pk=user_id).exists():
            raise LedgerError(f"no user {user_id}")
        raise InsufficientFunds()
    return entry


def _update_balance(user_id: int, amount: Decimal) -> Decimal | None:
    # One statement: the row lock serialises concurrent moves of one customer, and the
    # condition makes an overdraft impossible rather than detected.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {User._meta.db_table} SET balance = balance + %s "  # noqa: S608
            "WHERE id = %s AND balance + %s >= 0 RETURNING balance",
            [amount, user_id, amount],
        )
        row = cursor.fetchone()
    return None if row is None else Decimal(row[0])


def mismatched_balances() -> list[tuple[int, str, Decimal, Decimal]]:
    """Every user whose cached balance differs from the sum of their entries."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.id, u.username, u.balance, COALESCE(SUM(e.amount), 0) "  # noqa: S608
            f"FROM {User._meta.db_table} u "
            f"LEFT JOIN {LedgerEntry._meta.db_table} e ON e.user_id = u.id "
            "GROUP BY u.id HAVING u.balance <> COALESCE(SUM(e.amount), 0) ORDER BY u.id"
        )
        return [(r[0], r[1], r[2], r[3]) for r in cursor.fetchall()]
