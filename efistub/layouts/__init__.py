"""Exact binary layouts (construct definitions): EFI tables and protocols, PE/COFF, Linux boot structures.

Only layouts live here; behaviour lives in the modules that use them.
All supported architectures are 64-bit, so UINTN and pointers are 64 bits wide.
"""
