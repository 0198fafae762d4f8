import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
pytest_plugins = ["pytester"]  # tests of the pytest plugin run an inner pytest
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The folder of real EFI images (EFISTUB_CORPUS); tests that need it skip without it."""
    folder = os.environ.get("EFISTUB_CORPUS")
    if not folder:
        pytest.skip("EFISTUB_CORPUS is not set: corpus images are not available")
    path = Path(folder)
    if not path.is_dir():
        pytest.skip(f"EFISTUB_CORPUS={folder} is not a folder")
    return path


def corpus_file(corpus: Path, relative: str) -> Path:
    path = corpus / relative
    if not path.exists():
        pytest.skip(f"{relative} is not in the corpus at {corpus}")
    return path


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """The Secure Boot tests' keys (tests/secureboot_fixtures.py: Keys), each generated when first asked for."""
    from secureboot_fixtures import Keys

    return Keys(tmp_path_factory.mktemp("keys"))


# Modules whose subject does not change with the engine or the dispatch path (QEMU and OVMF
# interop, crypto, scans through Dask, loader fuzzing; service fuzzing compares both dispatch paths
# within its one pass): .ci/run runs the suite once per engine and
# dispatch path, and sets EFISTUB_REPEAT_PASS=1 for every pass after the first, where these skip.
ONCE_MODULES = {"test_resume", "test_resume_fdt", "test_secureboot", "test_scan_dask", "test_fuzz_loader",
                "test_fuzz_services", "test_soak"}


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EFISTUB_REPEAT_PASS") != "1":
        return
    skip = pytest.mark.skip(reason="engine- and dispatch-independent: it ran in .ci/run's first pass")
    for item in items:
        if item.module.__name__ in ONCE_MODULES:
            item.add_marker(skip)
