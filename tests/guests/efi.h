/*
 * Minimal UEFI declarations for efistub's guest test programs.
 * Written from the UEFI 2.10 specification; only what the guests use.
 * Freestanding: no EFI SDK, no libc.
 */
#ifndef EFISTUB_GUEST_EFI_H
#define EFISTUB_GUEST_EFI_H

/*
 * Calling convention of EFI services and of the entry point (UEFI 2.10 2.3):
 * x64 uses the Microsoft x64 convention; IA32 uses cdecl, the default of the
 * i686 targets; AArch64 and RISC-V 64 use their standard procedure call ABIs.
 */
#if defined(__x86_64__)
#define EFIAPI __attribute__((ms_abi))
#else
#define EFIAPI
#endif

typedef unsigned char UINT8;
typedef unsigned short UINT16;
typedef unsigned int UINT32;
typedef unsigned long long UINT64;
typedef signed char INT8;
typedef short INT16;
typedef int INT32;
typedef long long INT64;
/* UINTN, INTN, EFI_STATUS, handles and pointers have the width of a pointer:
   64 bits on x64, AArch64 and RISC-V 64, 32 bits on IA32. */
#if __SIZEOF_POINTER__ == 8
typedef UINT64 UINTN;
typedef INT64 INTN;
#elif __SIZEOF_POINTER__ == 4
typedef UINT32 UINTN;
typedef INT32 INTN;
#else
#error "unsupported pointer width"
#endif
typedef UINT8 BOOLEAN;
typedef UINT16 CHAR16;
typedef char CHAR8;
typedef void VOID;

typedef UINTN EFI_STATUS;
typedef VOID *EFI_HANDLE;
typedef VOID *EFI_EVENT;
typedef UINTN EFI_TPL;
typedef UINT64 EFI_PHYSICAL_ADDRESS;
typedef UINT64 EFI_VIRTUAL_ADDRESS;

#define NULL ((void *)0)
#define TRUE 1
#define FALSE 0

typedef struct {
    UINT32 Data1;
    UINT16 Data2;
    UINT16 Data3;
    UINT8 Data4[8];
} EFI_GUID;

/* Status codes (Appendix D): errors have the top bit of UINTN set, so
   EFI_NOT_FOUND is 0x800000000000000E on 64-bit and 0x8000000E on IA32. */
#define EFI_ERR ((UINTN)1 << (sizeof(UINTN) * 8 - 1))
#define EFI_SUCCESS ((UINTN)0)
#define EFI_LOAD_ERROR (EFI_ERR | 1)
#define EFI_INVALID_PARAMETER (EFI_ERR | 2)
#define EFI_UNSUPPORTED (EFI_ERR | 3)
#define EFI_BAD_BUFFER_SIZE (EFI_ERR | 4)
#define EFI_BUFFER_TOO_SMALL (EFI_ERR | 5)
#define EFI_NOT_READY (EFI_ERR | 6)
#define EFI_DEVICE_ERROR (EFI_ERR | 7)
#define EFI_WRITE_PROTECTED (EFI_ERR | 8)
#define EFI_OUT_OF_RESOURCES (EFI_ERR | 9)
#define EFI_NOT_FOUND (EFI_ERR | 14)
#define EFI_ACCESS_DENIED (EFI_ERR | 15)
#define EFI_ABORTED (EFI_ERR | 21)
#define EFI_SECURITY_VIOLATION (EFI_ERR | 26)
#define EFI_INVALID_LANGUAGE (EFI_ERR | 32)
#define EFI_ERROR(s) (((INTN)(s)) < 0)

/* Task priority levels */
#define TPL_APPLICATION 4
#define TPL_CALLBACK 8
#define TPL_NOTIFY 16
#define TPL_HIGH_LEVEL 31

typedef struct {
    UINT64 Signature;
    UINT32 Revision;
    UINT32 HeaderSize;
    UINT32 CRC32;
    UINT32 Reserved;
} EFI_TABLE_HEADER;

#define EFI_SYSTEM_TABLE_SIGNATURE 0x5453595320494249ULL
#define EFI_BOOT_SERVICES_SIGNATURE 0x56524553544f4f42ULL
#define EFI_RUNTIME_SERVICES_SIGNATURE 0x56524553544e5552ULL

/* Memory */
typedef enum {
    EfiReservedMemoryType,
    EfiLoaderCode,
    EfiLoaderData,
    EfiBootServicesCode,
    EfiBootServicesData,
    EfiRuntimeServicesCode,
    EfiRuntimeServicesData,
    EfiConventionalMemory,
    EfiUnusableMemory,
    EfiACPIReclaimMemory,
    EfiACPIMemoryNVS,
    EfiMemoryMappedIO,
    EfiMemoryMappedIOPortSpace,
    EfiPalCode,
    EfiPersistentMemory,
    EfiUnacceptedMemoryType,
    EfiMaxMemoryType
} EFI_MEMORY_TYPE;

typedef enum {
    AllocateAnyPages,
    AllocateMaxAddress,
    AllocateAddress,
    MaxAllocateType
} EFI_ALLOCATE_TYPE;

#define EFI_MEMORY_DESCRIPTOR_VERSION 1
typedef struct {
    UINT32 Type;
    EFI_PHYSICAL_ADDRESS PhysicalStart;
    EFI_VIRTUAL_ADDRESS VirtualStart;
    UINT64 NumberOfPages;
    UINT64 Attribute;
} EFI_MEMORY_DESCRIPTOR;

#define EFI_PAGE_SIZE 4096ULL

/* Time */
typedef struct {
    UINT16 Year;
    UINT8 Month;
    UINT8 Day;
    UINT8 Hour;
    UINT8 Minute;
    UINT8 Second;
    UINT8 Pad1;
    UINT32 Nanosecond;
    INT16 TimeZone;
    UINT8 Daylight;
    UINT8 Pad2;
} EFI_TIME;

typedef struct {
    UINT32 Resolution;
    UINT32 Accuracy;
    BOOLEAN SetsToZero;
} EFI_TIME_CAPABILITIES;

/* Device path (10.2) */
typedef struct {
    UINT8 Type;
    UINT8 SubType;
    UINT8 Length[2];
} EFI_DEVICE_PATH_PROTOCOL;

#define MEDIA_DEVICE_PATH 0x04
#define MEDIA_HARDDRIVE_DP 0x01
#define MEDIA_VENDOR_DP 0x03
#define MEDIA_FILEPATH_DP 0x04
#define END_DEVICE_PATH_TYPE 0x7f
#define END_INSTANCE_DEVICE_PATH_SUBTYPE 0x01
#define END_ENTIRE_DEVICE_PATH_SUBTYPE 0xff

/* File path media node (10.3.5.4): the header, then a NUL-terminated path. */
typedef struct {
    EFI_DEVICE_PATH_PROTOCOL Header;
    CHAR16 PathName[1];
} FILEPATH_DEVICE_PATH;

/* Device path utilities (10.5) */
#define EFI_DEVICE_PATH_UTILITIES_PROTOCOL_GUID \
    { 0x0379be4e, 0xd706, 0x437d, { 0xb0, 0x37, 0xed, 0xb8, 0x2f, 0xb7, 0x72, 0xa4 } }

typedef struct {
    UINTN(EFIAPI *GetDevicePathSize)(const EFI_DEVICE_PATH_PROTOCOL *DevicePath);
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *DuplicateDevicePath)(const EFI_DEVICE_PATH_PROTOCOL *DevicePath);
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *AppendDevicePath)(const EFI_DEVICE_PATH_PROTOCOL *Src1,
                                                         const EFI_DEVICE_PATH_PROTOCOL *Src2);
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *AppendDeviceNode)(const EFI_DEVICE_PATH_PROTOCOL *DevicePath,
                                                         const EFI_DEVICE_PATH_PROTOCOL *DeviceNode);
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *AppendDevicePathInstance)(
        const EFI_DEVICE_PATH_PROTOCOL *DevicePath, const EFI_DEVICE_PATH_PROTOCOL *DevicePathInstance);
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *GetNextDevicePathInstance)(EFI_DEVICE_PATH_PROTOCOL **DevicePathInstance,
                                                                  UINTN *DevicePathInstanceSize);
    BOOLEAN(EFIAPI *IsDevicePathMultiInstance)(const EFI_DEVICE_PATH_PROTOCOL *DevicePath);
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *CreateDeviceNode)(UINT8 NodeType, UINT8 NodeSubType, UINT16 NodeLength);
} EFI_DEVICE_PATH_UTILITIES_PROTOCOL;

/* Device path to text and from text (10.6) */
#define EFI_DEVICE_PATH_TO_TEXT_PROTOCOL_GUID \
    { 0x8b843e20, 0x8132, 0x4852, { 0x90, 0xcc, 0x55, 0x1a, 0x4e, 0x4a, 0x7f, 0x1c } }
#define EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL_GUID \
    { 0x05c99a21, 0xc70f, 0x4ad2, { 0x8a, 0x5f, 0x35, 0xdf, 0x33, 0x43, 0xf5, 0x1e } }

typedef struct {
    CHAR16 *(EFIAPI *ConvertDeviceNodeToText)(const EFI_DEVICE_PATH_PROTOCOL *DeviceNode, BOOLEAN DisplayOnly,
                                              BOOLEAN AllowShortcuts);
    CHAR16 *(EFIAPI *ConvertDevicePathToText)(const EFI_DEVICE_PATH_PROTOCOL *DevicePath, BOOLEAN DisplayOnly,
                                              BOOLEAN AllowShortcuts);
} EFI_DEVICE_PATH_TO_TEXT_PROTOCOL;

typedef struct {
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *ConvertTextToDeviceNode)(const CHAR16 *TextDeviceNode);
    EFI_DEVICE_PATH_PROTOCOL *(EFIAPI *ConvertTextToDevicePath)(const CHAR16 *TextDevicePath);
} EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL;

/* Simple text output (12.4) */
typedef struct EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL;
typedef struct {
    INT32 MaxMode;
    INT32 Mode;
    INT32 Attribute;
    INT32 CursorColumn;
    INT32 CursorRow;
    BOOLEAN CursorVisible;
} SIMPLE_TEXT_OUTPUT_MODE;

struct EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL {
    EFI_STATUS(EFIAPI *Reset)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, BOOLEAN ExtendedVerification);
    EFI_STATUS(EFIAPI *OutputString)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, CHAR16 *String);
    EFI_STATUS(EFIAPI *TestString)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, CHAR16 *String);
    EFI_STATUS(EFIAPI *QueryMode)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, UINTN ModeNumber,
                                  UINTN *Columns, UINTN *Rows);
    EFI_STATUS(EFIAPI *SetMode)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, UINTN ModeNumber);
    EFI_STATUS(EFIAPI *SetAttribute)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, UINTN Attribute);
    EFI_STATUS(EFIAPI *ClearScreen)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This);
    EFI_STATUS(EFIAPI *SetCursorPosition)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, UINTN Column,
                                          UINTN Row);
    EFI_STATUS(EFIAPI *EnableCursor)(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *This, BOOLEAN Visible);
    SIMPLE_TEXT_OUTPUT_MODE *Mode;
};

/* Simple text input (12.3); only its shape is needed */
typedef struct {
    UINT16 ScanCode;
    CHAR16 UnicodeChar;
} EFI_INPUT_KEY;

typedef struct EFI_SIMPLE_TEXT_INPUT_PROTOCOL EFI_SIMPLE_TEXT_INPUT_PROTOCOL;
struct EFI_SIMPLE_TEXT_INPUT_PROTOCOL {
    EFI_STATUS(EFIAPI *Reset)(EFI_SIMPLE_TEXT_INPUT_PROTOCOL *This, BOOLEAN ExtendedVerification);
    EFI_STATUS(EFIAPI *ReadKeyStroke)(EFI_SIMPLE_TEXT_INPUT_PROTOCOL *This, EFI_INPUT_KEY *Key);
    EFI_EVENT WaitForKey;
};

/* Simple text input ex (12.2) */
#define EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL_GUID \
    { 0xdd9e7534, 0x7762, 0x4698, { 0x8c, 0x14, 0xf5, 0x85, 0x17, 0xa6, 0x25, 0xaa } }

typedef UINT8 EFI_KEY_TOGGLE_STATE;
typedef struct {
    UINT32 KeyShiftState;
    EFI_KEY_TOGGLE_STATE KeyToggleState;
} EFI_KEY_STATE;

typedef struct {
    EFI_INPUT_KEY Key;
    EFI_KEY_STATE KeyState;
} EFI_KEY_DATA;

/* KeyShiftState bits */
#define EFI_SHIFT_STATE_VALID 0x80000000
#define EFI_RIGHT_SHIFT_PRESSED 0x00000001
#define EFI_LEFT_SHIFT_PRESSED 0x00000002
#define EFI_RIGHT_CONTROL_PRESSED 0x00000004
#define EFI_LEFT_CONTROL_PRESSED 0x00000008
/* KeyToggleState bits */
#define EFI_TOGGLE_STATE_VALID 0x80

typedef EFI_STATUS(EFIAPI *EFI_KEY_NOTIFY_FUNCTION)(EFI_KEY_DATA *KeyData);

typedef struct EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL;
struct EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL {
    EFI_STATUS(EFIAPI *Reset)(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *This, BOOLEAN ExtendedVerification);
    EFI_STATUS(EFIAPI *ReadKeyStrokeEx)(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *This, EFI_KEY_DATA *KeyData);
    EFI_EVENT WaitForKeyEx;
    EFI_STATUS(EFIAPI *SetState)(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *This, EFI_KEY_TOGGLE_STATE *KeyToggleState);
    EFI_STATUS(EFIAPI *RegisterKeyNotify)(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *This, EFI_KEY_DATA *KeyData,
                                          EFI_KEY_NOTIFY_FUNCTION KeyNotificationFunction, VOID **NotifyHandle);
    EFI_STATUS(EFIAPI *UnregisterKeyNotify)(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *This, VOID *NotificationHandle);
};

/* Protocol handling */
typedef enum {
    EFI_NATIVE_INTERFACE
} EFI_INTERFACE_TYPE;

typedef enum {
    AllHandles,
    ByRegisterNotify,
    ByProtocol
} EFI_LOCATE_SEARCH_TYPE;

#define EFI_OPEN_PROTOCOL_BY_HANDLE_PROTOCOL 0x00000001
#define EFI_OPEN_PROTOCOL_GET_PROTOCOL 0x00000002
#define EFI_OPEN_PROTOCOL_TEST_PROTOCOL 0x00000004
#define EFI_OPEN_PROTOCOL_BY_CHILD_CONTROLLER 0x00000008
#define EFI_OPEN_PROTOCOL_BY_DRIVER 0x00000010
#define EFI_OPEN_PROTOCOL_EXCLUSIVE 0x00000020

typedef struct {
    EFI_HANDLE AgentHandle;
    EFI_HANDLE ControllerHandle;
    UINT32 Attributes;
    UINT32 OpenCount;
} EFI_OPEN_PROTOCOL_INFORMATION_ENTRY;

typedef struct {
    EFI_GUID VendorGuid;
    VOID *VendorTable;
} EFI_CONFIGURATION_TABLE;

typedef enum {
    EfiResetCold,
    EfiResetWarm,
    EfiResetShutdown,
    EfiResetPlatformSpecific
} EFI_RESET_TYPE;

typedef struct {
    UINT64 Length;
    union {
        EFI_PHYSICAL_ADDRESS DataBlock;
        EFI_PHYSICAL_ADDRESS ContinuationPointer;
    } Union;
} EFI_CAPSULE_BLOCK_DESCRIPTOR;

typedef struct {
    EFI_GUID CapsuleGuid;
    UINT32 HeaderSize;
    UINT32 Flags;
    UINT32 CapsuleImageSize;
} EFI_CAPSULE_HEADER;

typedef VOID(EFIAPI *EFI_EVENT_NOTIFY)(EFI_EVENT Event, VOID *Context);

/* Event types (7.1) */
#define EVT_TIMER 0x80000000
#define EVT_RUNTIME 0x40000000
#define EVT_NOTIFY_WAIT 0x00000100
#define EVT_NOTIFY_SIGNAL 0x00000200
#define EVT_SIGNAL_EXIT_BOOT_SERVICES 0x00000201
#define EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE 0x60000202

typedef enum {
    TimerCancel,
    TimerPeriodic,
    TimerRelative
} EFI_TIMER_DELAY;

/* Event groups (7.1, CreateEventEx) */
#define EFI_EVENT_GROUP_EXIT_BOOT_SERVICES \
    { 0x27abf055, 0xb1b8, 0x4c26, { 0x80, 0x48, 0x74, 0x8f, 0x37, 0xba, 0xa2, 0xdf } }
#define EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES \
    { 0x8be0e274, 0x3970, 0x4b44, { 0x80, 0xc5, 0x1a, 0xb9, 0x50, 0x2f, 0x3b, 0xfc } }
#define EFI_EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE \
    { 0x13fa7698, 0xc831, 0x49c7, { 0x87, 0xea, 0x8f, 0x43, 0xfc, 0xc2, 0x51, 0x96 } }
#define EFI_EVENT_GROUP_MEMORY_MAP_CHANGE \
    { 0x78bee926, 0x692f, 0x48fd, { 0x9e, 0xdb, 0x01, 0x42, 0x2e, 0xf0, 0xd7, 0xab } }
#define EFI_EVENT_GROUP_READY_TO_BOOT \
    { 0x7ce88fb3, 0x4bd7, 0x4679, { 0x87, 0xa8, 0xa8, 0xd8, 0xde, 0xe5, 0x0d, 0x2b } }

/* Variable attributes (8.2) */
#define EFI_VARIABLE_NON_VOLATILE 0x00000001
#define EFI_VARIABLE_BOOTSERVICE_ACCESS 0x00000002
#define EFI_VARIABLE_RUNTIME_ACCESS 0x00000004
#define EFI_VARIABLE_HARDWARE_ERROR_RECORD 0x00000008
#define EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS 0x00000020
#define EFI_VARIABLE_APPEND_WRITE 0x00000040

/* Runtime services (8), 14 members after the header, in spec order */
typedef struct {
    EFI_TABLE_HEADER Hdr;
    /* Time */
    EFI_STATUS(EFIAPI *GetTime)(EFI_TIME *Time, EFI_TIME_CAPABILITIES *Capabilities);
    EFI_STATUS(EFIAPI *SetTime)(EFI_TIME *Time);
    EFI_STATUS(EFIAPI *GetWakeupTime)(BOOLEAN *Enabled, BOOLEAN *Pending, EFI_TIME *Time);
    EFI_STATUS(EFIAPI *SetWakeupTime)(BOOLEAN Enable, EFI_TIME *Time);
    /* Virtual memory */
    EFI_STATUS(EFIAPI *SetVirtualAddressMap)(UINTN MemoryMapSize, UINTN DescriptorSize,
                                             UINT32 DescriptorVersion,
                                             EFI_MEMORY_DESCRIPTOR *VirtualMap);
    EFI_STATUS(EFIAPI *ConvertPointer)(UINTN DebugDisposition, VOID **Address);
    /* Variables */
    EFI_STATUS(EFIAPI *GetVariable)(CHAR16 *VariableName, EFI_GUID *VendorGuid,
                                    UINT32 *Attributes, UINTN *DataSize, VOID *Data);
    EFI_STATUS(EFIAPI *GetNextVariableName)(UINTN *VariableNameSize, CHAR16 *VariableName,
                                            EFI_GUID *VendorGuid);
    EFI_STATUS(EFIAPI *SetVariable)(CHAR16 *VariableName, EFI_GUID *VendorGuid,
                                    UINT32 Attributes, UINTN DataSize, VOID *Data);
    /* Miscellaneous */
    EFI_STATUS(EFIAPI *GetNextHighMonotonicCount)(UINT32 *HighCount);
    VOID(EFIAPI *ResetSystem)(EFI_RESET_TYPE ResetType, EFI_STATUS ResetStatus, UINTN DataSize,
                              VOID *ResetData);
    /* UEFI 2.0 capsules */
    EFI_STATUS(EFIAPI *UpdateCapsule)(EFI_CAPSULE_HEADER **CapsuleHeaderArray,
                                      UINTN CapsuleCount,
                                      EFI_PHYSICAL_ADDRESS ScatterGatherList);
    EFI_STATUS(EFIAPI *QueryCapsuleCapabilities)(EFI_CAPSULE_HEADER **CapsuleHeaderArray,
                                                 UINTN CapsuleCount, UINT64 *MaximumCapsuleSize,
                                                 EFI_RESET_TYPE *ResetType);
    /* UEFI 2.0 variable information */
    EFI_STATUS(EFIAPI *QueryVariableInfo)(UINT32 Attributes,
                                          UINT64 *MaximumVariableStorageSize,
                                          UINT64 *RemainingVariableStorageSize,
                                          UINT64 *MaximumVariableSize);
} EFI_RUNTIME_SERVICES;

/* Boot services (7), 44 members after the header, in spec order */
typedef struct {
    EFI_TABLE_HEADER Hdr;
    /* Task priority (1-2) */
    EFI_TPL(EFIAPI *RaiseTPL)(EFI_TPL NewTpl);
    VOID(EFIAPI *RestoreTPL)(EFI_TPL OldTpl);
    /* Memory (3-7) */
    EFI_STATUS(EFIAPI *AllocatePages)(EFI_ALLOCATE_TYPE Type, EFI_MEMORY_TYPE MemoryType,
                                      UINTN Pages, EFI_PHYSICAL_ADDRESS *Memory);
    EFI_STATUS(EFIAPI *FreePages)(EFI_PHYSICAL_ADDRESS Memory, UINTN Pages);
    EFI_STATUS(EFIAPI *GetMemoryMap)(UINTN *MemoryMapSize, EFI_MEMORY_DESCRIPTOR *MemoryMap,
                                     UINTN *MapKey, UINTN *DescriptorSize,
                                     UINT32 *DescriptorVersion);
    EFI_STATUS(EFIAPI *AllocatePool)(EFI_MEMORY_TYPE PoolType, UINTN Size, VOID **Buffer);
    EFI_STATUS(EFIAPI *FreePool)(VOID *Buffer);
    /* Events and timers (8-13) */
    EFI_STATUS(EFIAPI *CreateEvent)(UINT32 Type, EFI_TPL NotifyTpl, EFI_EVENT_NOTIFY NotifyFunction,
                                    VOID *NotifyContext, EFI_EVENT *Event);
    EFI_STATUS(EFIAPI *SetTimer)(EFI_EVENT Event, EFI_TIMER_DELAY Type, UINT64 TriggerTime);
    EFI_STATUS(EFIAPI *WaitForEvent)(UINTN NumberOfEvents, EFI_EVENT *Event, UINTN *Index);
    EFI_STATUS(EFIAPI *SignalEvent)(EFI_EVENT Event);
    EFI_STATUS(EFIAPI *CloseEvent)(EFI_EVENT Event);
    EFI_STATUS(EFIAPI *CheckEvent)(EFI_EVENT Event);
    /* Protocol handlers (14-22) */
    EFI_STATUS(EFIAPI *InstallProtocolInterface)(EFI_HANDLE *Handle, EFI_GUID *Protocol,
                                                 EFI_INTERFACE_TYPE InterfaceType,
                                                 VOID *Interface);
    EFI_STATUS(EFIAPI *ReinstallProtocolInterface)(EFI_HANDLE Handle, EFI_GUID *Protocol,
                                                   VOID *OldInterface, VOID *NewInterface);
    EFI_STATUS(EFIAPI *UninstallProtocolInterface)(EFI_HANDLE Handle, EFI_GUID *Protocol,
                                                   VOID *Interface);
    EFI_STATUS(EFIAPI *HandleProtocol)(EFI_HANDLE Handle, EFI_GUID *Protocol, VOID **Interface);
    VOID *Reserved;
    EFI_STATUS(EFIAPI *RegisterProtocolNotify)(EFI_GUID *Protocol, EFI_EVENT Event,
                                               VOID **Registration);
    EFI_STATUS(EFIAPI *LocateHandle)(EFI_LOCATE_SEARCH_TYPE SearchType, EFI_GUID *Protocol,
                                     VOID *SearchKey, UINTN *BufferSize, EFI_HANDLE *Buffer);
    EFI_STATUS(EFIAPI *LocateDevicePath)(EFI_GUID *Protocol,
                                         EFI_DEVICE_PATH_PROTOCOL **DevicePath,
                                         EFI_HANDLE *Device);
    EFI_STATUS(EFIAPI *InstallConfigurationTable)(EFI_GUID *Guid, VOID *Table);
    /* Image services (23-27) */
    EFI_STATUS(EFIAPI *LoadImage)(BOOLEAN BootPolicy, EFI_HANDLE ParentImageHandle,
                                  EFI_DEVICE_PATH_PROTOCOL *DevicePath, VOID *SourceBuffer,
                                  UINTN SourceSize, EFI_HANDLE *ImageHandle);
    EFI_STATUS(EFIAPI *StartImage)(EFI_HANDLE ImageHandle, UINTN *ExitDataSize,
                                   CHAR16 **ExitData);
    EFI_STATUS(EFIAPI *Exit)(EFI_HANDLE ImageHandle, EFI_STATUS ExitStatus, UINTN ExitDataSize,
                             CHAR16 *ExitData);
    EFI_STATUS(EFIAPI *UnloadImage)(EFI_HANDLE ImageHandle);
    EFI_STATUS(EFIAPI *ExitBootServices)(EFI_HANDLE ImageHandle, UINTN MapKey);
    /* Miscellaneous (28-30) */
    EFI_STATUS(EFIAPI *GetNextMonotonicCount)(UINT64 *Count);
    EFI_STATUS(EFIAPI *Stall)(UINTN Microseconds);
    EFI_STATUS(EFIAPI *SetWatchdogTimer)(UINTN Timeout, UINT64 WatchdogCode, UINTN DataSize,
                                         CHAR16 *WatchdogData);
    /* Driver support (31-32) */
    EFI_STATUS(EFIAPI *ConnectController)(EFI_HANDLE ControllerHandle,
                                          EFI_HANDLE *DriverImageHandle,
                                          EFI_DEVICE_PATH_PROTOCOL *RemainingDevicePath,
                                          BOOLEAN Recursive);
    EFI_STATUS(EFIAPI *DisconnectController)(EFI_HANDLE ControllerHandle,
                                             EFI_HANDLE DriverImageHandle,
                                             EFI_HANDLE ChildHandle);
    /* Open and close protocol (33-35) */
    EFI_STATUS(EFIAPI *OpenProtocol)(EFI_HANDLE Handle, EFI_GUID *Protocol, VOID **Interface,
                                     EFI_HANDLE AgentHandle, EFI_HANDLE ControllerHandle,
                                     UINT32 Attributes);
    EFI_STATUS(EFIAPI *CloseProtocol)(EFI_HANDLE Handle, EFI_GUID *Protocol,
                                      EFI_HANDLE AgentHandle, EFI_HANDLE ControllerHandle);
    EFI_STATUS(EFIAPI *OpenProtocolInformation)(EFI_HANDLE Handle, EFI_GUID *Protocol,
                                                EFI_OPEN_PROTOCOL_INFORMATION_ENTRY **EntryBuffer,
                                                UINTN *EntryCount);
    /* Library (36-40) */
    EFI_STATUS(EFIAPI *ProtocolsPerHandle)(EFI_HANDLE Handle, EFI_GUID ***ProtocolBuffer,
                                           UINTN *ProtocolBufferCount);
    EFI_STATUS(EFIAPI *LocateHandleBuffer)(EFI_LOCATE_SEARCH_TYPE SearchType, EFI_GUID *Protocol,
                                           VOID *SearchKey, UINTN *NoHandles,
                                           EFI_HANDLE **Buffer);
    EFI_STATUS(EFIAPI *LocateProtocol)(EFI_GUID *Protocol, VOID *Registration, VOID **Interface);
    EFI_STATUS(EFIAPI *InstallMultipleProtocolInterfaces)(EFI_HANDLE *Handle, ...);
    EFI_STATUS(EFIAPI *UninstallMultipleProtocolInterfaces)(EFI_HANDLE Handle, ...);
    /* 32-bit CRC (41) */
    EFI_STATUS(EFIAPI *CalculateCrc32)(VOID *Data, UINTN DataSize, UINT32 *Crc32);
    /* Miscellaneous (42-44) */
    VOID(EFIAPI *CopyMem)(VOID *Destination, VOID *Source, UINTN Length);
    VOID(EFIAPI *SetMem)(VOID *Buffer, UINTN Size, UINT8 Value);
    EFI_STATUS(EFIAPI *CreateEventEx)(UINT32 Type, EFI_TPL NotifyTpl,
                                      EFI_EVENT_NOTIFY NotifyFunction, const VOID *NotifyContext,
                                      const EFI_GUID *EventGroup, EFI_EVENT *Event);
} EFI_BOOT_SERVICES;

/* System table (4.3) */
typedef struct {
    EFI_TABLE_HEADER Hdr;
    CHAR16 *FirmwareVendor;
    UINT32 FirmwareRevision;
    EFI_HANDLE ConsoleInHandle;
    EFI_SIMPLE_TEXT_INPUT_PROTOCOL *ConIn;
    EFI_HANDLE ConsoleOutHandle;
    EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *ConOut;
    EFI_HANDLE StandardErrorHandle;
    EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL *StdErr;
    EFI_RUNTIME_SERVICES *RuntimeServices;
    EFI_BOOT_SERVICES *BootServices;
    UINTN NumberOfTableEntries;
    EFI_CONFIGURATION_TABLE *ConfigurationTable;
} EFI_SYSTEM_TABLE;

/* Loaded image protocol (9.1) */
#define EFI_LOADED_IMAGE_PROTOCOL_GUID \
    { 0x5b1b31a1, 0x9562, 0x11d2, { 0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }
#define EFI_LOADED_IMAGE_PROTOCOL_REVISION 0x1000

typedef struct {
    UINT32 Revision;
    EFI_HANDLE ParentHandle;
    EFI_SYSTEM_TABLE *SystemTable;
    EFI_HANDLE DeviceHandle;
    EFI_DEVICE_PATH_PROTOCOL *FilePath;
    VOID *Reserved;
    UINT32 LoadOptionsSize;
    VOID *LoadOptions;
    VOID *ImageBase;
    UINT64 ImageSize;
    EFI_MEMORY_TYPE ImageCodeType;
    EFI_MEMORY_TYPE ImageDataType;
    EFI_STATUS(EFIAPI *Unload)(EFI_HANDLE ImageHandle);
} EFI_LOADED_IMAGE_PROTOCOL;

#define EFI_DEVICE_PATH_PROTOCOL_GUID \
    { 0x09576e91, 0x6d3f, 0x11d2, { 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }
#define EFI_LOADED_IMAGE_DEVICE_PATH_PROTOCOL_GUID \
    { 0xbc62157e, 0x3e33, 0x4fec, { 0x99, 0x20, 0x2d, 0x3b, 0x36, 0xd7, 0x50, 0xdf } }
#define EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL_GUID \
    { 0x387477c2, 0x69c7, 0x11d2, { 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }

/* The vendor media device path under which Linux (drivers/firmware/efi/libstub)
   looks for a LOAD_FILE2 handle that gives its initrd. */
#define LINUX_EFI_INITRD_MEDIA_GUID \
    { 0x5568e427, 0x68fc, 0x4f3d, { 0xac, 0x74, 0xca, 0x55, 0x52, 0x31, 0xcc, 0x68 } }

/* Load file 2 protocol (13.2) */
#define EFI_LOAD_FILE2_PROTOCOL_GUID \
    { 0x4006c0c1, 0xfcb3, 0x403e, { 0x99, 0x6d, 0x4a, 0x6c, 0x87, 0x24, 0xe0, 0x6d } }

typedef struct EFI_LOAD_FILE2_PROTOCOL EFI_LOAD_FILE2_PROTOCOL;
struct EFI_LOAD_FILE2_PROTOCOL {
    EFI_STATUS(EFIAPI *LoadFile)(EFI_LOAD_FILE2_PROTOCOL *This,
                                 EFI_DEVICE_PATH_PROTOCOL *FilePath, BOOLEAN BootPolicy,
                                 UINTN *BufferSize, VOID *Buffer);
};

/* Simple file system protocol (13.4) and file protocol (13.5) */
#define EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID \
    { 0x964e5b22, 0x6459, 0x11d2, { 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }
#define EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_REVISION 0x00010000
#define EFI_FILE_PROTOCOL_REVISION 0x00010000
#define EFI_FILE_PROTOCOL_REVISION2 0x00020000

#define EFI_FILE_MODE_READ 0x0000000000000001ULL
#define EFI_FILE_MODE_WRITE 0x0000000000000002ULL
#define EFI_FILE_MODE_CREATE 0x8000000000000000ULL

#define EFI_FILE_READ_ONLY 0x0000000000000001ULL
#define EFI_FILE_HIDDEN 0x0000000000000002ULL
#define EFI_FILE_SYSTEM 0x0000000000000004ULL
#define EFI_FILE_RESERVED 0x0000000000000008ULL
#define EFI_FILE_DIRECTORY 0x0000000000000010ULL
#define EFI_FILE_ARCHIVE 0x0000000000000020ULL
#define EFI_FILE_VALID_ATTR 0x0000000000000037ULL

/* A warning (no top bit): Delete closed the handle but did not delete the file. */
#define EFI_WARN_DELETE_FAILURE ((UINTN)2)

#define EFI_FILE_INFO_ID \
    { 0x09576e92, 0x6d3f, 0x11d2, { 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }
#define EFI_FILE_SYSTEM_INFO_ID \
    { 0x09576e93, 0x6d3f, 0x11d2, { 0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b } }
#define EFI_FILE_SYSTEM_VOLUME_LABEL_ID \
    { 0xdb47d7d3, 0xfe81, 0x11d3, { 0x9a, 0x35, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d } }

typedef struct {
    UINT64 Size; /* of the whole structure, FileName's terminator included */
    UINT64 FileSize;
    UINT64 PhysicalSize;
    EFI_TIME CreateTime;
    EFI_TIME LastAccessTime;
    EFI_TIME ModificationTime;
    UINT64 Attribute;
    CHAR16 FileName[1];
} EFI_FILE_INFO;
#define SIZE_OF_EFI_FILE_INFO __builtin_offsetof(EFI_FILE_INFO, FileName) /* 80 */

typedef struct {
    UINT64 Size;
    BOOLEAN ReadOnly;
    UINT64 VolumeSize;
    UINT64 FreeSpace;
    UINT32 BlockSize;
    CHAR16 VolumeLabel[1];
} EFI_FILE_SYSTEM_INFO;
#define SIZE_OF_EFI_FILE_SYSTEM_INFO __builtin_offsetof(EFI_FILE_SYSTEM_INFO, VolumeLabel) /* 36 */

typedef struct {
    EFI_EVENT Event;
    EFI_STATUS Status;
    UINTN BufferSize;
    VOID *Buffer;
} EFI_FILE_IO_TOKEN;

typedef struct EFI_FILE_PROTOCOL EFI_FILE_PROTOCOL;
struct EFI_FILE_PROTOCOL {
    UINT64 Revision;
    EFI_STATUS(EFIAPI *Open)(EFI_FILE_PROTOCOL *This, EFI_FILE_PROTOCOL **NewHandle,
                             CHAR16 *FileName, UINT64 OpenMode, UINT64 Attributes);
    EFI_STATUS(EFIAPI *Close)(EFI_FILE_PROTOCOL *This);
    EFI_STATUS(EFIAPI *Delete)(EFI_FILE_PROTOCOL *This);
    EFI_STATUS(EFIAPI *Read)(EFI_FILE_PROTOCOL *This, UINTN *BufferSize, VOID *Buffer);
    EFI_STATUS(EFIAPI *Write)(EFI_FILE_PROTOCOL *This, UINTN *BufferSize, VOID *Buffer);
    EFI_STATUS(EFIAPI *GetPosition)(EFI_FILE_PROTOCOL *This, UINT64 *Position);
    EFI_STATUS(EFIAPI *SetPosition)(EFI_FILE_PROTOCOL *This, UINT64 Position);
    EFI_STATUS(EFIAPI *GetInfo)(EFI_FILE_PROTOCOL *This, EFI_GUID *InformationType,
                                UINTN *BufferSize, VOID *Buffer);
    EFI_STATUS(EFIAPI *SetInfo)(EFI_FILE_PROTOCOL *This, EFI_GUID *InformationType,
                                UINTN BufferSize, VOID *Buffer);
    EFI_STATUS(EFIAPI *Flush)(EFI_FILE_PROTOCOL *This);
    /* Revision 2 (0x00020000) */
    EFI_STATUS(EFIAPI *OpenEx)(EFI_FILE_PROTOCOL *This, EFI_FILE_PROTOCOL **NewHandle,
                               CHAR16 *FileName, UINT64 OpenMode, UINT64 Attributes,
                               EFI_FILE_IO_TOKEN *Token);
    EFI_STATUS(EFIAPI *ReadEx)(EFI_FILE_PROTOCOL *This, EFI_FILE_IO_TOKEN *Token);
    EFI_STATUS(EFIAPI *WriteEx)(EFI_FILE_PROTOCOL *This, EFI_FILE_IO_TOKEN *Token);
    EFI_STATUS(EFIAPI *FlushEx)(EFI_FILE_PROTOCOL *This, EFI_FILE_IO_TOKEN *Token);
};

typedef struct EFI_SIMPLE_FILE_SYSTEM_PROTOCOL EFI_SIMPLE_FILE_SYSTEM_PROTOCOL;
struct EFI_SIMPLE_FILE_SYSTEM_PROTOCOL {
    UINT64 Revision;
    EFI_STATUS(EFIAPI *OpenVolume)(EFI_SIMPLE_FILE_SYSTEM_PROTOCOL *This, EFI_FILE_PROTOCOL **Root);
};

/* Unicode collation (19.1): UNICODE_COLLATION2 (RFC 4646 languages) and the older
   UNICODE_COLLATION (ISO 639-2) have the same interface. */
#define EFI_UNICODE_COLLATION_PROTOCOL2_GUID \
    { 0xa4c751fc, 0x23ae, 0x4c3e, { 0x92, 0xe9, 0x49, 0x64, 0xcf, 0x63, 0xf3, 0x49 } }
#define EFI_UNICODE_COLLATION_PROTOCOL_GUID \
    { 0x1d85cd7f, 0xf43d, 0x11d2, { 0x9a, 0x0c, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d } }

typedef struct EFI_UNICODE_COLLATION_PROTOCOL EFI_UNICODE_COLLATION_PROTOCOL;
struct EFI_UNICODE_COLLATION_PROTOCOL {
    INTN(EFIAPI *StriColl)(EFI_UNICODE_COLLATION_PROTOCOL *This, CHAR16 *Str1, CHAR16 *Str2);
    BOOLEAN(EFIAPI *MetaiMatch)(EFI_UNICODE_COLLATION_PROTOCOL *This, CHAR16 *String, CHAR16 *Pattern);
    VOID(EFIAPI *StrLwr)(EFI_UNICODE_COLLATION_PROTOCOL *This, CHAR16 *Str);
    VOID(EFIAPI *StrUpr)(EFI_UNICODE_COLLATION_PROTOCOL *This, CHAR16 *Str);
    VOID(EFIAPI *FatToStr)(EFI_UNICODE_COLLATION_PROTOCOL *This, UINTN FatSize, CHAR8 *Fat, CHAR16 *String);
    BOOLEAN(EFIAPI *StrToFat)(EFI_UNICODE_COLLATION_PROTOCOL *This, CHAR16 *String, UINTN FatSize, CHAR8 *Fat);
    CHAR8 *SupportedLanguages;
};

/* HII: package lists and string packages, the database (34.8) and string (34.2) protocols */
#define EFI_HII_DATABASE_PROTOCOL_GUID \
    { 0xef9fc172, 0xa1b2, 0x4693, { 0xb3, 0x27, 0x6d, 0x32, 0xfc, 0x41, 0x60, 0x42 } }
#define EFI_HII_STRING_PROTOCOL_GUID \
    { 0x0fd96974, 0x23aa, 0x4cdc, { 0xb9, 0xcb, 0x98, 0xd1, 0x77, 0x50, 0x32, 0x2a } }
#define EFI_HII_CONFIG_ROUTING_PROTOCOL_GUID \
    { 0x587e72d7, 0xcc50, 0x4f79, { 0x82, 0x09, 0xca, 0x29, 0x1f, 0xc1, 0xa1, 0x0f } }

typedef VOID *EFI_HII_HANDLE;
typedef UINT16 EFI_STRING_ID;

/* A package list: this header, its packages, and a package of type EFI_HII_PACKAGE_END. */
typedef struct {
    EFI_GUID PackageListGuid;
    UINT32 PackageLength; /* of the whole list, this header included */
} EFI_HII_PACKAGE_LIST_HEADER;

typedef struct {
    UINT32 Length : 24; /* of the whole package, this header included */
    UINT32 Type : 8;
} EFI_HII_PACKAGE_HEADER;

/* EFI_HII_PACKAGE_HEADER.Type; also ListPackageLists' PackageType */
#define EFI_HII_PACKAGE_TYPE_ALL 0x00
#define EFI_HII_PACKAGE_TYPE_GUID 0x01
#define EFI_HII_PACKAGE_STRINGS 0x04
#define EFI_HII_PACKAGE_END 0xDF

/* A string package: this header, Language's NUL-terminated ASCII tag, then its
   string blocks from StringInfoOffset on. EDK2 packs it: Language is at 46. */
typedef struct {
    EFI_HII_PACKAGE_HEADER Header;
    UINT32 HdrSize; /* up to the string blocks: Language and its NUL included */
    UINT32 StringInfoOffset;
    CHAR16 LanguageWindow[16];
    EFI_STRING_ID LanguageName; /* the string that names the language */
    CHAR8 Language[1];
} EFI_HII_STRING_PACKAGE_HDR;

/* String block types: the first byte of each block */
#define EFI_HII_SIBT_END 0x00
#define EFI_HII_SIBT_STRING_UCS2 0x14
#define EFI_HII_SIBT_STRINGS_UCS2 0x16
#define EFI_HII_SIBT_DUPLICATE 0x20
#define EFI_HII_SIBT_SKIP1 0x22

typedef struct EFI_HII_DATABASE_PROTOCOL EFI_HII_DATABASE_PROTOCOL;
struct EFI_HII_DATABASE_PROTOCOL {
    EFI_STATUS(EFIAPI *NewPackageList)(EFI_HII_DATABASE_PROTOCOL *This, VOID *PackageList,
                                       EFI_HANDLE DriverHandle, EFI_HII_HANDLE *Handle);
    EFI_STATUS(EFIAPI *RemovePackageList)(EFI_HII_DATABASE_PROTOCOL *This, EFI_HII_HANDLE Handle);
    EFI_STATUS(EFIAPI *UpdatePackageList)(EFI_HII_DATABASE_PROTOCOL *This, EFI_HII_HANDLE Handle,
                                          VOID *PackageList);
    EFI_STATUS(EFIAPI *ListPackageLists)(EFI_HII_DATABASE_PROTOCOL *This, UINT8 PackageType,
                                         EFI_GUID *PackageGuid, UINTN *HandleBufferLength,
                                         EFI_HII_HANDLE *Handle);
    EFI_STATUS(EFIAPI *ExportPackageLists)(EFI_HII_DATABASE_PROTOCOL *This, EFI_HII_HANDLE Handle,
                                           UINTN *BufferSize, VOID *Buffer);
    /* Not used by the guests: only their places. */
    VOID *RegisterPackageNotify;
    VOID *UnregisterPackageNotify;
    VOID *FindKeyboardLayouts;
    VOID *GetKeyboardLayout;
    VOID *SetKeyboardLayout;
    EFI_STATUS(EFIAPI *GetPackageListHandle)(EFI_HII_DATABASE_PROTOCOL *This, EFI_HII_HANDLE PackageListHandle,
                                             EFI_HANDLE *DriverHandle);
};

typedef struct EFI_HII_STRING_PROTOCOL EFI_HII_STRING_PROTOCOL;
struct EFI_HII_STRING_PROTOCOL {
    EFI_STATUS(EFIAPI *NewString)(EFI_HII_STRING_PROTOCOL *This, EFI_HII_HANDLE PackageList,
                                  EFI_STRING_ID *StringId, CHAR8 *Language, CHAR16 *LanguageName,
                                  CHAR16 *String, VOID *StringFontInfo);
    EFI_STATUS(EFIAPI *GetString)(EFI_HII_STRING_PROTOCOL *This, CHAR8 *Language, EFI_HII_HANDLE PackageList,
                                  EFI_STRING_ID StringId, CHAR16 *String, UINTN *StringSize,
                                  VOID **StringFontInfo);
    EFI_STATUS(EFIAPI *SetString)(EFI_HII_STRING_PROTOCOL *This, EFI_HII_HANDLE PackageList,
                                  EFI_STRING_ID StringId, CHAR8 *Language, CHAR16 *String,
                                  VOID *StringFontInfo);
    EFI_STATUS(EFIAPI *GetLanguages)(EFI_HII_STRING_PROTOCOL *This, EFI_HII_HANDLE PackageList,
                                     CHAR8 *Languages, UINTN *LanguagesSize);
    VOID *GetSecondaryLanguages; /* not used by the guests */
};

/* RNG protocol (37.5) */
#define EFI_RNG_PROTOCOL_GUID \
    { 0x3152bca5, 0xeade, 0x433d, { 0x86, 0x2e, 0xc0, 0x1c, 0xdc, 0x29, 0x1f, 0x44 } }
#define EFI_RNG_ALGORITHM_RAW \
    { 0xe43176d7, 0xb6e8, 0x4827, { 0xb7, 0x84, 0x7f, 0xfd, 0xc4, 0xb6, 0x85, 0x61 } }

typedef EFI_GUID EFI_RNG_ALGORITHM;
typedef struct EFI_RNG_PROTOCOL EFI_RNG_PROTOCOL;
struct EFI_RNG_PROTOCOL {
    EFI_STATUS(EFIAPI *GetInfo)(EFI_RNG_PROTOCOL *This, UINTN *RNGAlgorithmListSize,
                                EFI_RNG_ALGORITHM *RNGAlgorithmList);
    EFI_STATUS(EFIAPI *GetRNG)(EFI_RNG_PROTOCOL *This, EFI_RNG_ALGORITHM *RNGAlgorithm,
                               UINTN RNGValueLength, UINT8 *RNGValue);
};

/* Compile-time layout checks, for 64-bit targets and for IA32. UINT64 members are
   8-byte aligned on IA32 too (the i686-windows ABI, as in EDK2). */
#define EFI_STATIC_ASSERT(c, m) typedef char efi_static_assert_##m[(c) ? 1 : -1]
#define EFI_PTR sizeof(VOID *)
EFI_STATIC_ASSERT(sizeof(UINTN) == EFI_PTR && sizeof(EFI_STATUS) == EFI_PTR, uintn);
EFI_STATIC_ASSERT(sizeof(EFI_GUID) == 16, guid);
EFI_STATIC_ASSERT(sizeof(EFI_TABLE_HEADER) == 24, table_header);
EFI_STATIC_ASSERT(sizeof(EFI_BOOT_SERVICES) == 24 + 44 * EFI_PTR, boot_services);
EFI_STATIC_ASSERT(sizeof(EFI_RUNTIME_SERVICES) == 24 + 14 * EFI_PTR, runtime_services);
EFI_STATIC_ASSERT(sizeof(EFI_SYSTEM_TABLE) == 24 + 12 * EFI_PTR, system_table); /* 120 or 72 */
EFI_STATIC_ASSERT(sizeof(EFI_MEMORY_DESCRIPTOR) == 40, memory_descriptor);
EFI_STATIC_ASSERT(__builtin_offsetof(EFI_MEMORY_DESCRIPTOR, PhysicalStart) == 8, memory_descriptor_start);
EFI_STATIC_ASSERT(sizeof(EFI_TIME) == 16, time);
EFI_STATIC_ASSERT(__builtin_offsetof(EFI_LOADED_IMAGE_PROTOCOL, ImageSize) == (EFI_PTR == 8 ? 72 : 40),
                  loaded_image_image_size);
EFI_STATIC_ASSERT(sizeof(EFI_LOADED_IMAGE_PROTOCOL) == (EFI_PTR == 8 ? 96 : 64), loaded_image);
EFI_STATIC_ASSERT(sizeof(EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL) == 10 * EFI_PTR, text_output);
EFI_STATIC_ASSERT(sizeof(EFI_CONFIGURATION_TABLE) == 16 + EFI_PTR, configuration_table);
EFI_STATIC_ASSERT(SIZE_OF_EFI_FILE_INFO == 80, file_info);
EFI_STATIC_ASSERT(SIZE_OF_EFI_FILE_SYSTEM_INFO == 36, file_system_info);
EFI_STATIC_ASSERT(__builtin_offsetof(EFI_FILE_SYSTEM_INFO, VolumeSize) == 16, file_system_info_volume_size);
EFI_STATIC_ASSERT(__builtin_offsetof(EFI_FILE_PROTOCOL, Open) == 8, file_open);
EFI_STATIC_ASSERT(sizeof(EFI_FILE_PROTOCOL) == 8 + 14 * EFI_PTR, file_protocol); /* 120 or 64 */
EFI_STATIC_ASSERT(__builtin_offsetof(EFI_SIMPLE_FILE_SYSTEM_PROTOCOL, OpenVolume) == 8, simple_file_system);
EFI_STATIC_ASSERT(__builtin_offsetof(FILEPATH_DEVICE_PATH, PathName) == 4, filepath_node);
EFI_STATIC_ASSERT(sizeof(EFI_DEVICE_PATH_UTILITIES_PROTOCOL) == 8 * EFI_PTR, device_path_utilities);
EFI_STATIC_ASSERT(sizeof(EFI_DEVICE_PATH_TO_TEXT_PROTOCOL) == 2 * EFI_PTR, device_path_to_text);
EFI_STATIC_ASSERT(sizeof(EFI_DEVICE_PATH_FROM_TEXT_PROTOCOL) == 2 * EFI_PTR, device_path_from_text);
EFI_STATIC_ASSERT(sizeof(EFI_KEY_DATA) == 12 && __builtin_offsetof(EFI_KEY_DATA, KeyState) == 4, key_data);
EFI_STATIC_ASSERT(__builtin_offsetof(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL, WaitForKeyEx) == 2 * EFI_PTR,
                  text_input_ex_wait);
EFI_STATIC_ASSERT(sizeof(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL) == 6 * EFI_PTR, text_input_ex);
EFI_STATIC_ASSERT(sizeof(EFI_UNICODE_COLLATION_PROTOCOL) == 7 * EFI_PTR, unicode_collation);
EFI_STATIC_ASSERT(sizeof(EFI_HII_PACKAGE_LIST_HEADER) == 20, hii_package_list_header);
EFI_STATIC_ASSERT(sizeof(EFI_HII_PACKAGE_HEADER) == 4, hii_package_header);
EFI_STATIC_ASSERT(__builtin_offsetof(EFI_HII_STRING_PACKAGE_HDR, LanguageName) == 44 &&
                  __builtin_offsetof(EFI_HII_STRING_PACKAGE_HDR, Language) == 46, hii_string_package);
EFI_STATIC_ASSERT(sizeof(EFI_HII_DATABASE_PROTOCOL) == 11 * EFI_PTR, hii_database);
EFI_STATIC_ASSERT(sizeof(EFI_HII_STRING_PROTOCOL) == 5 * EFI_PTR, hii_string);

#endif
