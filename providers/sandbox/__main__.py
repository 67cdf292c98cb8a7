"""CLI: `python -m providers.sandbox --port 8765 --step-seconds 60 --db var/sandbox.sqlite3`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType

from .server import FAULT_NAMES, QUIRK_NAMES, SandboxServer


def _key_balance(text: str) -> tuple[str, Decimal]:
    key, sep, balance = text.rpartition(":")
    try:
        if not sep or not key:
            raise InvalidOperation
        return key, Decimal(balance)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"expected KEY:BALANCE, got {text!r}") from exc


def _parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m providers.sandbox",
        description="A sandbox SMM provider speaking API v2 on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=int(env.get("SANDBOX_PORT", "8765")))
    parser.add_argument("--step-seconds", type=float,
                        default=float(env.get("SANDBOX_STEP_SECONDS", "60")),
                        help="seconds per progress step; 0 = orders finish at once")
    parser.add_argument("--db", default=env.get("SANDBOX_DB", ":memory:"),
                        help="SQLite file to persist keys, orders and the add log")
    parser.add_argument("--key", action="append", type=_key_balance, default=[],
                        metavar="KEY:BALANCE", help="add an API key with a USD balance")
    parser.add_argument("--fault", choices=FAULT_NAMES, default=env.get("SANDBOX_FAULT") or None,
                        help="misbehave on every call until cleared through /control/fault")
    parser.add_argument("--fault-delay", type=float, default=None)
    parser.add_argument("--fault-message", default=None)
    parser.add_argument("--quirk", action="append", choices=QUIRK_NAMES, default=[],
                        help="behave like a real upstream of that kind (repeatable)")
    parser.add_argument("--status-delay-per-id", type=float, default=None,
                        help="seconds a multi-id status takes per id (slow_multi_status)")
    parser.add_argument("--catalog-size", type=int, default=None,
                        help="serve a synthetic catalog of N services instead of the demo one")
    parser.add_argument("--partial-every", type=int, default=8,
                        help="about one order in N ends Partial (0 = never)")
    parser.add_argument("--rejected-every", type=int, default=10,
                        help="about one refill in N ends Rejected (0 = never)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.db != ":memory:":
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    server = SandboxServer(
        port=args.port, step_seconds=args.step_seconds, catalog_size=args.catalog_size,
        db=args.db, keys=dict(args.key), fault=args.fault, fault_delay=args.fault_delay,
        fault_message=args.fault_message, partial_every=args.partial_every,
        rejected_every=args.rejected_every, verbose=args.verbose,
    ).start()
    for quirk in args.quirk:
        server.set_quirk(quirk)
    if args.status_delay_per_id is not None:
        server.set_status_delay(args.status_delay_per_id)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"sandbox provider listening on {server.url} key={server.key} "
          f"step={server.step_seconds:g}s control={server.control_url}/", flush=True)
    while not done.wait(0.5):  # a timed wait keeps the main thread responsive to signals
        pass
    server.stop()
    server.store.close()
    print("sandbox provider stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
