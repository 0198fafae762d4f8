"""The EFI system table, boot and runtime services tables and the configuration table array."""

from __future__ import annotations

import zlib

from .layouts import efi
from .memory import MemoryType, ucs2

CONFIG_TABLE_CAPACITY = 64


def _header(signature: int, layout) -> dict:
    return dict(Signature=signature, Revision=efi.SPECIFICATION_REVISION,
                HeaderSize=layout.sizeof(), CRC32=0, Reserved=0)


def write_table(fw, layout, address: int, value: dict) -> None:
    """Write a table that starts with an EFI_TABLE_HEADER, with its CRC32 computed."""
    value["Hdr"]["CRC32"] = 0
    raw = layout.build(value)
    value["Hdr"]["CRC32"] = zlib.crc32(raw)
    fw.mem.write(address, layout.build(value))


def build_firmware_tables(fw, console: dict) -> None:
    """Create ST, BS and RT in guest memory; every member points at its stub.

    ``console`` gives ConsoleInHandle/ConIn/ConsoleOutHandle/ConOut/StandardErrorHandle/StdErr.
    """
    data = MemoryType.EfiRuntimeServicesData
    layout = fw.layout
    fw.boot_services = fw.allocate_pool(MemoryType.EfiBootServicesData, layout.BootServices.sizeof())
    write_table(fw, layout.BootServices, fw.boot_services,
                dict(Hdr=_header(efi.BOOT_SERVICES_SIGNATURE, layout.BootServices),
                     **{name: fw.stub_address[name] for name in efi.BOOT_SERVICES}))
    fw.runtime_services = fw.allocate_pool(data, layout.RuntimeServices.sizeof())
    write_table(fw, layout.RuntimeServices, fw.runtime_services,
                dict(Hdr=_header(efi.RUNTIME_SERVICES_SIGNATURE, layout.RuntimeServices),
                     **{name: fw.stub_address[name] for name in efi.RUNTIME_SERVICES}))
    fw.config_table_array = fw.allocate_pool(data, CONFIG_TABLE_CAPACITY * layout.ConfigurationTable.sizeof())
    fw.config_table_capacity = CONFIG_TABLE_CAPACITY
    fw.system_table = fw.allocate_pool(data, layout.SystemTable.sizeof())
    fw.system_table_value = dict(
        Hdr=_header(efi.SYSTEM_TABLE_SIGNATURE, layout.SystemTable),
        FirmwareVendor=fw.store(data, ucs2(fw.VENDOR)),
        FirmwareRevision=fw.REVISION,
        RuntimeServices=fw.runtime_services,
        BootServices=fw.boot_services,
        NumberOfTableEntries=0,
        ConfigurationTable=fw.config_table_array,
        **console,
    )
    write_table(fw, layout.SystemTable, fw.system_table, fw.system_table_value)


def update_system_table(fw, **changes) -> None:
    fw.system_table_value.update(changes)
    write_table(fw, fw.layout.SystemTable, fw.system_table, fw.system_table_value)


def write_configuration_tables(fw) -> None:
    """Rewrite the configuration table array (growing it when full) and the system table."""
    entries = list(fw.config_tables.items())
    entry = fw.layout.ConfigurationTable
    if len(entries) > fw.config_table_capacity:
        old = fw.config_table_array
        fw.config_table_capacity *= 2
        fw.config_table_array = fw.allocate_pool(MemoryType.EfiRuntimeServicesData,
                                                 fw.config_table_capacity * entry.sizeof())
        fw.free_pool(old)
    raw = b"".join(entry.build(dict(VendorGuid=g.to_bytes(), VendorTable=t)) for g, t in entries)
    fw.mem.write(fw.config_table_array, raw.ljust(fw.config_table_capacity * entry.sizeof(), b"\0"))
    update_system_table(fw, NumberOfTableEntries=len(entries), ConfigurationTable=fw.config_table_array)
