"""Device path nodes (UEFI 2.10 §10.3): their types and subtypes, and the layout of each node's data
after its header, as construct definitions.

Device path nodes are byte-packed (EDK2 declares them under #pragma pack(1)), so these are plain
Structs. The header, the End node's constants and the nodes efistub itself builds (ACPI, PCI,
hard drive) are in layouts/efi.py; this module names them again so that all node layouts are in
one place. A layout that ends in GreedyBytes takes the rest of the node (vendor data, a file name).
"""

from __future__ import annotations

from construct import Bytes, CString, GreedyBytes, GreedyRange, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .efi import (  # noqa: F401 - the node layouts and constants efistub builds, named here too
    ACPI_DP, DEVICE_PATH_ACPI, DEVICE_PATH_END, DEVICE_PATH_HARDWARE, DEVICE_PATH_MEDIA, END_ENTIRE,
    END_INSTANCE, GUID, HARDWARE_PCI, HARDWARE_VENDOR, MBR_TYPE_GPT, MEDIA_FILE_PATH, MEDIA_HARD_DRIVE,
    MEDIA_VENDOR, PNP0A03, SIGNATURE_TYPE_GUID, AcpiNode, DevicePathHeader, HardDriveNode, PciNode,
)

# -- types ---------------------------------------------------------------------------------------
DEVICE_PATH_MESSAGING = 0x03
DEVICE_PATH_BBS = 0x05

# -- hardware (type 1) ---------------------------------------------------------------------------
HARDWARE_PCCARD = 0x02
HARDWARE_MEMORY_MAPPED = 0x03
HARDWARE_CONTROLLER = 0x05
HARDWARE_BMC = 0x06

PcCardNode = Struct("FunctionNumber" / Int8ul)
MemoryMappedNode = Struct("MemoryType" / Int32ul, "StartingAddress" / Int64ul, "EndingAddress" / Int64ul)
VendorNode = Struct("Guid" / GUID, "Data" / GreedyBytes)  # VenHw, VenMsg, VenMedia
ControllerNode = Struct("ControllerNumber" / Int32ul)
BmcNode = Struct("InterfaceType" / Int8ul, "BaseAddress" / Int64ul)

# -- ACPI (type 2) -------------------------------------------------------------------------------
ACPI_EXTENDED_DP = 0x02
ACPI_ADR_DP = 0x03
PNP_EISA_ID = 0x41D0  # the low 16 bits of an EISA ID whose letters are "PNP"
# HID, UID, CID, then the strings HIDSTR, UIDSTR and CIDSTR, each NUL-terminated (UEFI 2.10 §10.3.3)
AcpiExtendedNode = Struct("HID" / Int32ul, "UID" / Int32ul, "CID" / Int32ul, "Strings" / GreedyBytes)
AcpiAdrNode = Struct("ADR" / GreedyRange(Int32ul))  # one _ADR, then more for a display with several outputs

# -- messaging (type 3) --------------------------------------------------------------------------
MESSAGING_ATAPI = 0x01
MESSAGING_SCSI = 0x02
MESSAGING_FIBRE_CHANNEL = 0x03
MESSAGING_1394 = 0x04
MESSAGING_USB = 0x05
MESSAGING_I2O = 0x06
MESSAGING_INFINIBAND = 0x09
MESSAGING_VENDOR = 0x0A
MESSAGING_MAC_ADDRESS = 0x0B
MESSAGING_IPV4 = 0x0C
MESSAGING_IPV6 = 0x0D
MESSAGING_UART = 0x0E
MESSAGING_USB_CLASS = 0x0F
MESSAGING_USB_WWID = 0x10
MESSAGING_LOGICAL_UNIT = 0x11
MESSAGING_SATA = 0x12
MESSAGING_VLAN = 0x14
MESSAGING_FIBRE_CHANNEL_EX = 0x15
MESSAGING_NVME_NAMESPACE = 0x17
MESSAGING_URI = 0x18
MESSAGING_UFS = 0x19
MESSAGING_SD = 0x1A
MESSAGING_BLUETOOTH = 0x1B
MESSAGING_WIFI = 0x1C
MESSAGING_EMMC = 0x1D
MESSAGING_BLUETOOTH_LE = 0x1E
MESSAGING_DNS = 0x1F

AtapiNode = Struct("PrimarySecondary" / Int8ul, "SlaveMaster" / Int8ul, "Lun" / Int16ul)
ScsiNode = Struct("Pun" / Int16ul, "Lun" / Int16ul)
FibreChannelNode = Struct("Reserved" / Int32ul, "WWN" / Int64ul, "Lun" / Int64ul)
F1394Node = Struct("Reserved" / Int32ul, "Guid" / Int64ul)
UsbNode = Struct("ParentPortNumber" / Int8ul, "InterfaceNumber" / Int8ul)
I2ONode = Struct("Tid" / Int32ul)
InfinibandNode = Struct("ResourceFlags" / Int32ul, "PortGid" / GUID, "ServiceId" / Int64ul,
                        "TargetPortId" / Int64ul, "DeviceId" / Int64ul)
MAC_ADDRESS_SIZE = 32  # EFI_MAC_ADDRESS
MAC_ETHERNET_SIZE = 6  # the bytes shown for IfType 0 and 1 (Ethernet)
MacAddressNode = Struct("MacAddress" / Bytes(MAC_ADDRESS_SIZE), "IfType" / Int8ul)
IPV4_ADDRESS_SIZE, IPV6_ADDRESS_SIZE = 4, 16
# IPv4 and IPv6 nodes: the UEFI 2.0 forms end before GatewayIpAddress; later ones have the gateway too.
Ipv4ShortNode = Struct("LocalIpAddress" / Bytes(IPV4_ADDRESS_SIZE), "RemoteIpAddress" / Bytes(IPV4_ADDRESS_SIZE),
                       "LocalPort" / Int16ul, "RemotePort" / Int16ul, "Protocol" / Int16ul,
                       "StaticIpAddress" / Int8ul)
Ipv4Node = Struct(*Ipv4ShortNode.subcons, "GatewayIpAddress" / Bytes(IPV4_ADDRESS_SIZE),
                  "SubnetMask" / Bytes(IPV4_ADDRESS_SIZE))
Ipv6ShortNode = Struct("LocalIpAddress" / Bytes(IPV6_ADDRESS_SIZE), "RemoteIpAddress" / Bytes(IPV6_ADDRESS_SIZE),
                       "LocalPort" / Int16ul, "RemotePort" / Int16ul, "Protocol" / Int16ul,
                       "IpAddressOrigin" / Int8ul)
Ipv6Node = Struct(*Ipv6ShortNode.subcons, "PrefixLength" / Int8ul, "GatewayIpAddress" / Bytes(IPV6_ADDRESS_SIZE))
UartNode = Struct("Reserved" / Int32ul, "BaudRate" / Int64ul, "DataBits" / Int8ul, "Parity" / Int8ul,
                  "StopBits" / Int8ul)
UsbClassNode = Struct("VendorId" / Int16ul, "ProductId" / Int16ul, "DeviceClass" / Int8ul,
                      "DeviceSubClass" / Int8ul, "DeviceProtocol" / Int8ul)
UsbWwidNode = Struct("InterfaceNumber" / Int16ul, "VendorId" / Int16ul, "ProductId" / Int16ul,
                     "SerialNumber" / GreedyBytes)  # CHAR16[], not NUL-terminated
LogicalUnitNode = Struct("Lun" / Int8ul)
SataNode = Struct("HBAPortNumber" / Int16ul, "PortMultiplierPortNumber" / Int16ul, "Lun" / Int16ul)
SATA_NO_PORT_MULTIPLIER = 0xFFFF  # the HBA port is connected directly
VlanNode = Struct("VlanId" / Int16ul)
FibreChannelExNode = Struct("Reserved" / Int32ul, "WWN" / Bytes(8), "Lun" / Bytes(8))
NvmeNamespaceNode = Struct("NamespaceId" / Int32ul, "NamespaceUuid" / Bytes(8))
UriNode = Struct("Uri" / GreedyBytes)  # CHAR8[], not NUL-terminated
UfsNode = Struct("Pun" / Int8ul, "Lun" / Int8ul)
SdNode = Struct("SlotNumber" / Int8ul)
EmmcNode = SdNode
BLUETOOTH_ADDRESS_SIZE = 6
BluetoothNode = Struct("Address" / Bytes(BLUETOOTH_ADDRESS_SIZE))
WIFI_SSID_SIZE = 32
WifiNode = Struct("SSId" / Bytes(WIFI_SSID_SIZE))
BluetoothLeNode = Struct("Address" / Bytes(BLUETOOTH_ADDRESS_SIZE), "Type" / Int8ul)
IP_ADDRESS_SIZE = 16  # EFI_IP_ADDRESS: an IPv4 address is its first 4 bytes
DnsNode = Struct("IsIPv6" / Int8ul, "Addresses" / GreedyBytes)  # EFI_IP_ADDRESS[]

# A VenMsg node with the UART flow control GUID (guids.UART_DEVICE_PATH): UartFlowCtrl(...)
UART_FLOW_CONTROL_MASK = 0x3
UartFlowControlNode = Struct("Guid" / GUID, "FlowControlMap" / Int32ul)

# -- media (type 4) ------------------------------------------------------------------------------
MEDIA_CDROM = 0x02
MEDIA_PROTOCOL = 0x05
MEDIA_PIWG_FW_FILE = 0x06
MEDIA_PIWG_FW_VOLUME = 0x07
MEDIA_RELATIVE_OFFSET_RANGE = 0x08
MEDIA_RAM_DISK = 0x09
MBR_TYPE_PCAT = 0x01  # HardDriveNode.MBRType of an MBR partition
SIGNATURE_TYPE_MBR = 0x01  # HardDriveNode.SignatureType: a 32-bit MBR disk signature

CdromNode = Struct("BootEntry" / Int32ul, "PartitionStart" / Int64ul, "PartitionSize" / Int64ul)
FilePathNode = Struct("PathName" / GreedyBytes)  # CHAR16[], NUL-terminated
MediaProtocolNode = Struct("Protocol" / GUID)
FirmwareFileNode = Struct("FvFileName" / GUID)
FirmwareVolumeNode = Struct("FvName" / GUID)
RelativeOffsetRangeNode = Struct("Reserved" / Int32ul, "StartingOffset" / Int64ul, "EndingOffset" / Int64ul)
RamDiskNode = Struct("StartingAddr" / Int64ul, "EndingAddr" / Int64ul, "TypeGuid" / GUID, "Instance" / Int16ul)

# -- BIOS boot specification (type 5) ------------------------------------------------------------
BBS_BBS = 0x01
BBS_TYPE_FLOPPY, BBS_TYPE_HARD_DRIVE, BBS_TYPE_CDROM, BBS_TYPE_PCMCIA, BBS_TYPE_USB, BBS_TYPE_NETWORK = range(1, 7)
BbsNode = Struct("DeviceType" / Int16ul, "StatusFlag" / Int16ul, "String" / CString("ascii"))
