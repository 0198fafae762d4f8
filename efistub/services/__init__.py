"""Boot and runtime services, one module per family of the UEFI specification.

Importing this package registers every service in ``efistub.registry.REGISTRY``.
"""

from . import events, image, memory, misc, protocol_handler, time, variables, virtual_memory  # noqa: F401
