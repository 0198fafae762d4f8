"""The PE image hash (Microsoft PE/COFF specification, "Calculating the PE Image Hash"), as EDK2's
Tcg2Dxe (MeasurePeImageAndExtend) and DxeTpm2MeasureBootLib compute it for a PE_COFF_IMAGE
measurement and for every image the firmware loads.

The hash covers the headers without the CheckSum field and the certificate table's data directory
entry, then the sections' raw data in the order of their file offsets, then whatever follows the
last section except the certificate table (which the image's last bytes must hold). This is the
Authenticode digest a signature covers: measured boot and Secure Boot's image verification use the
same digests, computed once per loaded image (``digests``).
"""

from __future__ import annotations

import hashlib

from construct import ConstructError, Int16ul, Int32ul

from .layouts import pe
from .layouts.efi import offset_of


class NotPeImage(ValueError):
    """No PE image at all (no MZ or no PE signature): EDK2's EFI_UNSUPPORTED."""


class BadPeImage(ValueError):
    """A PE image whose headers or sections do not fit in its bytes."""


def image_hash(data: bytes, algorithms: list[str]) -> dict[str, bytes]:
    """The image hash of the PE image ``data`` with each hashlib algorithm in ``algorithms``."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    for piece in hashed_ranges(data):
        view = memoryview(data)[piece]
        for hasher in hashers.values():
            hasher.update(view)
    return {name: hasher.digest() for name, hasher in hashers.items()}


def digests(image, algorithms: list[str]) -> dict[str, bytes]:
    """The image hash of a loaded PE image (loader.PeImage) with each algorithm, kept in
    ``image.digests``: every algorithm is computed once per image, whoever asks first."""
    missing = [name for name in algorithms if name not in image.digests]
    if missing:
        image.digests.update(image_hash(image.data, missing))
    return {name: image.digests[name] for name in algorithms}


def hashed_ranges(data: bytes) -> list[slice]:
    """The slices of ``data`` that the image hash covers, in order."""
    if len(data) < 0x40 or Int16ul.parse(data[:2]) != pe.DOS_MAGIC:
        raise NotPeImage("no MZ header")
    header = Int32ul.parse(data[0x3C:0x40])
    try:
        coff = pe.CoffHeader.parse(data[header:header + pe.CoffHeader.sizeof()])
    except ConstructError:
        raise NotPeImage("the PE header lies outside the image") from None
    if coff.Signature != pe.PE_SIGNATURE:
        raise NotPeImage("no PE signature")
    optional = header + pe.CoffHeader.sizeof()
    try:
        magic = Int16ul.parse(data[optional:optional + 2])
        layout = pe.OPTIONAL_HEADERS[magic]
        fields = layout.parse(data[optional:optional + layout.sizeof()])
    except (ConstructError, KeyError):
        raise BadPeImage("no PE32 or PE32+ optional header") from None
    checksum = optional + offset_of(layout, "CheckSum")
    directories = optional + layout.sizeof()
    security = directories + pe.DIRECTORY_SECURITY * pe.DataDirectory.sizeof()
    end_of_headers = fields.SizeOfHeaders
    if end_of_headers > len(data) or checksum + 4 > end_of_headers:
        raise BadPeImage("SizeOfHeaders runs past the image")
    ranges = [slice(0, checksum)]
    certificate_size = 0
    if fields.NumberOfRvaAndSizes > pe.DIRECTORY_SECURITY:
        ranges += [slice(checksum + 4, security), slice(security + pe.DataDirectory.sizeof(), end_of_headers)]
        certificate_size = pe.DataDirectory.parse(data[security:security + pe.DataDirectory.sizeof()]).Size
    else:
        ranges.append(slice(checksum + 4, end_of_headers))
    table = optional + coff.SizeOfOptionalHeader
    sections = []
    for i in range(coff.NumberOfSections):
        at = table + i * pe.SectionHeader.sizeof()
        if at + pe.SectionHeader.sizeof() > len(data):
            raise BadPeImage("the section table runs past the image")
        sections.append(pe.SectionHeader.parse(data[at:at + pe.SectionHeader.sizeof()]))
    hashed = end_of_headers
    for section in sorted(sections, key=lambda s: s.PointerToRawData):
        if not section.SizeOfRawData:
            continue
        start, end = section.PointerToRawData, section.PointerToRawData + section.SizeOfRawData
        if end > len(data):
            name = section.Name.rstrip(b"\0").decode("latin-1")
            raise BadPeImage(f"section {name} runs past the image")
        ranges.append(slice(start, end))
        hashed += section.SizeOfRawData
    if len(data) > hashed:
        if len(data) < hashed + certificate_size:
            raise BadPeImage("the certificate table does not fit after the sections")
        if len(data) > hashed + certificate_size:
            ranges.append(slice(hashed, len(data) - certificate_size))
    return ranges
