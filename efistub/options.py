"""The options of a run, declared once: the CLI's flags, Machine's keyword arguments and what
the firmware reads all come from ``RunOptions``."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field, fields

SIZE_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """A RAM size: a number of MiB, or a number with a K, M or G suffix (KiB, MiB, GiB)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 512M, 1G, 2048)")
    return int(m.group(1)) * SIZE_UNITS[m.group(2).upper()]


def unescape(text: str) -> str:
    """Backslash escapes, as --keys takes them ('\\r' is Enter)."""
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        raise argparse.ArgumentTypeError(f"bad escape in {text!r}: {e.reason}") from None


def option(default, flag: str, help: str, metavar: str | None = None, type=None, choices=None,
           negate: str | None = None, flag_sets: bool = False, either_way: bool = False):
    """A run option: its default, its CLI flag and help. ``negate``: a boolean option whose CLI
    flag (this one) turns it off; ``flag_sets``: one that the flag turns on; ``either_way``: one
    that --FLAG turns on and --no-FLAG off (default None: neither)."""
    return field(default=default, metadata=dict(flag=flag, help=help, metavar=metavar, type=type,
                                                choices=choices, negate=negate, flag_sets=flag_sets,
                                                either_way=either_way))


@dataclass
class RunOptions:
    """What a run is given. ``initrd`` and ``dtb`` are bytes or a path (read when the run starts)."""

    cmdline: str = option("", "--cmdline", "the image's load options (kernel command line)", "TEXT")
    initrd: bytes | str | None = option(None, "--initrd", "offer FILE as the initrd through LOAD_FILE2 "
                                                          "(LINUX_EFI_INITRD_MEDIA device path)", "FILE")
    dtb: bytes | str | None = option(None, "--dtb", "install FILE as the device tree configuration table "
                                                    "(EFI_DTB_TABLE); without it none is installed", "FILE")
    hart_id: int = option(0, "--hart-id", "RISC-V: the boot hart RISCV_EFI_BOOT_PROTOCOL reports (default 0)",
                          "N", int)
    memory: int = option(1 << 30, "--mem", "guest RAM: MiB, or with a K/M/G suffix (default 1G)", "SIZE",
                         parse_size)
    platform: str | None = option(None, "--platform", "the board whose memory layout guest RAM copies: q35 "
                                                      "(x86_64, ia32), virt (aarch64, riscv64); the default is "
                                                      "the image's architecture's", "BOARD")
    null_page: str = option("ram", "--null-page", "on q35, where page 0 is RAM: 'ram' serves the first access to "
                                                  "it and notes where it came from; 'fault' ends the run there",
                            choices=("ram", "fault"))
    seed: int = option(0, "--seed", "seed of the RNG protocol and the TSC (default 0): equal inputs give equal "
                                    "runs", "N", int)
    rng: bool = option(True, "--no-rng", "do not offer EFI_RNG_PROTOCOL", negate="rng")
    keys: str = option("", "--keys", "key presses queued on the console input, with backslash escapes (for "
                                     "example '\\r' for Enter); without it no key is ever pressed", "TEXT", unescape)
    esp: str | None = option(None, "--esp", "serve folder DIR as the image's EFI system partition "
                                            "(SIMPLE_FILE_SYSTEM; read-only unless --esp-writable)", "DIR")
    esp_writable: bool = option(False, "--esp-writable", "let the guest change the --esp folder", flag_sets=True)
    disk: str | None = option(None, "--disk", "offer FILE, a raw, GPT or MBR disk image, read-only (BLOCK_IO and "
                                              "DISK_IO for the disk and its partitions; SIMPLE_FILE_SYSTEM on its "
                                              "FAT ESP)", "FILE")
    vars: str | None = option(None, "--vars", "load the variable store from FILE (virt-firmware JSON, or an edk2 "
                                              "flash image such as OVMF_VARS.fd) and, after a run that changed a "
                                              "non-volatile variable, save it back atomically (a new *.json FILE is "
                                              "created; minimize and scan never save)", "FILE")
    vars_format: str | None = option(None, "--vars-format", "the format of --vars FILE (default: json for a *.json "
                                                            "name, else edk2)", choices=("json", "edk2"))
    secure_boot: bool | None = option(None, "--secure-boot", "override SecureBoot for this run, as a firmware setup "
                                                             "option would: --no-secure-boot keeps the keys and "
                                                             "their checks but says SecureBoot=0; --secure-boot says "
                                                             "1 although the store's SecureBootEnable is off (needs "
                                                             "a PK); the store is not changed", either_way=True)
    enroll: str | None = option(None, "--enroll", "replace the store's PK, KEK, db and dbx before the run (saved with "
                                                  "--vars): PK=CERT,KEK=CERT,db=CERT,db=distro:NAME,dbx=SHA256HEX "
                                                  "or dbx=CERT (KEK, db, dbx repeat; PEM or DER), or a key set of "
                                                  "virt-firmware: microsoft, redhat", "KEYS")
    image_policy: str = option("defer", "--image-policy", "with Secure Boot on, what LoadImage does with an image "
                                                          "that fails verification against db and dbx: defer (load it "
                                                          "untrusted: EFI_SECURITY_VIOLATION, and StartImage refuses "
                                                          "it), deny (OVMF's setting: do not load it, "
                                                          "EFI_ACCESS_DENIED) or always (verify nothing, as EDK2 "
                                                          "does for images from its firmware volume)",
                               choices=("defer", "deny", "always"))
    vars_save_on_fault: bool = option(False, "--vars-save-on-fault", "save --vars FILE also after a run that ended "
                                                                     "in a fault, an error or a timeout",
                                      flag_sets=True)
    tpm: str = option("model", "--tpm", "the TPM behind EFI_TCG2_PROTOCOL: efistub's model (SHA-256, the default), "
                                        "swtpm (Debian's swtpm, started for the run) or none (no TCG2 protocol)",
                      choices=("model", "swtpm", "none"))
    save_tpm: str | None = option(None, "--save-tpm", "after the run, write the PCR values and the event log to "
                                                      "FILE (JSON) and the binary event log beside it (FILE's name "
                                                      "with .bin; tpm2_eventlog reads it)", "FILE")
    timeout: float = option(60.0, "--timeout", "end a guest that runs longer than S seconds (default 60)", "S",
                            float)
    dispatch: str | None = option(None, "--dispatch", "how service calls reach the services: the C trampoline "
                                                      "(native, the default when it is built) or pure Python; "
                                                      "EFISTUB_DISPATCH sets the default", choices=("native", "python"))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for f in fields(cls):
            meta = f.metadata
            if meta["either_way"]:
                parser.add_argument(meta["flag"], dest=f.name, action=argparse.BooleanOptionalAction,
                                    default=f.default, help=meta["help"])
                continue
            if meta["negate"] or meta["flag_sets"]:
                action = "store_false" if meta["negate"] else "store_true"
                parser.add_argument(meta["flag"], dest=f.name, action=action, help=meta["help"])
                continue
            kwargs = dict(dest=f.name, default=f.default, help=meta["help"])
            for key in ("metavar", "type", "choices"):
                if meta[key] is not None:
                    kwargs[key] = meta[key]
            parser.add_argument(meta["flag"], **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> dict:
        """Machine keyword arguments from parsed CLI arguments (plain data, for worker processes too)."""
        return {f.name: getattr(args, f.name) for f in fields(cls)}

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

