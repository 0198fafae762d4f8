"""Engine selection (stock or fast) and the fast engine's self-test."""

import json
import os
import subprocess
import sys

import pytest

from efistub import engine
from efistub.engine.build import self_test
from efistub.machine import Machine
from pathlib import Path

GUEST = Path(__file__).parent / "guests" / "x86_64" / "hello.efi"


def test_report_names_the_engine_that_ran():
    report = Machine(str(GUEST)).run()
    requested = os.environ.get("EFISTUB_ENGINE")
    assert report.engine == engine.loaded().engine
    if requested:
        assert report.engine == requested


def make_engine(cache: Path, version: str, passed: bool = True) -> Path:
    folder = cache / "efistub" / "engine" / f"unicorn-{version}"
    folder.mkdir(parents=True)
    (folder / engine.LIBRARY).write_bytes(b"")
    (folder / engine.MANIFEST).write_text(json.dumps({"unicorn_version": version, "selftest": {"passed": passed}}))
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("EFISTUB_ENGINE", raising=False)
    monkeypatch.setattr(engine, "_USER_PATH", None)
    return tmp_path


def test_without_a_built_engine_the_stock_one_runs(cache):
    choice = engine.choose()
    assert choice.engine == "stock" and "efistub engine build" in choice.reason
    with pytest.raises(ValueError, match="no fast engine"):
        engine.choose("fast")


def test_a_matching_engine_is_chosen_and_stock_can_be_forced(cache):
    folder = make_engine(cache, engine.binding_version())
    assert engine.choose() == engine.Choice("fast", f"fast engine for unicorn {engine.binding_version()} at {folder}",
                                            folder)
    assert engine.choose("stock").engine == "stock"


def test_an_engine_for_another_unicorn_version_is_not_used(cache):
    make_engine(cache, "0.0.1")
    (cache / "efistub" / "engine" / "unicorn-0.0.1").rename(
        cache / "efistub" / "engine" / f"unicorn-{engine.binding_version()}")
    choice = engine.choose()
    assert choice.engine == "stock" and "built for unicorn 0.0.1" in choice.reason


def test_an_engine_that_failed_its_self_test_is_not_used(cache):
    make_engine(cache, engine.binding_version(), passed=False)
    assert engine.choose().engine == "stock"


def test_status_command(cache):
    result = subprocess.run([sys.executable, "-m", "efistub", "engine", "status"], capture_output=True, text=True,
                            env=dict(os.environ, XDG_CACHE_HOME=str(cache)))
    assert result.returncode == 0 and result.stdout.startswith("engine: stock\n")


@pytest.mark.skipif(engine.built_engine()[0] is None, reason="no fast engine is built (efistub engine build)")
def test_the_fast_engine_passes_its_self_test_and_stores_are_fast():
    report = self_test(engine.built_engine()[0])
    assert all(report["cases"].values()), report["cases"]
    assert report["store_ns"] <= 3 * report["load_ns"]
