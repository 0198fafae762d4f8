"""The Linux boot protocol: what a kernel receives at the hand-off, decoded.

boot_params (x86), the FDT's /chosen (arm64, riscv64), the Image headers that say
where an in-place kernel starts, and the EFI memory map and configuration tables
the kernel is handed.
"""
