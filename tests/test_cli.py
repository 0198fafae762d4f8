import json
import subprocess
import sys

import pytest

from efistub.cli import parse_size
from pe_builder import code_image, printing_image


def efistub(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "efistub", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(result, path, fragment):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"efistub: error: {path}: ")
    assert fragment in lines[0]


LOONGARCH64 = 0x6264


@pytest.mark.parametrize("content, fragment", [
    (b"not a PE image\n", "not a PE image"),
    (code_image(b"\xc3", machine=LOONGARCH64), "machine loongarch64 is not supported"),
    (code_image(b"\xc3")[:0x250], "truncated"),
    (code_image(b"\xc3", size_of_image=0xF0000000), "SizeOfImage"),
], ids=["text", "wrong-machine", "truncated", "absurd-size"])
def test_bad_images_give_one_line_and_exit_2(tmp_path, content, fragment):
    path = tmp_path / "bad.efi"
    path.write_bytes(content)
    one_line_error(efistub("run", path), path, fragment)


def test_missing_file(tmp_path):
    path = tmp_path / "missing.efi"
    one_line_error(efistub("run", path), path, "No such file")


def test_missing_initrd(tmp_path):
    image = tmp_path / "ret.efi"
    image.write_bytes(code_image(b"\x31\xc0\xc3"))
    one_line_error(efistub("run", image, "--initrd", tmp_path / "nope"), tmp_path / "nope", "No such file")


def test_image_too_big_for_guest_ram(tmp_path):
    image = tmp_path / "big.efi"
    image.write_bytes(code_image(b"\xc3", size_of_image=0x5000000))
    one_line_error(efistub("run", image, "--mem", "64M"), image, "does not fit")


def test_bad_memory_size_is_a_usage_error(tmp_path):
    result = efistub("run", "x.efi", "--mem", "lots")
    assert result.returncode == 2 and "invalid size" in result.stderr and "Traceback" not in result.stderr


def test_exit_codes_and_json(tmp_path):
    image = tmp_path / "ret.efi"
    image.write_bytes(code_image(b"\x31\xc0\xc3"))  # xor eax, eax; ret -> EFI_SUCCESS
    out = tmp_path / "r.json"
    result = efistub("run", image, "--json", out)
    assert result.returncode == 0
    report = json.loads(out.read_text())
    assert report["schema"] == 2 and report["outcome"] == "exit" and report["exit_status"] == "EFI_SUCCESS"
    assert "--- efistub: exit (x86_64) ---" in result.stdout
    image.write_bytes(code_image(b"\x0f\x0b"))  # ud2
    result = efistub("run", image)
    assert result.returncode == 1
    assert "reason        Invalid instruction" in result.stdout


def test_help_lists_the_run_options():
    result = efistub("run", "--help")
    for option in ("--cmdline", "--initrd", "--mem", "--seed", "--timeout", "--json", "--trace", "--keys", "--no-rng"):
        assert option in result.stdout


@pytest.mark.parametrize("text, size", [("1G", 1 << 30), ("512M", 512 << 20), ("2048", 2048 << 20),
                                        ("65536K", 64 << 20), ("1GiB", 1 << 30)])
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_without_the_native_trampoline_efistub_says_so_once_and_runs_python_dispatch(tmp_path):
    image = tmp_path / "ret.efi"
    image.write_bytes(code_image(b"\x31\xc0\xc3"))
    code = ("import sys; sys.modules['efistub._trampoline'] = None; from efistub.cli import main; "
            f"sys.exit(main(['run', {str(image)!r}, '--json', {str(tmp_path / 'r.json')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={k: v for k, v in __import__("os").environ.items() if k != "EFISTUB_DISPATCH"})
    assert result.returncode == 0
    notes = [line for line in result.stderr.splitlines() if "running with Python dispatch" in line]
    assert len(notes) == 1 and notes[0].startswith("efistub: note: the native trampoline is not built")
    assert json.loads((tmp_path / "r.json").read_text())["dispatch"] == "python"


def test_guest_text_cannot_send_escape_sequences_to_the_terminal(tmp_path):
    """A guest prints ESC [2J (clear screen) and a bell: the terminal sees them escaped, the report raw."""
    text = "\x1b[2J\x07efistub"
    image = tmp_path / "escape.efi"
    image.write_bytes(printing_image(text))
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(image), "--json", str(tmp_path / "r.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b[2J\\x07efistub" in result.stdout
    assert json.loads((tmp_path / "r.json").read_text())["console"] == text
