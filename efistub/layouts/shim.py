"""shim's structures (rhboot/shim shim.h), as construct definitions."""

from __future__ import annotations

from construct import Int32ul, Int64ul, Struct


def shim_lock(width: int) -> Struct:
    """SHIM_LOCK, the protocol shim installs under SHIM_LOCK_GUID: three function pointers. They have
    no EFIAPI, so on x86_64 they follow the System V convention, not the UEFI one (shim.h, and GRUB's
    grub_efi_shim_lock_protocol)."""
    pointer = Int64ul if width == 8 else Int32ul
    return Struct(
        "Verify" / pointer,  # EFI_STATUS Verify(VOID *buffer, UINT32 size)
        "Hash" / pointer,  # EFI_STATUS Hash(char *data, int datasize, context, sha256hash, sha1hash)
        "Context" / pointer,  # EFI_STATUS Context(VOID *data, unsigned int datasize, context)
    )
