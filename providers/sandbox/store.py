"""The sandbox provider's back office: keys, catalog, orders, refills and the add log in SQLite.

Progress is computed lazily from timestamps (no background threads): an order's state is a pure
function of its creation time, the speed it was created at and the clock. When a computed state
is final it is written down ("settled") and, for Partial/Canceled, the refund is credited once.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .catalog import FLAT_TYPES, Service, service_from_dict

MONEY = Decimal("0.00001")
# A normal order is delivered over this many steps after one step of Pending.
DELIVERY_STEPS = 3
FIRST_ORDER_ID = 10001
FIRST_REFILL_ID = 301

DUPLICATE_LINK = "You have active order with this link. Please wait until order being completed."
NO_FUNDS = "Not enough funds on balance"
BAD_ORDER = "Incorrect order ID"
NO_REFILL = "Order not eligible for refill"
NO_CANCEL = "Order not eligible for cancel"

_FINAL = frozenset({"completed", "partial", "canceled", "cancelled", "refunded"})
_FULL_REFUND = frozenset({"canceled", "cancelled", "refunded"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (api_key TEXT PRIMARY KEY, balance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (
    id INTEGER PRIMARY KEY, pos INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, api_key TEXT NOT NULL, service INTEGER NOT NULL,
    kind TEXT NOT NULL, link TEXT NOT NULL, quantity INTEGER NOT NULL, charge TEXT NOT NULL,
    runs INTEGER NOT NULL, interval INTEGER, params TEXT NOT NULL, created REAL NOT NULL,
    step REAL NOT NULL, start_count INTEGER NOT NULL DEFAULT 0,
    final_remains INTEGER NOT NULL DEFAULT 0, posts INTEGER, expiry REAL,
    status TEXT, remains TEXT, shown_start TEXT, finished INTEGER NOT NULL DEFAULT 0,
    finished_at REAL, refund TEXT);
CREATE INDEX IF NOT EXISTS orders_by_link ON orders (api_key, service, link, finished);
CREATE INDEX IF NOT EXISTS orders_open ON orders (api_key, finished);
CREATE TABLE IF NOT EXISTS refills (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL, api_key TEXT NOT NULL,
    created REAL NOT NULL, step REAL NOT NULL, rejected INTEGER NOT NULL, status TEXT);
CREATE INDEX IF NOT EXISTS refills_by_order ON refills (order_id);
CREATE TABLE IF NOT EXISTS adds (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, api_key TEXT NOT NULL,
    params TEXT NOT NULL, order_id INTEGER, error TEXT, fault TEXT);
CREATE INDEX IF NOT EXISTS adds_by_key ON adds (api_key);
"""


def quantize_money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_UP)


def format_money(value: Decimal) -> str:
    return f"{quantize_money(value):f}"


def stable_hash(kind: str, number: int) -> int:
    # Deterministic across runs and processes (unlike hash()), so outcomes are reproducible.
    digest = hashlib.blake2b(f"{kind}:{number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def is_final(status: str) -> bool:
    return status.strip().lower() in _FINAL


@dataclass(frozen=True)
class NewOrder:
    """A validated `add` request, ready to be charged and stored."""

    service: Service
    link: str
    quantity: int
    charge: Decimal
    params: dict[str, str]
    runs: int = 1
    interval: int | None = None
    posts: int | None = None
    expiry: float | None = None


@dataclass
class Order:
    id: int
    api_key: str
    service: int
    kind: str
    link: str
    quantity: int
    charge: str
    runs: int
    interval: int | None
    params: str
    created: float
    step: float
    start_count: int
    final_remains: int
    posts: int | None
    expiry: float | None
    status: str | None
    remains: str | None
    shown_start: str | None
    finished: int
    finished_at: float | None
    refund: str | None


@dataclass(frozen=True)
class OrderState:
    status: str
    remains: str
    start_count: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return is_final(self.status)


def _elapsed_steps(created: float, step: float, now: float) -> float:
    return math.inf if step <= 0 else (now - created) / step


def _delivery_steps(order: Order) -> int:
    return order.runs if order.runs > 1 else DELIVERY_STEPS


def finish_time(order: Order) -> float:
    """When a lazily progressing order reached its final state (for the refill window)."""
    if order.step <= 0:
        return order.created
    steps = (order.posts or 0) if order.kind == "Subscriptions" else _delivery_steps(order)
    return order.created + (1 + steps) * order.step


def order_state(order: Order, now: float) -> OrderState:
    """The state an order shows at `now`: stored if settled or forced, else computed."""
    if order.status is not None:
        return OrderState(order.status, order.remains or "0", order.shown_start or "0")
    elapsed = _elapsed_steps(order.created, order.step, now)
    if order.kind == "Subscriptions":
        return _subscription_state(order, elapsed, now)
    if elapsed < 1:
        return OrderState("Pending", str(order.quantity), "0")
    steps = _delivery_steps(order)
    if elapsed >= 1 + steps:
        status = "Partial" if order.final_remains else "Completed"
        return OrderState(status, str(order.final_remains), str(order.start_count))
    delivered = int((order.quantity - order.final_remains) * (elapsed - 1) / steps)
    return OrderState("In progress", str(order.quantity - delivered), str(order.start_count))


def _subscription_state(order: Order, elapsed: float, now: float) -> OrderState:
    # `posts` counts the posts paid for; None means unlimited future posts (runs until expiry).
    per_post = order.quantity // order.posts if order.posts else 0
    done_posts = 0 if elapsed < 1 else int(min(elapsed - 1, order.posts or 0))
    remains = order.quantity - per_post * done_posts
    expired = order.expiry is not None and now >= order.expiry
    start = str(order.start_count)
    if order.posts is not None and elapsed >= 1 + order.posts:
        return OrderState("Completed", "0", start)
    if expired:
        return OrderState("Partial" if remains else "Completed", str(remains), start)
    if elapsed < 1:
        return OrderState("Pending", str(order.quantity), "0")
    return OrderState("In progress", str(remains), start)


def refund_for(order: Order, status: str, remains: str) -> Decimal:
    """The undelivered share of what was paid (never re-priced); zero if already refunded."""
    if order.refund is not None:
        return Decimal(0)
    lowered = status.strip().lower()
    charge = Decimal(order.charge)
    if lowered in _FULL_REFUND:
        return charge
    if lowered != "partial" or order.quantity <= 0 or not remains.lstrip("-").isdigit():
        return Decimal(0)
    share = min(max(int(remains), 0), order.quantity)
    return quantize_money(charge * share / order.quantity)


def refill_state(row: sqlite3.Row, now: float) -> str:
    if row["status"] is not None:
        return str(row["status"])
    elapsed = _elapsed_steps(row["created"], row["step"], now)
    if elapsed < 1:
        return "Pending"
    if elapsed < 2:
        return "In progress"
    return "Rejected" if row["rejected"] else "Completed"


class Store:
    """One SQLite connection behind one lock; every public method is one transaction."""

    def __init__(
        self, path: str = ":memory:", step_seconds: float = 0.0, partial_every: int = 8,
        rejected_every: int = 10,
    ) -> None:
        self.step_seconds = float(step_seconds)
        self.partial_every = partial_every
        self.rejected_every = rejected_every
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._seed_sequences()
        self._services: dict[int, Service] = {}
        self._services_json: bytes | None = None
        self._load_services()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _seed_sequences(self) -> None:
        # Real panels never start at order 1; start where a small live panel plausibly would.
        with self._tx() as db:
            for table, first in (("orders", FIRST_ORDER_ID), ("refills", FIRST_REFILL_ID)):
                seen = db.execute("SELECT 1 FROM sqlite_sequence WHERE name = ?", (table,))
                if seen.fetchone() is None:
                    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                               (table, first - 1))

    # --- keys ---------------------------------------------------------------------------

    def set_balance(self, key: str, balance: Decimal) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO keys (api_key, balance) VALUES (?, ?) ON CONFLICT (api_key) "
                       "DO UPDATE SET balance = excluded.balance", (key, format_money(balance)))

    def ensure_key(self, key: str, balance: Decimal) -> None:
        """Create a key with this balance unless it exists (keeps a persisted demo balance)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO keys (api_key, balance) VALUES (?, ?)",
                       (key, format_money(balance)))

    def has_key(self, key: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM keys WHERE api_key = ?", (key,)).fetchone()
        return row is not None

    def keys(self) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute("SELECT api_key, balance FROM keys ORDER BY api_key")
            return {r["api_key"]: r["balance"] for r in rows}

    def balance(self, key: str, now: float) -> Decimal | None:
        """The key's balance after crediting refunds of orders that have finished by now."""
        with self._tx() as db:
            rows = db.execute("SELECT * FROM orders WHERE api_key = ? AND finished = 0", (key,))
            for order in [Order(**row) for row in rows]:
                self._settle_if_final(order, order_state(order, now), now)
            return self._balance(key)

    def _balance(self, key: str) -> Decimal | None:
        row = self._db.execute("SELECT balance FROM keys WHERE api_key = ?", (key,)).fetchone()
        return None if row is None else Decimal(row["balance"])

    def _credit(self, key: str, amount: Decimal) -> None:
        current = self._balance(key) or Decimal(0)
        self._db.execute("UPDATE keys SET balance = ? WHERE api_key = ?",
                         (format_money(current + amount), key))

    # --- catalog ------------------------------------------------------------------------

    def _load_services(self) -> None:
        with self._lock:
            rows = self._db.execute("SELECT data FROM services ORDER BY pos").fetchall()
            self._services = {}
            for row in rows:
                svc = service_from_dict(json.loads(row["data"]))
                self._services[svc.id] = svc
            self._services_json = None

    def replace_services(self, services: Iterable[Service]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM services")
            db.executemany("INSERT OR REPLACE INTO services (id, pos, data) VALUES (?, ?, ?)",
                           ((s.id, pos, _service_json(s)) for pos, s in enumerate(services)))
        self._load_services()

    def update_service(self, service_id: int, fields: Mapping[str, Any]) -> Service:
        with self._tx() as db:
            current = self._services.get(service_id)
            if current is None:
                raise KeyError(service_id)
            merged = {**json.loads(_service_json(current)), **fields, "service": service_id}
            updated = service_from_dict(merged)
            db.execute("UPDATE services SET data = ? WHERE id = ?",
                       (_service_json(updated), service_id))
        with self._lock:  # one entry changed: reloading the whole catalog costs 0.2 s at 5,000
            self._services[service_id] = updated
            self._services_json = None
        return updated

    def remove_services(self, ids: Iterable[int]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM services WHERE id = ?", ((int(i),) for i in ids))
        self._load_services()

    def service(self, service_id: int) -> Service | None:
        return self._services.get(service_id)

    def services(self) -> list[Service]:
        return list(self._services.values())

    def services_json(self) -> bytes:
        # Cached: a 10,000-service catalog is ~2 MB of JSON and is asked for on every sync.
        with self._lock:
            if self._services_json is None:
                payload = [s.to_api() for s in self._services.values()]
                self._services_json = json.dumps(payload, separators=(",", ":")).encode()
            return self._services_json

    # --- orders -------------------------------------------------------------------------

    def create_order(self, key: str, new: NewOrder, now: float) -> int | str:
        """Charge the key and store the order; returns its id or the refusal text."""
        with self._tx() as db:
            if self._has_active_order(key, new.service.id, new.link, now):
                return DUPLICATE_LINK
            balance = self._balance(key)
            if balance is None or balance < new.charge:
                return NO_FUNDS
            self._credit(key, -new.charge)
            cursor = db.execute(
                "INSERT INTO orders (api_key, service, kind, link, quantity, charge, runs, "
                "interval, params, created, step, posts, expiry) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, new.service.id, new.service.kind, new.link, new.quantity,
                 format_money(new.charge), new.runs, new.interval, json.dumps(new.params), now,
                 self.step_seconds, new.posts, new.expiry))
            order_id = int(cursor.lastrowid or 0)
            db.execute("UPDATE orders SET start_count = ?, final_remains = ? WHERE id = ?",
                       (*self._planned_outcome(order_id, new), order_id))
            return order_id

    def _planned_outcome(self, order_id: int, new: NewOrder) -> tuple[int, int]:
        """(start_count, final remains): about one order in `partial_every` ends Partial."""
        h = stable_hash("order", order_id)
        start_count = 100 + (h >> 20) % 25000
        partial_ok = new.service.kind not in FLAT_TYPES and new.service.kind != "Subscriptions"
        if not partial_ok or new.quantity < 2 or self.partial_every <= 0:
            return start_count, 0
        if h % self.partial_every:
            return start_count, 0
        share = 5 + (h >> 8) % 40
        return start_count, min(new.quantity - 1, max(1, new.quantity * share // 100))

    def _has_active_order(self, key: str, service_id: int, link: str, now: float) -> bool:
        rows = self._db.execute(
            "SELECT * FROM orders WHERE api_key = ? AND service = ? AND link = ? AND finished = 0",
            (key, service_id, link)).fetchall()
        active = False
        for order in (Order(**row) for row in rows):
            state = order_state(order, now)
            active = active or not state.final
            self._settle_if_final(order, state, now)
        return active

    def _settle_if_final(self, order: Order, state: OrderState, now: float) -> None:
        if order.finished or not state.final:
            return
        ended = finish_time(order) if order.status is None else now
        self._write_state(order, state, min(ended, now))

    def _write_state(self, order: Order, state: OrderState, now: float) -> None:
        """Persist a state (settled or forced); a final one credits the refund exactly once."""
        refund = refund_for(order, state.status, state.remains) if state.final else Decimal(0)
        # `refund` is written only when money moves, so a Completed order later forced to
        # Partial still gets its one refund.
        refund_text = format_money(refund) if refund else order.refund
        self._db.execute(
            "UPDATE orders SET status = ?, remains = ?, shown_start = ?, finished = ?, "
            "finished_at = ?, refund = ? WHERE id = ?",
            (state.status, state.remains, state.start_count, int(state.final),
             now if state.final else None, refund_text, order.id))
        if refund:
            self._credit(order.api_key, refund)
        order.refund = refund_text
        order.status, order.remains, order.shown_start = state.status, state.remains, (
            state.start_count)
        order.finished, order.finished_at = int(state.final), now if state.final else None

    def _orders(self, key: str | None, ids: list[int]) -> dict[int, Order]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        sql = f"SELECT * FROM orders WHERE id IN ({marks})"  # noqa: S608 - placeholders only
        args: list[Any] = list(ids)
        if key is not None:
            sql += " AND api_key = ?"
            args.append(key)
        return {row["id"]: Order(**row) for row in self._db.execute(sql, args)}

    def order_states(
        self, key: str, ids: list[int], now: float,
    ) -> dict[int, tuple[Order, OrderState] | None]:
        """States of the key's orders; None for ids that are not this key's orders."""
        with self._tx():
            found = self._orders(key, ids)
            result: dict[int, tuple[Order, OrderState] | None] = {}
            for order_id in ids:
                order = found.get(order_id)
                if order is None:
                    result[order_id] = None
                    continue
                state = order_state(order, now)
                self._settle_if_final(order, state, now)
                result[order_id] = (order, state)
            return result

    def cancel(self, key: str, order_id: int, now: float) -> str | None:
        """Accept a cancel (None) or say why not; the order ends Canceled or Partial at once."""
        with self._tx():
            order = self._orders(key, [order_id]).get(order_id)
            if order is None:
                return BAD_ORDER
            state = order_state(order, now)
            self._settle_if_final(order, state, now)
            service = self._services.get(order.service)
            if service is None or not service.cancel or state.final:
                return NO_CANCEL
            remains = int(state.remains) if state.remains.isdigit() else order.quantity
            status = "Canceled" if remains >= order.quantity else "Partial"
            start = state.start_count if state.start_count != "0" else str(order.start_count)
            self._write_state(order, OrderState(status, str(remains), start), now)
            return None

    def force_order(
        self, order_id: int, now: float, status: str | None = None,
        remains: int | str | None = None, start_count: int | str | None = None,
    ) -> OrderState:
        """Pin an order's state (any key's); it stays there until forced again."""
        with self._tx():
            order = self._orders(None, [order_id]).get(order_id)
            if order is None:
                raise KeyError(order_id)
            current = order_state(order, now)
            new_status = status if status is not None else current.status
            new_remains = _forced_remains(order, current, new_status, remains)
            new_start = str(start_count) if start_count is not None else (
                current.start_count if current.start_count != "0" else str(order.start_count))
            state = OrderState(new_status, new_remains, new_start)
            self._write_state(order, state, now)
            return state

    def order_info(self, order_id: int, now: float) -> dict[str, Any] | None:
        with self._tx():
            order = self._orders(None, [order_id]).get(order_id)
            if order is None:
                return None
            state = order_state(order, now)
            self._settle_if_final(order, state, now)
            info = {k: v for k, v in vars(order).items() if k != "params"}
            info["params"] = json.loads(order.params)
            info.update(shown_status=state.status, shown_remains=state.remains,
                        shown_start_count=state.start_count)
            return info

    # --- refills ------------------------------------------------------------------------

    def create_refill(self, key: str, order_id: int, now: float) -> int | str:
        with self._tx() as db:
            order = self._orders(key, [order_id]).get(order_id)
            if order is None:
                return BAD_ORDER
            state = order_state(order, now)
            self._settle_if_final(order, state, now)
            if not self._refill_allowed(order, state, now):
                return NO_REFILL
            cursor = db.execute(
                "INSERT INTO refills (order_id, api_key, created, step, rejected) "
                "VALUES (?, ?, ?, ?, 0)", (order_id, key, now, self.step_seconds))
            refill_id = int(cursor.lastrowid or 0)
            rejected = self.rejected_every > 0 and (
                stable_hash("refill", refill_id) % self.rejected_every == 0)
            db.execute("UPDATE refills SET rejected = ? WHERE id = ?", (int(rejected), refill_id))
            return refill_id

    def _refill_allowed(self, order: Order, state: OrderState, now: float) -> bool:
        service = self._services.get(order.service)
        if service is None or not service.refill or state.status != "Completed":
            return False
        ended = order.finished_at if order.finished_at is not None else now
        if service.refill_days and now > ended + service.refill_days * 86400:
            return False
        rows = self._db.execute("SELECT * FROM refills WHERE order_id = ? AND status IS NULL",
                                (order.id,)).fetchall()
        pending = False
        for row in rows:
            shown = refill_state(row, now)
            if shown in ("Completed", "Rejected"):
                self._db.execute("UPDATE refills SET status = ? WHERE id = ?", (shown, row["id"]))
            else:
                pending = True
        return not pending

    def refill_states(self, key: str, ids: list[int], now: float) -> dict[int, str | None]:
        with self._tx() as db:
            if not ids:
                return {}
            marks = ",".join("?" * len(ids))
            sql = f"SELECT * FROM refills WHERE api_key = ? AND id IN ({marks})"  # noqa: S608
            found = {row["id"]: row for row in db.execute(sql, [key, *ids])}
            return {i: (refill_state(found[i], now) if i in found else None) for i in ids}

    # --- speed --------------------------------------------------------------------------

    def set_step(self, step_seconds: float, now: float) -> None:
        """Change the speed; running orders keep their progress and go on at the new pace."""
        new = float(step_seconds)
        with self._tx() as db:
            self.step_seconds = new
            for table, where in (("orders", "finished = 0 AND status IS NULL"),
                                 ("refills", "status IS NULL")):
                # Rescale the elapsed time so the fraction already done is unchanged.
                sql = (f"UPDATE {table} SET created = CASE WHEN ? > 0 "  # noqa: S608
                       f"THEN ? - (? - created) * ? / step ELSE created END, step = ? "
                       f"WHERE {where} AND step > 0")
                db.execute(sql, (new, now, now, new, new))

    # --- add log ------------------------------------------------------------------------

    def log_add(
        self, key: str, params: Mapping[str, str], now: float, order_id: int | None = None,
        error: str | None = None, fault: str | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO adds (ts, api_key, params, order_id, error, fault) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (now, key, json.dumps(dict(params)), order_id, error, fault))

    def adds(self, key: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if key is None:
                rows = self._db.execute("SELECT * FROM adds ORDER BY id").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM adds WHERE api_key = ? ORDER BY id",
                                        (key,)).fetchall()
        return [{"id": r["id"], "time": r["ts"], "key": r["api_key"],
                 "params": json.loads(r["params"]), "order": r["order_id"], "error": r["error"],
                 "fault": r["fault"]} for r in rows]


def _service_json(service: Service) -> str:
    return json.dumps({**service.to_api(), "refill_days": service.refill_days})


def _forced_remains(
    order: Order, current: OrderState, status: str, remains: int | str | None,
) -> str:
    if remains is not None:
        return str(remains)
    lowered = status.strip().lower()
    if lowered == "completed":
        return "0"
    if lowered in _FULL_REFUND or lowered == "pending":
        return str(order.quantity)
    return current.remains
