"""efistub: a minimal EFI firmware-services emulator for running EFI images headless."""

__version__ = "0.1.0"
