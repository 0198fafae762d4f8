"""Every service efistub has: importing the service and protocol modules registers them.

The registry (efistub.registry) holds the list and imports no service; this module
is the one place that loads them all.
"""

from __future__ import annotations

from .registry import REGISTRY, Service


def load_all() -> dict[str, Service]:
    """Import every module that registers services; return the registry."""
    from . import protocols, services  # noqa: F401 - imported for their registrations

    return REGISTRY
