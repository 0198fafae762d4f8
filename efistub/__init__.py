"""efistub: a minimal EFI firmware-services emulator for running EFI images headless."""

from . import engine as _engine

__version__ = "0.1.0"

# Point the unicorn binding at the fast engine when one is built (EFISTUB_ENGINE or
# --engine may override this before unicorn is first imported). See docs/engine.md.
_engine.activate()
