"""Exceptions that cross module boundaries."""

from __future__ import annotations


class EfiStubError(Exception):
    """Base class of efistub's own errors."""


class InputError(EfiStubError):
    """Bad input from the user: the CLI prints ``efistub: error: <message>`` and exits 2."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class GuestMemoryError(EfiStubError):
    """A service touched guest memory that is not there (a wild or NULL guest pointer)."""

    def __init__(self, address: int, size: int, access: str):
        super().__init__(f"cannot {access} {size} bytes at 0x{address:x}")
        self.address = address
        self.size = size
        self.access = access


class EfiError(EfiStubError):
    """Raised inside a service to return an EFI status to the guest."""

    def __init__(self, status, note: str | None = None):
        super().__init__(note or str(status))
        self.status = status
        self.note = note
