"""GuestMemory reads guest RAM from the host buffers the engine maps it from: what it reads there is
what a read through the engine gives, strings (and their errors) included."""

import random
from pathlib import Path

import pytest
from unicorn import UC_PROT_ALL, UC_PROT_READ, UC_PROT_WRITE

from efistub.errors import GuestMemoryError
from efistub.machine import Machine

BENCH = Path(__file__).parent / "guests" / "x86_64" / "bench.efi"


@pytest.fixture(scope="module")
def machine():
    machine = Machine(str(BENCH), cmdline="none 1")
    assert machine.run().outcome == "exit"
    return machine


def through_engine(mem, fn, *args):
    """``fn(*args)`` with every read going through the engine (uc_mem_read), as before host buffers."""
    host, mem._host = mem._host, []
    try:
        return fn(*args)
    except GuestMemoryError as e:
        return ("error", str(e))
    finally:
        mem._host = host


def directly(fn, *args):
    try:
        return fn(*args)
    except GuestMemoryError as e:
        return ("error", str(e))


def test_all_of_ram_lies_in_host_buffers(machine):
    mem = machine.platform.fw.mem
    assert [(start, end) for start, end, _ in mem._host] == mem.ram


def test_reads_see_the_engines_writes_and_the_engine_sees_ours(machine):
    uc, mem = machine.platform.uc, machine.platform.fw.mem
    start, end = mem.ram[0]
    for address in (start, start + 0x12345, end - 16):
        uc.mem_write(address, b"engine wrote it!")
        assert mem.read(address, 16) == b"engine wrote it!"
        mem.write(address, b"efistub wrote it")
        assert bytes(uc.mem_read(address, 16)) == b"efistub wrote it"
    with pytest.raises(GuestMemoryError):
        mem.read(end - 8, 16)  # past the end of RAM, as the engine says
    assert through_engine(mem, mem.read, end - 8, 16)[0] == "error"


def test_a_change_of_permissions_splits_a_region_without_moving_it(machine):
    uc, mem = machine.platform.uc, machine.platform.fw.mem
    address = mem.ram[0][0] + 0x200000
    uc.mem_protect(address, 0x1000, UC_PROT_ALL)
    uc.mem_write(address + 8, b"split")
    assert mem.read(address + 8, 5) == b"split"
    uc.mem_protect(address, 0x1000, UC_PROT_READ | UC_PROT_WRITE)
    mem.write(address + 8, b"again")
    assert bytes(uc.mem_read(address + 8, 5)) == b"again"


@pytest.mark.parametrize("seed", range(4))
def test_strings_read_from_host_buffers_are_the_ones_read_through_the_engine(machine, seed):
    """NUL-terminated strings of 1- and 2-byte characters, with and without their NUL, short and long,
    in the middle of RAM and running into its end, at every limit the services use: the same text
    or the same error either way."""
    mem = machine.platform.fw.mem
    rng = random.Random(seed)
    start, end = mem.ram[-1]
    for _ in range(300):
        unit = rng.choice([1, 2])
        limit = rng.choice([0, 1, 3, 64, 100, 256, 512, 1000, 1 << 12, 1 << 16])
        address = rng.randrange(start, end - (1 << 18)) if rng.random() < 0.5 else end - rng.randrange(1, 3000)
        special = [0, 0, 1, 0x41, 0x100, 0xD800] if unit == 2 else [0, 1, 0x41]
        data = b"".join((rng.choice(special) if rng.random() < 0.3 else rng.randrange(1, 1 << (8 * unit)))
                        .to_bytes(unit, "little") for _ in range(rng.randrange(0, 3000)))
        mem.write(address, data[: end - address])
        assert directly(mem._read_terminated, address, limit, unit) == \
            through_engine(mem, mem._read_terminated, address, limit, unit)
        mem.forget()
        if unit == 2:
            assert directly(mem.read_ucs2, address, limit) == through_engine(mem, mem.read_ucs2, address, limit)
            mem.forget()
