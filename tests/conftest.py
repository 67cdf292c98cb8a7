import ipaddress
import socket
from collections.abc import Callable
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
