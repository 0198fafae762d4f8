"""Device path text (efistub.device_path_text) and the DEVICE_PATH_TO_TEXT / DEVICE_PATH_FROM_TEXT
protocols beyond what the guest checks (tests/guests/devtext.c, in test_guests.py): every form of the
table reads back to itself, nodes no form fits are written generically and read back, the texts
OVMF and AAVMF gave for real paths, and hostile text gives ValueError (the protocols: NULL) quickly."""

import random
import time

import pytest

from direct_calls import call, finished_run, put
from efistub import device_path
from efistub import device_path_text as dpt
from efistub.device_path import Node
from efistub.memory import ucs2
from efistub.protocols import device_path_from_text as from_text
from efistub.protocols import device_path_to_text as to_text

G = "6F0F8A1C-5B7E-4B1E-9A43-65666973747A"

# One text of every form that reads, in its canonical form (what node_text writes for the node it reads).
SAMPLES = {
    "Pci": "Pci(0x1F,0x2)",
    "PcCard": "PcCard(0x3)",
    "MemoryMapped": "MemoryMapped(0xB,0xFED00000,0xFED003FF)",
    "VenHw": f"VenHw({G},0102A0FF)",
    "Ctrl": "Ctrl(0x2)",
    "BMC": "BMC(0x1,0xFED40000)",
    "PciRoot": "PciRoot(0x0)",
    "PcieRoot": "PcieRoot(0x1)",
    "Floppy": "Floppy(0x0)",
    "Keyboard": "Keyboard(0x0)",
    "Serial": "Serial(0x1)",
    "ParallelPort": "ParallelPort(0x0)",
    "Acpi": "Acpi(PNP0303,0x0)",
    "AcpiExp": "AcpiExp(PNP0A03,0,ABC)",
    "AcpiEx": "AcpiEx(PNP0A03,PNP0A08,0x1,HID,CID,UID)",
    "AcpiAdr": "AcpiAdr(0x80010100,0x80010200)",
    "Ata": "Ata(Secondary,Slave,0x1)",
    "Scsi": "Scsi(0x1,0x0)",
    "Fibre": "Fibre(0x1122334455667788,0x1)",
    "FibreEx": "FibreEx(0x1122334455667788,0x0000000000000001)",
    "I1394": "I1394(0123456789ABCDEF)",
    "USB": "USB(0x1,0x0)",
    "I2O": "I2O(0x5)",
    "Infiniband": f"Infiniband(0x1,{G},0x2,0x3,0x4)",
    "VenPcAnsi": "VenPcAnsi()",
    "VenVt100": "VenVt100()",
    "VenVt100Plus": "VenVt100Plus()",
    "VenUtf8": "VenUtf8()",
    "UartFlowCtrl": "UartFlowCtrl(Hardware)",
    "DebugPort": "DebugPort()",
    "VenMsg": f"VenMsg({G})",
    "MAC": "MAC(525400123456,0x1)",
    "IPv4": "IPv4(192.168.0.1,TCP,Static,192.168.0.2,192.168.0.254,255.255.255.0)",
    "IPv6": "IPv6(2001:0DB8:0000:0000:0000:0000:0000:0001,UDP,StatelessAutoConfigure,"
            "FE80:0000:0000:0000:0000:0000:0000:0002,0x40,FE80:0000:0000:0000:0000:0000:0000:0001)",
    "Uart": "Uart(115200,8,N,1)",
    "UsbAudio": "UsbAudio(0x1,0x2,0x3,0x4)",
    "UsbCDCControl": "UsbCDCControl(0x1,0x2,0x3,0x4)",
    "UsbHID": "UsbHID(0x46D,0xC52B,0x1,0x2)",
    "UsbImage": "UsbImage(0x1,0x2,0x3,0x4)",
    "UsbPrinter": "UsbPrinter(0x1,0x2,0x3,0x4)",
    "UsbMassStorage": "UsbMassStorage(0x781,0x5581,0x6,0x50)",
    "UsbHub": "UsbHub(0xFFFF,0xFFFF,0xFF,0xFF)",
    "UsbCDCData": "UsbCDCData(0x1,0x2,0x3,0x4)",
    "UsbSmartCard": "UsbSmartCard(0x1,0x2,0x3,0x4)",
    "UsbVideo": "UsbVideo(0x1,0x2,0x3,0x4)",
    "UsbDiagnostic": "UsbDiagnostic(0x1,0x2,0x3,0x4)",
    "UsbWireless": "UsbWireless(0x1,0x2,0x3,0x4)",
    "UsbDeviceFirmwareUpdate": "UsbDeviceFirmwareUpdate(0x1,0x2,0x3)",
    "UsbIrdaBridge": "UsbIrdaBridge(0x1,0x2,0x3)",
    "UsbTestAndMeasurement": "UsbTestAndMeasurement(0x1,0x2,0x3)",
    "UsbClass": "UsbClass(0x1,0x2,0x42,0x4,0x5)",
    "Unit": "Unit(0x3)",
    "Sata": "Sata(0x0,0xFFFF,0x0)",
    "Vlan": "Vlan(100)",
    "NVMe": "NVMe(0x1,01-23-45-67-89-AB-CD-EF)",
    "Uri": "Uri(http://boot.example/efi/boot.efi)",
    "UFS": "UFS(0x0,0x1)",
    "SD": "SD(0x0)",
    "eMMC": "eMMC(0x1)",
    "Bluetooth": "Bluetooth(001122334455)",
    "Wi-Fi": "Wi-Fi(home)",
    "BluetoothLE": "BluetoothLE(001122334455,0x01)",
    "Dns": "Dns(192.168.0.1,10.0.0.1)",
    "HD": "HD(1,GPT,8F9A9C4D-13B9-4E34-8B1B-4D0F2A36D6A0,0x800,0x100000)",
    "CDROM": "CDROM(0x0,0x10,0x20)",
    "VenMedia": f"VenMedia({G})",
    "Media": f"Media({G})",
    "FvFile": f"FvFile({G})",
    "Fv": f"Fv({G})",
    "Offset": "Offset(0x0,0xFFF)",
    "VirtualDisk": "VirtualDisk(0x1000,0x1FFF,0)",
    "VirtualCD": "VirtualCD(0x1000,0x1FFF,1)",
    "PersistentVirtualDisk": "PersistentVirtualDisk(0x1000,0x1FFF,0)",
    "PersistentVirtualCD": "PersistentVirtualCD(0x1000,0x1FFF,0)",
    "RamDisk": f"RamDisk(0x1000,0x1FFF,0,{G})",
    "BBS": "BBS(HD,Disk,0x0)",
}
MORE = [  # other values of the same forms
    "HD(2,MBR,0x12345678,0x800,0x1000)", "HD(3,0,0,0x1,0x2)", "Acpi(0x12345678,0x1)", f"VenHw({G})",
    "AcpiEx(@@@0000,@@@0000,0x0,,,)", "AcpiExp(PNP0A03,PNP0A08,X)", "IPv4(10.0.0.1,UDP,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)",
    "IPv4(10.0.0.1,0x2F,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)", "Uart(DEFAULT,DEFAULT,D,D)", "Uart(9600,7,E,1.5)",
    "MAC(000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F,0x6)", "BBS(0x80,,0x1)",
    "UartFlowCtrl(XonXoff)", "Ata(Primary,Master,0x0)", "Uri()", "Dns(2001:0DB8:0000:0000:0000:0000:0000:0001)",
    "\\EFI\\BOOT\\BOOTX64.EFI", "a name with spaces.efi", "\\", "Path(16,1,0102)", "Path(127,2)",
    "HardwarePath(153,AABB)", "AcpiPath(9)", "Msg(200,00)", "MediaPath(99,1234)", "BbsPath(2,FF)",
]
# Texts OVMF and AAVMF (EDK2 2022.11) gave for the paths they booted devtext.efi from (tests/guests/README.md)
FIRMWARE_TEXTS = [
    "PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,MBR,0xBE1AFDFA,0x3F,0xFBFC1)/\\EFI\\BOOT\\BOOTX64.EFI",
    "VenHw(837DCA9E-E874-4D82-B29A-23FE0E23D1E2,003E000A00000000)/HD(1,MBR,0xBE1AFDFA,0x3F,0xFBFC1)"
    "/\\EFI\\BOOT\\BOOTAA64.EFI",
    "PciRoot(0x0)/Pci(0x1,0x0),/PciRoot(0x0)/Pci(0x2,0x0)",
]


def form_of(node: Node) -> str:
    return dpt.node_text(node, allow_shortcuts=True).partition("(")[0]


def test_every_form_that_reads_has_a_sample():
    assert set(SAMPLES) == set(dpt.PARSERS)


@pytest.mark.parametrize("text", list(SAMPLES.values()) + MORE)
def test_text_reads_to_a_node_whose_text_it_is(text):
    node = dpt.parse_node(text)
    assert dpt.node_text(node, allow_shortcuts=True) == text
    assert dpt.parse_node(dpt.node_text(node, allow_shortcuts=True)) == node
    assert device_path.decode(device_path.encode([node])) == [node]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_sample_is_written_in_its_own_form(name):
    assert form_of(dpt.parse_node(SAMPLES[name])) == name


@pytest.mark.parametrize("text", FIRMWARE_TEXTS + ["/".join(SAMPLES.values())])
def test_paths_read_back_to_their_text(text):
    nodes = dpt.parse_path(text)
    assert dpt.path_text(nodes, allow_shortcuts=True) == text
    assert dpt.parse_path(dpt.path_text(nodes, allow_shortcuts=True)) == nodes


def test_instances_are_joined_by_comma_slash_and_read_from_either_form():
    nodes = dpt.parse_path("PciRoot(0x0)/Pci(0x1,0x0),PciRoot(0x0)/Pci(0x2,0x0)")
    assert nodes[2] == device_path.END_OF_INSTANCE and len(nodes) == 5
    assert dpt.path_text(nodes) == "PciRoot(0x0)/Pci(0x1,0x0),/PciRoot(0x0)/Pci(0x2,0x0)"
    assert dpt.parse_path(dpt.path_text(nodes)) == nodes
    assert dpt.parse_path("PciRoot(0x0),") == [device_path.pci_root(0), device_path.END_OF_INSTANCE]
    assert dpt.path_text(dpt.parse_path("PciRoot(0x0),")) == "PciRoot(0x0),"  # the / comes before a node
    assert dpt.path_text([device_path.END_OF_INSTANCE, device_path.pci(1)]) == ",/Pci(0x1,0x0)"
    assert dpt.node_text(device_path.END_OF_INSTANCE) == ","
    assert dpt.node_text(device_path.END) == "Path(127,255)"
    assert dpt.path_text([]) == "" and device_path.text([]) == "End"
    assert dpt.parse_path("/") == [] and dpt.parse_path("//Pci(0x0,0x0)//") == [device_path.pci(0)]


def test_text_that_is_no_form_is_a_file_path():
    for text in ("\\EFI\\BOOT\\BOOTX64.EFI", "Foo(1,2)", "pci(0x1,0x0)", "HD", "\\EFI\\a(1).efi"):
        assert dpt.parse_node(text) == device_path.file_path(text)
    assert dpt.parse_path("\\EFI\\BOOT\\BOOTX64.EFI") == [device_path.file_path("\\EFI\\BOOT\\BOOTX64.EFI")]


def test_display_only_forms():
    """As EDK2: HD and CDROM without start and size, IPv4/IPv6 the remote address, Ata its LUN, BBS
    without flags, an AcpiEx of a PCI root PciRoot(UIDSTR or UID); AcpiEx its strings for numbers."""
    display = {
        SAMPLES["HD"]: "HD(1,GPT,8F9A9C4D-13B9-4E34-8B1B-4D0F2A36D6A0)",
        "HD(2,MBR,0x12345678,0x800,0x1000)": "HD(2,MBR,0x12345678)",
        SAMPLES["CDROM"]: "CDROM(0x0)",
        SAMPLES["IPv4"]: "IPv4(192.168.0.1)",
        SAMPLES["IPv6"]: "IPv6(2001:0DB8:0000:0000:0000:0000:0000:0001)",
        SAMPLES["Ata"]: "Ata(0x1)",
        SAMPLES["BBS"]: "BBS(HD,Disk)",
        SAMPLES["AcpiExp"]: "PciRoot(ABC)",
        SAMPLES["AcpiEx"]: "PciRoot(UID)",
        "AcpiEx(PNP0A08,PNP0A03,0x2,,,)": "PcieRoot()",
        "AcpiEx(ABC0001,PNP0A08,0x2,,,)": "PcieRoot()",
        "AcpiEx(ABC0001,DEF0002,0x2,H,C,U)": "AcpiEx(H,C,U)",
        SAMPLES["Pci"]: SAMPLES["Pci"],
    }
    for text, shown in display.items():
        assert dpt.node_text(dpt.parse_node(text), display_only=True) == shown
    # AcpiEx without strings at all (16 bytes of data): the numbers
    node = Node(2, 2, bytes.fromhex("D041030A" "05000000" "00000000"))
    assert dpt.node_text(node, display_only=True) == "PciRoot(0x5)"
    assert dpt.node_text(node) == "AcpiEx(PNP0A03,@@@0000,0x5,,,)"


def test_shortcuts_only_with_allow_shortcuts():
    node = dpt.parse_node("VenVt100()")
    assert dpt.node_text(node) == "VenMsg(DFA66065-B419-11D3-9A2D-0090273FC14D)"
    assert dpt.node_text(node, allow_shortcuts=True) == "VenVt100()"
    assert dpt.parse_node(dpt.node_text(node)) == node


def test_uefi_2_0_ipv4_and_ipv6_nodes_write_the_short_form():
    """19- and 43-byte nodes (before the gateway fields): written without them, as EDK2; they read back as
    today's node with zeros there."""
    full = dpt.parse_node(SAMPLES["IPv4"])
    short = Node(full.type, full.subtype, full.data[:15])
    assert dpt.node_text(short) == "IPv4(192.168.0.1,TCP,Static,192.168.0.2)"
    assert dpt.parse_node(dpt.node_text(short)).data == short.data + bytes(8)
    full6 = dpt.parse_node(SAMPLES["IPv6"])
    assert dpt.node_text(Node(3, 13, full6.data[:39])).count(",") == 3


def test_missing_parameters_take_their_defaults():
    assert dpt.parse_node("Sata(0x1)") == dpt.parse_node("Sata(0x1,0xFFFF,0x0)")
    assert dpt.parse_node("HD(1,GPT,8F9A9C4D-13B9-4E34-8B1B-4D0F2A36D6A0)").data[4:20] == bytes(16)
    assert dpt.parse_node("UsbClass()") == dpt.parse_node("UsbClass(0xFFFF,0xFFFF,0xFF,0xFF,0xFF)")
    assert dpt.parse_node("Uart()") == dpt.parse_node("Uart(DEFAULT,DEFAULT,D,D)")
    assert dpt.parse_node("Pci(31,2)") == dpt.parse_node("Pci(0x1F,0x2)")  # decimal, as EDK2's Strtoi


def test_hard_drive_type_sets_the_partition_format():
    mbr, gpt = dpt.parse_node("HD(2,MBR,0x12345678,0x800,0x1000)"), dpt.parse_node(SAMPLES["HD"])
    assert (mbr.data[-2], mbr.data[-1]) == (1, 1) and (gpt.data[-2], gpt.data[-1]) == (2, 2)
    assert mbr.data[20:24] == bytes.fromhex("78563412")


def test_nodes_no_form_fits_are_written_generically_and_read_back():
    cases = {
        Node(1, 1, b"\x01"): "HardwarePath(1,01)",  # a PCI node one byte short
        Node(1, 1, b"\x01\x02\x03"): "HardwarePath(1,010203)",  # one byte long
        Node(4, 4, b"A\0B\0"): "MediaPath(4,41004200)",  # a file name without its NUL
        Node(3, 24, b"http://a/b,c"): "Msg(24,687474703A2F2F612F622C63)",  # a URI with a comma
        Node(3, 14, bytes(12) + b"\x08\x09\x01"): "Msg(14,000000000000000000000000080901)",  # parity 9
        Node(0x42, 7, b""): "Path(66,7)",
        Node(5, 9, b"\xff"): "BbsPath(9,FF)",
    }
    for node, text in cases.items():
        assert dpt.node_text(node) == text
        assert dpt.parse_node(text) == node


def test_random_nodes_read_back_to_their_text():
    """Any node's text reads to a node with the same text (and forms that show every byte give the bytes)."""
    rng = random.Random(1)
    kinds = list(dpt.FORMS_OF) + [(1, 0x7E), (0x11, 1), (4, 0x20)]
    for _ in range(3000):
        node_type, subtype = rng.choice(kinds)
        if (node_type, subtype) == (4, 4):  # a file name: its text is the name, so keep it one
            name = "".join(rng.choice("\\abc.EFI _-~") for _ in range(rng.randrange(1, 30)))
            node = device_path.file_path(name)
        else:
            size = rng.choice([0, 1, 2, 4, 6, 8, 12, 16, 20, 22, 23, 27, 33, 38, 39, 44, 56, rng.randrange(64)])
            node = Node(node_type, subtype, bytes(rng.randrange(4) and rng.randrange(256) for _ in range(size)))
        for display_only, shortcuts in ((False, False), (False, True)):
            text = dpt.node_text(node, display_only, shortcuts)
            again = dpt.parse_node(text)
            if form_of(node) not in ("IPv4", "IPv6") or len(node.data) in (23, 56):
                assert dpt.node_text(again, display_only, shortcuts) == text, (node, text)
            if text.startswith(tuple(dpt.GENERIC.values()) + ("Path(",)):
                assert again == node
        dpt.node_text(node, display_only=True)


@pytest.mark.parametrize("text", [
    "Pci(0x1F", "Pci(0x1F,0x2))", "Pci(0x1F,(0x2)", "Pci(0x100,0x0)", "Pci(0x100000000000000000000,0x0)",
    "Pci(1" + "0" * 5000 + ",0)", "Pci(-1,0)", "Pci(0x1,0x2,0x3)", "Pci()", "Pci(zz,0)", "PciRoot()",
    "HD(1,GPT,not-a-guid,0x1,0x2)", "HD(1,MBR,0x100000000,0x1,0x2)", "HD(1,7,5,0x1,0x2)", "HD(1,GPT)",
    "VenHw(" + G + ",ABC)", "VenHw()", "MAC(" + "00" * 33 + ",0x1)", "IPv4(1.2.3.4.5)", "IPv6(gggg::)",
    "Dns()", "Uart(115200,8,X,1)", "Wi-Fi(" + "x" * 33 + ")", "Uri(\u0100)", "Path(256,1)", "Path(1)",
    "Msg(1,2,3)", "NVMe(0x1,01-02)", "BBS(HD,\u00e9)", "AcpiEx(PNP0A03)", "Acpi(PNP,0x0)",
    "Path(1,1," + "00" * 65532 + ")", "\\" + "x" * 40000,
])
def test_text_that_does_not_read_is_a_value_error(text):
    with pytest.raises(ValueError):
        dpt.parse_path(text)


@pytest.mark.parametrize("text", [
    "(" * 1_000_000, ")" * 1_000_000, "Pci(" + "1," * 500_000 + ")", "a/" * 200_000,
    "Path(1,1," + "0" * 1_000_000 + ")", "HD(" + "9" * 1_000_000 + ")", "Pci(0x" + "F" * 1_000_000 + ",0)",
])
def test_hostile_text_is_refused_quickly(text):
    start = time.perf_counter()
    with pytest.raises(ValueError):
        dpt.parse_path(text)
    assert time.perf_counter() - start < 2


# -- the protocols in a firmware ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fw():
    yield finished_run().fw  # the machine, and with it the engine that holds guest memory, lives until the end


def test_the_protocols_are_installed_in_every_run(fw):
    from efistub import guids

    for guid in (guids.DEVICE_PATH_TO_TEXT_PROTOCOL, guids.DEVICE_PATH_FROM_TEXT_PROTOCOL):
        assert any(guid in h.protocols for h in fw.handles.handles.values())


def test_text_comes_back_in_pool_memory(fw):
    path = put(fw, device_path.encode(dpt.parse_path(FIRMWARE_TEXTS[0])))
    address, _, reason = call(fw, to_text.ConvertDevicePathToText, path, False, False)
    assert reason is None and address in fw.pools
    assert fw.mem.read_ucs2(address) == FIRMWARE_TEXTS[0]
    address, _, _ = call(fw, to_text.ConvertDeviceNodeToText, path, True, False)
    assert fw.mem.read_ucs2(address) == "PciRoot(0x0)"
    node, _, _ = call(fw, from_text.ConvertTextToDeviceNode, put(fw, ucs2("Pci(0x1F,0x2)")))
    assert node in fw.pools and fw.mem.read(node, 6) == device_path.pci(0x1F, 2).to_bytes()


def test_text_that_does_not_read_gives_null_with_a_note(fw):
    for function in (from_text.ConvertTextToDeviceNode, from_text.ConvertTextToDevicePath):
        value, note, reason = call(fw, function, put(fw, ucs2("Path(1,1," + "00" * 65532 + ")")))
        assert value == 0 and "longer than a node can be" in note and reason is None
        value, note, _ = call(fw, function, put(fw, ucs2("Pci(0x1F")))
        assert value == 0 and ("parentheses" in note or "without its )" in note)
        assert call(fw, function, put(fw, ucs2("")))[0] == 0
        assert call(fw, function, 0)[0] == 0


def test_invalid_paths_give_null_and_unterminated_ones_end_the_run(fw):
    value, note, reason = call(fw, to_text.ConvertDevicePathToText, put(fw, b"\x01\x01\x02\x00\x7f\xff\x04\x00"),
                               False, False)
    assert value == 0 and note and reason is None
    value, _, reason = call(fw, to_text.ConvertDeviceNodeToText, put(fw, b"\x01\x01\x02\x00"), False, False)
    assert value == 0 and reason is None
    endless = put(fw, (Node(1, 0x7E, bytes(1020)).to_bytes()) * 80)
    value, _, reason = call(fw, to_text.ConvertDevicePathToText, endless, False, False)
    assert value == 0 and "DevicePathToText.ConvertDevicePathToText" in reason
    start = time.perf_counter()
    unterminated = put(fw, b"A\0" * (from_text.MAX_TEXT + 16))
    value, _, reason = call(fw, from_text.ConvertTextToDevicePath, unterminated)
    assert value == 0 and "DevicePathFromText.ConvertTextToDevicePath" in reason
    assert time.perf_counter() - start < 10
