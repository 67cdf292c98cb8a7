"""A standalone API v2 upstream for demos, end-to-end tests and benchmarks (stdlib only).

    from providers.sandbox import SandboxServer
    with SandboxServer(step_seconds=0) as srv:
        requests.post(srv.url, data={"key": srv.key, "action": "services"})
"""

from .server import DEFAULT_KEY, FAULT_NAMES, QUIRK_NAMES, SandboxServer

__all__ = ["DEFAULT_KEY", "FAULT_NAMES", "QUIRK_NAMES", "SandboxServer"]
