"""pytest plugin (entry point ``pytest11``): the ``efi_machine`` fixture and corpus helpers.

- ``efi_machine(image, **options)`` makes an efistub.Machine; ``image`` may be a path
  relative to the corpus folder. The machines it made are closed when the test ends
  (Machine.close: their engine and guest RAM go at once).
- ``--efistub-corpus DIR`` (default: the environment variable EFISTUB_CORPUS) names the
  folder of real EFI images; the ``efistub_corpus`` fixture returns it.
- ``@pytest.mark.efistub_image("x86_64/vmlinuz-...")`` skips a test, saying why, when
  that corpus image is missing.
- ``efi_sweep(image, statuses=None, services=None, jobs=None, **options)`` runs an image
  once and fails each of its service calls in turn (efistub.sweep; docs/sweep.md); it
  returns the SweepResult: ``assert not result.misbehaved, result.table(result.misbehaved)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--efistub-corpus", default=os.environ.get("EFISTUB_CORPUS"), metavar="DIR",
                     help="folder of real EFI images for efistub tests (default: $EFISTUB_CORPUS)")


def pytest_configure(config):
    config.addinivalue_line("markers", "efistub_image(path): skip unless this corpus image exists")


def _corpus(config) -> Path | None:
    folder = config.getoption("--efistub-corpus")
    return Path(folder) if folder else None


def pytest_runtest_setup(item):
    for marker in item.iter_markers("efistub_image"):
        corpus = _corpus(item.config)
        if corpus is None:
            pytest.skip("no corpus: set EFISTUB_CORPUS or --efistub-corpus")
        for relative in marker.args:
            if not (corpus / relative).exists():
                pytest.skip(f"{relative} is not in the corpus at {corpus}")


@pytest.fixture
def efistub_corpus(request) -> Path:
    corpus = _corpus(request.config)
    if corpus is None or not corpus.is_dir():
        pytest.skip("no corpus: set EFISTUB_CORPUS or --efistub-corpus")
    return corpus


def _image_path(config, image) -> Path:
    path = Path(image)
    corpus = _corpus(config)
    if not path.is_absolute() and not path.exists() and corpus is not None:
        path = corpus / path
    return path


@pytest.fixture
def efi_machine(request):
    """A factory: ``efi_machine(image, **options)`` -> efistub.Machine (not yet run), closed when the
    test ends."""
    from efistub import Machine

    made: list[Machine] = []

    def make(image, **options):
        machine = Machine(_image_path(request.config, image), **options)
        made.append(machine)
        return machine

    yield make
    for machine in made:
        machine.close()


@pytest.fixture
def efi_sweep(request):
    """A factory: ``efi_sweep(image, statuses=None, services=None, jobs=None, **options)`` ->
    efistub.sweep.SweepResult: one run of the image, and each of its calls failed in turn in a
    copy of the run forked at that call."""
    from efistub import Machine

    def sweep(image, statuses=None, services=None, jobs=None, **options):
        with Machine(_image_path(request.config, image), **options) as machine:
            return machine.sweep(statuses=statuses, services=services, jobs=jobs)

    return sweep
