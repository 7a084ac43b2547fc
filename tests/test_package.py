"""The package skeleton: a light import, the compiled core, the dispatcher, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import grit_fast
from grit_fast import _dispatch
from grit_fast.cli import COMMANDS, main
from tests.conftest import REQUIRE_FAST


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )


def test_import_is_light():
    """``import grit_fast`` loads none of the heavy libraries (what made it slow), whatever the
    machine's speed."""
    out = _run_python(
        "import sys; import grit_fast\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton', 'transformers', 'numpy', 'PIL'))\n"
        "print(heavy)"
    )
    assert out.stdout.strip() == "[]", f"import grit_fast pulled in {out.stdout}"


def test_no_module_shadows_a_public_name():
    """After every submodule is imported (as the CLI and the demo do), each public name is still
    the object it names, not a module of the same name."""
    import importlib
    import pkgutil
    import types

    for found in pkgutil.walk_packages(grit_fast.__path__, "grit_fast."):
        if found.name.endswith(("__main__", "_kernels")):
            continue
        importlib.import_module(found.name)
    for name in grit_fast.__all__:
        value = getattr(grit_fast, name)
        assert not isinstance(value, types.ModuleType), f"grit_fast.{name} is a module"
    assert callable(grit_fast.evaluate) and callable(grit_fast.info)
    assert issubclass(grit_fast.ConfigError, ValueError)
    assert set(grit_fast.__all__) <= set(dir(grit_fast))


def test_compiled_core_is_built():
    core = _dispatch.compiled_module()
    if core is None:
        if REQUIRE_FAST:
            pytest.fail(_dispatch.compiled_error())
        pytest.skip(f"compiled core unavailable: {_dispatch.compiled_error()}")
    assert core.__version__ == grit_fast.__version__
    assert core.default_num_threads() >= 1
    assert (
        _run_python(
            "import grit_fast._C as c; print(c.default_num_threads())", GRIT_FAST_NUM_THREADS="3"
        ).stdout.strip()
        == "3"
    )


def test_backend_context_overrides_environment(monkeypatch):
    monkeypatch.setenv(_dispatch.BACKEND_ENV, "reference")
    assert _dispatch.mode() == "reference"
    with grit_fast.backend("fast"):
        assert _dispatch.mode() == "fast"
    assert _dispatch.mode() == "reference"


def test_bad_backend_names_the_choices(monkeypatch):
    monkeypatch.setenv(_dispatch.BACKEND_ENV, "turbo")
    with pytest.raises(ValueError, match=r"GRIT_FAST_BACKEND='turbo'.*auto"):
        _dispatch.mode()
    with pytest.raises(ValueError, match="expected one of"), grit_fast.backend("gpu"):
        pass


def test_dispatch_rules(monkeypatch):
    monkeypatch.setitem(_dispatch.FAST_PATHS, "_test_triton_op", _dispatch.TRITON)
    monkeypatch.setitem(_dispatch.FAST_PATHS, "_test_compiled_op", _dispatch.COMPILED)
    cpu = _dispatch._DeviceOnly("cpu")
    with _dispatch.backend("reference"):
        assert not _dispatch.use_fast("_test_compiled_op")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with _dispatch.backend("auto"):
        assert not _dispatch.use_fast("_test_triton_op", cpu)
    with (
        _dispatch.backend("fast"),
        pytest.raises(_dispatch.FastPathUnavailable, match="TRITON_INTERPRET"),
    ):
        _dispatch.use_fast("_test_triton_op", cpu)
    if _dispatch.triton_installed():
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        with _dispatch.backend("auto"):
            assert _dispatch.use_fast("_test_triton_op", cpu)
            assert _dispatch.use_fast("_test_triton_op", _dispatch._DeviceOnly("cuda"))
    mixed = (cpu, _dispatch._DeviceOnly("cuda"))
    assert "several device types" in _dispatch.fast_path_reason("_test_triton_op", *mixed)
    with pytest.raises(KeyError, match="not registered"):
        _dispatch.use_fast("no_such_op")


def test_cli_version_and_info(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert grit_fast.__version__ in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["grit_fast"] == grit_fast.__version__
    assert report["compiled_core"]["available"] == (_dispatch.compiled_module() is not None)
    for op, where in report["ops"].items():
        assert set(where) == {"cpu", "cuda"}, op
    assert main(["info"]) == 0
    assert "compiled core" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "grit_fast", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"grit-fast {grit_fast.__version__}"


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_help_lists_its_own_options(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: grit-fast {command}")
    # Beyond -h/--help, every command but `info` has options of its own (info has --json).
    options = {word.strip(",[]") for word in out.split() if word.startswith("--")}
    assert options - {"--help"}, out


def test_unknown_command_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    assert exc.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def test_describe_names_each_ops_path_on_cpu(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with _dispatch.backend("auto"):
        assert _dispatch.describe("fused_linear_grpo_loss", "cpu").startswith("chunked torch (")
        assert _dispatch.describe("grpo_loss", "cpu").startswith("reference (")
        if _dispatch.triton_installed():
            assert _dispatch.describe("grpo_loss", "cuda") == "triton"
    with _dispatch.backend("reference"):
        assert _dispatch.describe("fused_linear_grpo_loss", "cpu").startswith("reference (forced")
