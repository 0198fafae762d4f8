import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
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
