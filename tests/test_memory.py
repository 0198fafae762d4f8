import pytest

from efistub.errors import EfiError
from efistub.memory import FREE, MEMORY_RUNTIME, AllocateType, MemoryType, PageAllocator, check_allocatable_type
from efistub.status import Status

MiB = 1 << 20
PAGE = 4096


def status_of(fn, *args):
    with pytest.raises(EfiError) as e:
        fn(*args)
    return e.value.status


@pytest.fixture
def ram():
    return PageAllocator(PAGE, 64 * MiB)


def test_any_pages_is_top_down_and_typed(ram):
    a = ram.allocate(AllocateType.AllocateAnyPages, MemoryType.EfiLoaderData, 3)
    assert a == 64 * MiB - 3 * PAGE
    assert ram.type_at(a) == MemoryType.EfiLoaderData
    assert ram.type_at(a - 1) == FREE


def test_max_address_stays_below_the_limit(ram):
    limit = 16 * MiB - 1
    a = ram.allocate(AllocateType.AllocateMaxAddress, MemoryType.EfiBootServicesData, 4, limit)
    assert a + 4 * PAGE - 1 <= limit
    assert a == 16 * MiB - 4 * PAGE


def test_address_allocation_and_overlap_is_not_found(ram):
    a = ram.allocate(AllocateType.AllocateAddress, MemoryType.EfiLoaderCode, 16, 2 * MiB)
    assert a == 2 * MiB
    assert status_of(ram.allocate, AllocateType.AllocateAddress, MemoryType.EfiLoaderCode, 1, 2 * MiB + 15 * PAGE) \
        == Status.EFI_NOT_FOUND
    assert status_of(ram.allocate, AllocateType.AllocateAddress, MemoryType.EfiLoaderCode, 2, 2 * MiB - PAGE) \
        == Status.EFI_NOT_FOUND
    assert status_of(ram.allocate, AllocateType.AllocateAddress, MemoryType.EfiLoaderCode, 1, 0) \
        == Status.EFI_NOT_FOUND  # page 0 is not RAM


def test_exhaustion(ram):
    assert status_of(ram.allocate, AllocateType.AllocateAnyPages, MemoryType.EfiLoaderData, 64 * MiB // PAGE) \
        == Status.EFI_OUT_OF_RESOURCES
    assert status_of(ram.allocate, AllocateType.AllocateMaxAddress, MemoryType.EfiLoaderData, 512, MiB) \
        == Status.EFI_NOT_FOUND


def test_free_merges_and_rejects_unallocated(ram):
    a = ram.allocate(AllocateType.AllocateAddress, MemoryType.EfiLoaderData, 8, 4 * MiB)
    assert len(ram.descriptors()) == 3
    ram.free(a, 8)
    assert [(d.type, d.start, d.pages) for d in ram.descriptors()] == [(FREE, PAGE, 64 * MiB // PAGE - 1)]
    assert status_of(ram.free, a, 8) == Status.EFI_NOT_FOUND
    assert status_of(ram.free, a + 1, 1) == Status.EFI_INVALID_PARAMETER


def test_partial_free_splits(ram):
    a = ram.allocate(AllocateType.AllocateAddress, MemoryType.EfiLoaderData, 8, 4 * MiB)
    ram.free(a + 2 * PAGE, 2)
    runs = [(d.type, d.start, d.pages) for d in ram.descriptors() if d.start >= a and d.start < a + 8 * PAGE]
    assert runs == [(MemoryType.EfiLoaderData, a, 2), (FREE, a + 2 * PAGE, 2), (MemoryType.EfiLoaderData, a + 4 * PAGE, 4)]


def test_map_key_changes_on_every_change(ram):
    keys = [ram.map_key]
    a = ram.allocate(AllocateType.AllocateAnyPages, MemoryType.EfiLoaderData, 1)
    keys.append(ram.map_key)
    ram.touch()
    keys.append(ram.map_key)
    ram.free(a, 1)
    keys.append(ram.map_key)
    assert len(set(keys)) == 4


def test_descriptors_cover_ram_without_gaps_and_mark_runtime(ram):
    ram.allocate(AllocateType.AllocateAnyPages, MemoryType.EfiRuntimeServicesData, 2)
    ram.allocate(AllocateType.AllocateAddress, MemoryType.EfiLoaderCode, 5, 8 * MiB)
    descs = ram.descriptors()
    assert descs[0].start == PAGE and descs[-1].end == 64 * MiB
    for a, b in zip(descs, descs[1:]):
        assert a.end == b.start and a.type != b.type
    for d in descs:
        assert bool(d.attribute & MEMORY_RUNTIME) == (d.type == MemoryType.EfiRuntimeServicesData)


@pytest.mark.parametrize("memory_type", [MemoryType.EfiConventionalMemory, MemoryType.EfiPersistentMemory,
                                         MemoryType.EfiUnacceptedMemoryType, 16, 0x6FFFFFFF])
def test_unallocatable_types(memory_type):
    assert status_of(check_allocatable_type, memory_type) == Status.EFI_INVALID_PARAMETER


@pytest.mark.parametrize("memory_type", [MemoryType.EfiLoaderData, 0x70000000, 0x80000000])
def test_allocatable_types(memory_type):
    check_allocatable_type(memory_type)
