"""Whatever a guest does ends as a clear outcome: faults, halts, endless loops, wild pointers."""

from efistub.machine import Machine
from pe_builder import code_image



def run(tmp_path, code: bytes, **options):
    path = tmp_path / "guest.efi"
    path.write_bytes(code_image(code))
    return Machine(str(path), **options).run()


def test_invalid_opcode(tmp_path):
    r = run(tmp_path, b"\x90\x0f\x0b")
    assert r.outcome == "fault"
    assert "Invalid instruction" in r.fault["reason"]
    assert r.fault["instruction"] == "ud2"
    assert r.fault["image_offset"] == 0x1001
    assert set(r.fault["registers"]) >= {"rax", "rip", "rsp"}


def load_rax_from(address: int) -> bytes:
    return bytes.fromhex("48b8") + address.to_bytes(8, "little") + bytes.fromhex("488b00c3")  # mov rax,[rax]; ret


def test_unmapped_read(tmp_path):
    """0xE0000000 is in the identity map (the 32-bit PCI window of a q35 PC) but not RAM."""
    r = run(tmp_path, load_rax_from(0xE000_0000))
    assert r.outcome == "fault"
    assert r.fault["access"] == {"kind": "read of unmapped memory", "address": 0xE000_0000, "size": 8}
    assert r.fault["instruction"].startswith("mov rax, qword ptr [rax]")


def test_a_non_canonical_address_is_a_general_protection_fault(tmp_path):
    r = run(tmp_path, load_rax_from(0xDEAD00000000))
    assert r.outcome == "fault" and r.fault["reason"].startswith("CPU exception #GP")


def test_an_address_past_the_identity_map_is_a_page_fault(tmp_path):
    r = run(tmp_path, load_rax_from(0x7E00_0000_0000))
    assert r.outcome == "fault"
    assert r.fault["reason"].startswith("CPU exception #PF") and r.fault["reason"].endswith("at address 0x7e0000000000")


NULL_WRITE = bytes.fromhex("31c0c70001000000c3")  # xor eax,eax; mov dword [rax], 1; ret


def test_null_write_faults_with_null_page_fault(tmp_path):
    r = run(tmp_path, NULL_WRITE, null_page="fault")
    assert r.outcome == "fault"
    assert r.fault["access"]["kind"] == "write to unmapped memory" and r.fault["access"]["address"] == 0


def test_null_write_on_q35_is_served_as_ram_and_noted(tmp_path):
    """Page 0 is RAM on a PC: by default the write lands, and the report says where it came from."""
    r = run(tmp_path, NULL_WRITE)
    assert r.outcome == "exit" and r.platform["name"] == "q35"
    notes = [n for n in r.notes if n.startswith("page 0 (NULL) first written at 0x0 by the code at ")]
    assert len(notes) == 1, r.notes


def test_a_jump_to_null_is_a_fault_even_where_page_0_is_ram(tmp_path):
    r = run(tmp_path, bytes.fromhex("31c0ffe0"))  # xor eax,eax; jmp rax
    assert r.outcome == "fault" and r.fault["pc"] == 0


def test_jump_into_data_is_a_fault(tmp_path):
    # mov rax, rdx (the system table, in firmware data); jmp rax
    r = run(tmp_path, bytes.fromhex("4889d0ffe0"))
    assert r.outcome == "fault"
    assert r.fault["reason"] == "instruction fetch from non-executable memory"


def test_hlt(tmp_path):
    r = run(tmp_path, b"\x90\xf4")
    assert r.outcome == "fault" and r.fault["reason"] == "the guest halted with no timer to wake it"
    assert r.fault["instruction"] == "hlt"


def test_endless_loop_times_out(tmp_path):
    r = run(tmp_path, b"\xeb\xfe", timeout=0.5)
    assert r.outcome == "timeout"
    assert r.timeout["instruction"].startswith("jmp")


def test_wild_pointer_to_a_service_gives_invalid_parameter(tmp_path):
    # GetMemoryMap(MemoryMapSize=0xdead00000000, ...) then return its status from the entry point
    code = (bytes.fromhex("4883ec28")                              # sub rsp, 0x28
            + bytes.fromhex("488b4260")                              # mov rax, [rdx+0x60]  BootServices
            + bytes.fromhex("48b900000000adde0000")                  # mov rcx, 0xdead00000000
            + bytes.fromhex("31d24d31c04d31c9")                      # rdx = r8 = r9 = 0
            + bytes.fromhex("ff5038")                                # call [rax+0x38]      GetMemoryMap
            + bytes.fromhex("4883c428c3"))                           # add rsp, 0x28; ret
    r = run(tmp_path, code)
    assert r.outcome == "exit" and r.exit_status == "EFI_INVALID_PARAMETER"
    call = r.calls[-1]
    assert call.service == "GetMemoryMap" and call.status == "EFI_INVALID_PARAMETER"
    assert call.note == "bad guest pointer: cannot read 8 bytes at 0xdead00000000"


def test_entry_return_value_is_the_exit_status(tmp_path):
    r = run(tmp_path, bytes.fromhex("b801000000" "48c1e03f" "4883c80e" "c3"))  # rax = 1<<63 | 14
    assert r.outcome == "exit" and r.exit_status == "EFI_NOT_FOUND"


def test_image_running_its_own_data_is_granted_execute(tmp_path):
    # lea rax, [rip + to .data]; jmp rax -- .data holds: mov eax, 5; ret
    path = tmp_path / "data.efi"
    path.write_bytes(code_image(bytes.fromhex("488d05f90f0000ffe0"), data=bytes.fromhex("b805000000c3")))
    r = Machine(str(path)).run()
    assert r.outcome == "exit" and r.exit_status == "EFI_WARN_STALE_DATA"  # 5
    # execute is granted on that section only, so stores to the image's other sections stay fast
    assert any("in section .data of" in note and "execute granted" in note for note in r.notes), r.notes
