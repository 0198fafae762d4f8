"""The error statuses the UEFI specification lists for each service: what ``efistub sweep`` injects by default.

One table, written once: the boot and runtime services (UEFI 2.10 §7 and §8), the
protocol functions efistub implements (§12, §13, §34, §35, §37), and EFI_TCG2_PROTOCOL
(TCG EFI Protocol Specification, 1.22). Each entry lists the error statuses of the
function's "Status Codes Returned" table, in the specification's order; EFI_SUCCESS and
warnings are left out (a sweep makes calls fail). A service with no entry, or an empty
one, is not swept unless ``--status`` names the statuses; a service that returns no
status (CopyMem, RaiseTPL, the device path utilities) can never fail.
"""

from __future__ import annotations

from .status import Status

S = Status
INVALID = S.EFI_INVALID_PARAMETER
RESOURCES = S.EFI_OUT_OF_RESOURCES
MEDIA = (S.EFI_NO_MEDIA, S.EFI_DEVICE_ERROR, S.EFI_VOLUME_CORRUPTED)  # every EFI_FILE_PROTOCOL access

SPEC_STATUSES: dict[str, tuple[Status, ...]] = {
    # Boot services: events, timers and the TPL (§7.1)
    "CreateEvent": (INVALID, RESOURCES),
    "CreateEventEx": (INVALID, RESOURCES),
    "CloseEvent": (),
    "SignalEvent": (),
    "WaitForEvent": (INVALID, S.EFI_UNSUPPORTED),
    "CheckEvent": (S.EFI_NOT_READY, INVALID),
    "SetTimer": (INVALID,),
    # memory allocation (§7.2)
    "AllocatePages": (RESOURCES, INVALID, S.EFI_NOT_FOUND),
    "FreePages": (S.EFI_NOT_FOUND, INVALID),
    "GetMemoryMap": (S.EFI_BUFFER_TOO_SMALL, INVALID),
    "AllocatePool": (RESOURCES, INVALID),
    "FreePool": (INVALID,),
    # protocol handler services (§7.3)
    "InstallProtocolInterface": (RESOURCES, INVALID),
    "UninstallProtocolInterface": (S.EFI_NOT_FOUND, S.EFI_ACCESS_DENIED, INVALID),
    "ReinstallProtocolInterface": (S.EFI_NOT_FOUND, S.EFI_ACCESS_DENIED, INVALID),
    "RegisterProtocolNotify": (RESOURCES, INVALID),
    "LocateHandle": (S.EFI_NOT_FOUND, S.EFI_BUFFER_TOO_SMALL, INVALID),
    "HandleProtocol": (S.EFI_UNSUPPORTED, INVALID),
    "LocateDevicePath": (S.EFI_NOT_FOUND, INVALID),
    "OpenProtocol": (INVALID, S.EFI_UNSUPPORTED, S.EFI_ACCESS_DENIED, S.EFI_ALREADY_STARTED),
    "CloseProtocol": (INVALID, S.EFI_NOT_FOUND),
    "OpenProtocolInformation": (S.EFI_NOT_FOUND, RESOURCES),
    "ConnectController": (INVALID, S.EFI_NOT_FOUND, S.EFI_SECURITY_VIOLATION),
    "DisconnectController": (INVALID, RESOURCES, S.EFI_DEVICE_ERROR),
    "ProtocolsPerHandle": (INVALID, RESOURCES),
    "LocateHandleBuffer": (INVALID, S.EFI_NOT_FOUND, RESOURCES),
    "LocateProtocol": (INVALID, S.EFI_NOT_FOUND),
    "InstallMultipleProtocolInterfaces": (S.EFI_ALREADY_STARTED, RESOURCES, INVALID),
    "UninstallMultipleProtocolInterfaces": (INVALID,),
    # image services (§7.4)
    "LoadImage": (S.EFI_NOT_FOUND, INVALID, S.EFI_UNSUPPORTED, RESOURCES, S.EFI_LOAD_ERROR, S.EFI_DEVICE_ERROR,
                  S.EFI_ACCESS_DENIED, S.EFI_SECURITY_VIOLATION),
    "StartImage": (INVALID, S.EFI_SECURITY_VIOLATION),
    "UnloadImage": (S.EFI_UNSUPPORTED, INVALID),
    "Exit": (INVALID,),
    "ExitBootServices": (INVALID,),
    # miscellaneous boot services (§7.5)
    "SetWatchdogTimer": (INVALID, S.EFI_UNSUPPORTED, S.EFI_DEVICE_ERROR),
    "Stall": (),
    "InstallConfigurationTable": (S.EFI_NOT_FOUND, INVALID, RESOURCES),
    "GetNextMonotonicCount": (S.EFI_DEVICE_ERROR, INVALID),
    "CalculateCrc32": (INVALID,),
    # Runtime services: variables (§8.2), time (§8.3), virtual memory (§8.4), miscellaneous (§8.5)
    "GetVariable": (S.EFI_NOT_FOUND, S.EFI_BUFFER_TOO_SMALL, INVALID, S.EFI_DEVICE_ERROR, S.EFI_SECURITY_VIOLATION,
                    S.EFI_UNSUPPORTED),
    "GetNextVariableName": (S.EFI_NOT_FOUND, S.EFI_BUFFER_TOO_SMALL, INVALID, S.EFI_DEVICE_ERROR,
                            S.EFI_UNSUPPORTED),
    "SetVariable": (INVALID, RESOURCES, S.EFI_DEVICE_ERROR, S.EFI_WRITE_PROTECTED, S.EFI_SECURITY_VIOLATION,
                    S.EFI_NOT_FOUND, S.EFI_UNSUPPORTED),
    "QueryVariableInfo": (INVALID, S.EFI_UNSUPPORTED),
    "GetTime": (INVALID, S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "SetTime": (INVALID, S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "GetWakeupTime": (INVALID, S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "SetWakeupTime": (INVALID, S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "SetVirtualAddressMap": (S.EFI_UNSUPPORTED, S.EFI_NO_MAPPING, S.EFI_NOT_FOUND, INVALID),
    "ConvertPointer": (S.EFI_NOT_FOUND, INVALID, S.EFI_UNSUPPORTED),
    "GetNextHighMonotonicCount": (S.EFI_DEVICE_ERROR, INVALID, S.EFI_UNSUPPORTED),
    "UpdateCapsule": (INVALID, S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED, RESOURCES),
    "QueryCapsuleCapabilities": (S.EFI_UNSUPPORTED, RESOURCES, INVALID),
    # console (§12.3, §12.4)
    "TextInput.Reset": (S.EFI_DEVICE_ERROR,),
    "TextInput.ReadKeyStroke": (S.EFI_NOT_READY, S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "TextInputEx.Reset": (S.EFI_DEVICE_ERROR,),
    "TextInputEx.ReadKeyStrokeEx": (S.EFI_NOT_READY, S.EFI_DEVICE_ERROR, INVALID, S.EFI_UNSUPPORTED),
    "TextInputEx.SetState": (S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED, INVALID),
    "TextInputEx.RegisterKeyNotify": (RESOURCES, INVALID),
    "TextInputEx.UnregisterKeyNotify": (INVALID,),
    "TextOutput.Reset": (S.EFI_DEVICE_ERROR,),
    "TextOutput.OutputString": (S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "TextOutput.TestString": (S.EFI_UNSUPPORTED,),
    "TextOutput.QueryMode": (S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "TextOutput.SetMode": (S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "TextOutput.SetAttribute": (S.EFI_DEVICE_ERROR,),
    "TextOutput.ClearScreen": (S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "TextOutput.SetCursorPosition": (S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    "TextOutput.EnableCursor": (S.EFI_DEVICE_ERROR, S.EFI_UNSUPPORTED),
    # media access (§13.2, §13.4, §13.5, §13.7, §13.9)
    "LoadFile2.LoadFile": (S.EFI_UNSUPPORTED, INVALID, S.EFI_NO_MEDIA, S.EFI_DEVICE_ERROR, S.EFI_NO_RESPONSE,
                           S.EFI_NOT_FOUND, S.EFI_ABORTED, S.EFI_BUFFER_TOO_SMALL),
    "SimpleFileSystem.OpenVolume": (S.EFI_UNSUPPORTED, S.EFI_NO_MEDIA, S.EFI_DEVICE_ERROR, S.EFI_VOLUME_CORRUPTED,
                                    S.EFI_ACCESS_DENIED, RESOURCES, S.EFI_MEDIA_CHANGED),
    "File.Open": (S.EFI_NOT_FOUND, S.EFI_NO_MEDIA, S.EFI_MEDIA_CHANGED, S.EFI_DEVICE_ERROR, S.EFI_VOLUME_CORRUPTED,
                  S.EFI_WRITE_PROTECTED, S.EFI_ACCESS_DENIED, RESOURCES, S.EFI_VOLUME_FULL, INVALID),
    "File.Close": (),
    "File.Delete": (),
    "File.Read": (*MEDIA, S.EFI_BUFFER_TOO_SMALL),
    "File.Write": (S.EFI_UNSUPPORTED, *MEDIA, S.EFI_WRITE_PROTECTED, S.EFI_ACCESS_DENIED, S.EFI_VOLUME_FULL),
    "File.GetPosition": (S.EFI_UNSUPPORTED, S.EFI_DEVICE_ERROR),
    "File.SetPosition": (S.EFI_UNSUPPORTED, S.EFI_DEVICE_ERROR),
    "File.GetInfo": (S.EFI_UNSUPPORTED, *MEDIA, S.EFI_BUFFER_TOO_SMALL),
    "File.SetInfo": (S.EFI_UNSUPPORTED, *MEDIA, S.EFI_WRITE_PROTECTED, S.EFI_ACCESS_DENIED, S.EFI_VOLUME_FULL,
                     S.EFI_BAD_BUFFER_SIZE),
    "File.Flush": (*MEDIA, S.EFI_WRITE_PROTECTED, S.EFI_ACCESS_DENIED, S.EFI_VOLUME_FULL),
    "DiskIo.ReadDisk": (S.EFI_DEVICE_ERROR, S.EFI_NO_MEDIA, S.EFI_MEDIA_CHANGED, INVALID),
    "DiskIo.WriteDisk": (S.EFI_WRITE_PROTECTED, S.EFI_DEVICE_ERROR, S.EFI_NO_MEDIA, S.EFI_MEDIA_CHANGED, INVALID),
    "BlockIo.Reset": (S.EFI_DEVICE_ERROR,),
    "BlockIo.ReadBlocks": (S.EFI_DEVICE_ERROR, S.EFI_NO_MEDIA, S.EFI_MEDIA_CHANGED, S.EFI_BAD_BUFFER_SIZE, INVALID),
    "BlockIo.WriteBlocks": (S.EFI_WRITE_PROTECTED, S.EFI_NO_MEDIA, S.EFI_MEDIA_CHANGED, S.EFI_DEVICE_ERROR,
                            S.EFI_BAD_BUFFER_SIZE, INVALID),
    "BlockIo.FlushBlocks": (S.EFI_DEVICE_ERROR, S.EFI_NO_MEDIA),
    # HII (§34.8, §35.4)
    "HiiDatabase.NewPackageList": (RESOURCES, INVALID),
    "HiiDatabase.RemovePackageList": (S.EFI_NOT_FOUND,),
    "HiiDatabase.UpdatePackageList": (RESOURCES, INVALID, S.EFI_NOT_FOUND),
    "HiiDatabase.ListPackageLists": (S.EFI_BUFFER_TOO_SMALL, INVALID, S.EFI_NOT_FOUND),
    "HiiDatabase.ExportPackageLists": (S.EFI_BUFFER_TOO_SMALL, INVALID, S.EFI_NOT_FOUND),
    "HiiDatabase.GetPackageListHandle": (INVALID, S.EFI_NOT_FOUND),
    "HiiString.NewString": (RESOURCES, INVALID, S.EFI_NOT_FOUND),
    "HiiString.GetString": (S.EFI_NOT_FOUND, S.EFI_INVALID_LANGUAGE, S.EFI_BUFFER_TOO_SMALL, INVALID, RESOURCES),
    "HiiString.SetString": (S.EFI_NOT_FOUND, INVALID, RESOURCES),
    "HiiString.GetLanguages": (S.EFI_NOT_FOUND, S.EFI_BUFFER_TOO_SMALL, INVALID),
    "HiiString.GetSecondaryLanguages": (S.EFI_NOT_FOUND, S.EFI_BUFFER_TOO_SMALL, INVALID, S.EFI_INVALID_LANGUAGE),
    # EFI_RNG_PROTOCOL (§37.5) and RISCV_EFI_BOOT_PROTOCOL
    "Rng.GetInfo": (S.EFI_UNSUPPORTED, S.EFI_DEVICE_ERROR, S.EFI_BUFFER_TOO_SMALL),
    "Rng.GetRNG": (S.EFI_UNSUPPORTED, S.EFI_DEVICE_ERROR, S.EFI_NOT_READY, INVALID),
    "RiscvBoot.GetBootHartId": (INVALID,),
    # EFI_TCG2_PROTOCOL (TCG EFI Protocol Specification §6)
    "Tcg2.GetCapability": (S.EFI_DEVICE_ERROR, INVALID, S.EFI_BUFFER_TOO_SMALL),
    "Tcg2.GetEventLog": (INVALID,),
    "Tcg2.HashLogExtendEvent": (S.EFI_DEVICE_ERROR, S.EFI_VOLUME_FULL, INVALID, S.EFI_UNSUPPORTED),
    "Tcg2.SubmitCommand": (S.EFI_DEVICE_ERROR, INVALID, S.EFI_BUFFER_TOO_SMALL),
    "Tcg2.GetActivePcrBanks": (INVALID,),
    "Tcg2.SetActivePcrBanks": (INVALID, RESOURCES, S.EFI_UNSUPPORTED),
    "Tcg2.GetResultOfSetActivePcrBanks": (INVALID, S.EFI_UNSUPPORTED),
}


def spec_statuses(service: str) -> tuple[Status, ...]:
    """The error statuses the specification lists for ``service`` (empty when it lists none)."""
    return SPEC_STATUSES.get(service, ())
