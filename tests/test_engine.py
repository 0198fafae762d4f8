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


def make_engine(cache: Path, version: str, passed: bool = True, patch: str | None = None) -> Path:
    folder = cache / "efistub" / "engine" / f"unicorn-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / engine.LIBRARY).write_bytes(b"")
    (folder / engine.MANIFEST).write_text(json.dumps({"unicorn_version": version, "selftest": {"passed": passed},
                                                      "patch_sha256": patch or engine.patch_sha256()}))
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


def test_an_engine_from_another_patch_still_runs_and_status_says_it_is_stale(cache):
    folder = make_engine(cache, engine.binding_version(), patch="0" * 64)
    choice = engine.choose()
    assert choice.engine == "fast" and choice.path == folder
    assert "built from another fast-store.patch" in choice.reason


# The fast engine at install (efistub/engine/install.py, setup.py): the decisions, with the 3-minute build faked.

@pytest.fixture
def fake_build(cache, monkeypatch):
    """build.py's download-patch-compile-self-test step replaced: it makes an engine as the real one would."""
    from efistub.engine import build as builder

    monkeypatch.delenv(install.SKIP, raising=False)
    calls = []

    def compile_and_install(version, jobs, log):
        calls.append(version)
        return make_engine(cache, version)

    monkeypatch.setattr(builder, "_build", compile_and_install)
    return calls


from efistub.engine import install  # noqa: E402


def test_install_builds_the_engine_once_and_a_reinstall_reuses_it(cache, fake_build):
    first = install.at_install()
    assert fake_build == [engine.binding_version()] and first.startswith("efistub: built the fast engine at ")
    assert engine.choose().engine == "fast"
    second = install.at_install()
    assert fake_build == [engine.binding_version()], "the cached engine was built again"
    assert second == f"efistub: reusing the fast engine at {engine.engine_dir()}"


def test_install_rebuilds_an_engine_of_another_patch_or_one_that_failed_its_self_test(cache, fake_build):
    make_engine(cache, engine.binding_version(), patch="0" * 64)
    install.at_install()
    make_engine(cache, engine.binding_version(), passed=False)
    install.at_install()
    assert fake_build == [engine.binding_version()] * 2


def test_a_failed_build_does_not_fail_the_install_and_the_run_says_why_once(cache, monkeypatch, tmp_path):
    from efistub.engine import build as builder

    def no_cmake(version, jobs, log):
        raise builder.EngineError("cmake is not installed: `pip install cmake` or `apt-get install cmake`")

    monkeypatch.delenv(install.SKIP, raising=False)
    monkeypatch.setattr(builder, "_build", no_cmake)
    notice = install.at_install()
    assert notice == ("efistub: the fast engine was not built (cmake is not installed: `pip install cmake` or "
                      "`apt-get install cmake`); efistub runs on the stock engine until `efistub engine build` "
                      "builds it")
    choice = engine.choose()
    assert choice.engine == "stock" and "its build at install failed: cmake is not installed" in choice.reason
    env = {k: v for k, v in os.environ.items() if k not in ("EFISTUB_ENGINE", "LIBUNICORN_PATH", engine.MARKER)}
    env["XDG_CACHE_HOME"] = str(cache)
    result = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUEST), "--json", str(tmp_path / "r.json")],
                            capture_output=True, text=True, env=env, timeout=120)
    notes = [line for line in result.stderr.splitlines() if "stock unicorn engine" in line]
    assert len(notes) == 1 and "its build at install failed: cmake is not installed" in notes[0], result.stderr
    assert "efistub engine build" in notes[0]
    assert json.loads((tmp_path / "r.json").read_text())["engine"] == "stock"
    asked = subprocess.run([sys.executable, "-m", "efistub", "run", str(GUEST), "--engine", "stock"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert "stock unicorn engine" not in asked.stderr, "a run that asked for the stock engine got the notice"
    # A successful build replaces the note.
    make_engine(cache, engine.binding_version())
    assert engine.choose().engine == "fast"


def test_a_failed_build_of_any_kind_gives_a_one_line_notice(cache, monkeypatch):
    from efistub.engine import build as builder

    def broken(version, jobs, log):
        raise OSError("No space left on device\nand more")

    monkeypatch.delenv(install.SKIP, raising=False)
    monkeypatch.setattr(builder, "_build", broken)
    notice = install.at_install()
    assert "\n" not in notice and "(No space left on device)" in notice
    # The whole message stays in the engine's folder, and the status points there for the rest.
    kept = engine.engine_dir() / engine.FAILED
    assert kept.read_text() == "No space left on device\nand more\n"
    reason = engine.choose().reason
    assert "its build at install failed: No space left on device (the build's last lines: " in reason
    assert str(kept) in reason and "and more" not in reason


def test_the_skip_variable_builds_nothing(cache, fake_build, monkeypatch):
    monkeypatch.setenv(install.SKIP, "0")
    notice = install.at_install()
    assert fake_build == [] and "EFISTUB_ENGINE_BUILD=0" in notice
    assert engine.choose().engine == "stock"


def test_setup_py_runs_the_install_step_without_importing_efistub(cache):
    """setup.py's hook loads efistub/engine on its own, as in pip's build environment (no efistub, no construct)."""
    make_engine(cache, engine.binding_version())
    root = Path(__file__).resolve().parents[1]
    code = ("import sys, runpy, setuptools; setuptools.setup = lambda **kw: None; "
            f"hook = runpy.run_path({str(root / 'setup.py')!r})['fast_engine']; hook(); hook(); "
            "assert 'efistub' not in sys.modules, 'setup.py imported efistub'")
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    env.pop(install.SKIP, None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if line.startswith("efistub: ")]
    assert notices == [f"efistub: reusing the fast engine at {engine.engine_dir()}"], result.stderr


@pytest.mark.skipif(engine.built_engine()[0] is None,
                    reason="no fast engine is built (pip install builds it unless EFISTUB_ENGINE_BUILD=0)")
def test_the_installed_package_loads_the_engine_the_install_built():
    """The real thing: a fresh process of this environment, with no engine asked for, loads the cache's engine."""
    env = {k: v for k, v in os.environ.items() if k not in ("EFISTUB_ENGINE", "LIBUNICORN_PATH", engine.MARKER)}
    code = "import efistub, efistub.engine as e; c = e.loaded(); print(c.engine, c.path)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                            cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["fast", str(engine.engine_dir().resolve())]
