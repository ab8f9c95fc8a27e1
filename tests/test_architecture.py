"""The house rules of docs/ARCHITECTURE.md, checked on the code as it is.

import-linter (``lint-imports``, run by ``make test``) enforces the layers, the torch-free runtime
and the absence of import circles; these tests add what its contracts cannot say: the runtime's
*complete* list of third-party imports, no module reaching into another's private names, and
that the contracts themselves hold.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
# `edgegen` is a namespace package over two distributions; these are its portions
PORTIONS = ("edgegen.cli", "edgegen.benchmarks", "edgegen.serve", "edgegen.export",
            "edgegen.quality", "edgegen.training", "edgegen.models", "edgegen.core",
            "edgegen.runtime")
SOURCE_ROOTS = (ROOT / "src", ROOT / "runtime" / "src")
RUNTIME_MAY_IMPORT = {"numpy", "onnxruntime", "jsonschema"}  # besides the stdlib and itself
# imported inside functions only, when asked for (declared in pyproject.toml): model_signing
# when a public key is given, openvino when the ``openvino`` provider is asked for, the
# TensorRT-RTX plugin package when ``tensorrt-rtx`` is
RUNTIME_OPTIONAL = {"edgegen.runtime.signature": {"model_signing"},
                    "edgegen.runtime.ov_session": {"openvino"},
                    "edgegen.runtime.plugin_ep": {"onnxruntime_ep_nv_tensorrt_rtx"}}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PORTIONS, include_external_packages=True, cache_dir=None)


def test_the_runtime_imports_only_numpy_onnxruntime_and_the_standard_library(
        graph: grimp.ImportGraph) -> None:
    outside = set()
    for module in graph.find_descendants("edgegen.runtime") | {"edgegen.runtime"}:
        for imported in graph.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            if imported.startswith("edgegen.runtime") or top in sys.stdlib_module_names:
                continue
            if top not in RUNTIME_MAY_IMPORT | RUNTIME_OPTIONAL.get(module, set()):
                outside.add(f"{module} -> {imported}")
    assert not outside, sorted(outside)


def test_the_openvino_exception_is_lazy() -> None:
    """``ov_session`` imports openvino inside functions only, so importing the runtime (or the
    module itself) never imports openvino."""
    code = ("import sys, edgegen.runtime, edgegen.runtime.providers, edgegen.runtime.ov_session;"
            "print('openvino' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_import_circle_anywhere_in_the_package(graph: grimp.ImportGraph) -> None:
    """Module by module (lazy imports inside functions included), not only between siblings."""
    modules = {m for m in graph.modules if m.startswith("edgegen")}
    for module in sorted(modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported in modules and imported != module:
                back = graph.find_shortest_chain(importer=imported, imported=module)
                assert back is None, f"circle: {module} -> {' -> '.join(back or [])}"


def _python_files() -> list[Path]:
    """The source files of both distributions."""
    return sorted(p for root in SOURCE_ROOTS for p in (root / "edgegen").rglob("*.py"))


def test_the_tree_has_no_symlinks_and_every_portion_once() -> None:
    """Every file exists once: no symbolic links outside .git, .venv and node_modules, and each
    portion of the namespace lives in exactly one of the two source roots."""
    skip = {".git", ".venv", "node_modules"}
    links = [str(Path(d, n).relative_to(ROOT)) for d, dirs, files in os.walk(ROOT)
             if not skip & set(Path(d).relative_to(ROOT).parts)
             for n in dirs + files if Path(d, n).is_symlink()]
    assert not links, links
    for portion in PORTIONS:
        homes = [r for r in SOURCE_ROOTS if (r / portion.replace(".", "/")).is_dir()]
        assert len(homes) == 1, (portion, homes)
    assert not (ROOT / "src" / "edgegen" / "__init__.py").exists()  # a namespace package
    assert not (ROOT / "runtime" / "src" / "edgegen" / "__init__.py").exists()


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgegen"):
                private = [a.name for a in node.names if a.name.startswith("_")
                           and not a.name.startswith("__")]
                if private:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports "
                                     f"{', '.join(private)} from {node.module}")
    assert not offenders, offenders


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e .[dev])")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
