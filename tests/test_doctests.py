"""The ``Examples:`` sections of the library's docstrings run as doctests, so that no example can drift from the API.

Every module under ``src/icml17`` whose source holds an example (``>>>``) is collected, so examples added later
are run without touching this file. The main entry points must carry one (:data:`ENTRY_POINTS`). Each example
is meant to take well under a second on a CPU; the first ``torch.func`` transform of a process imports
``torch._dynamo`` (seconds), which is paid once here before the examples run.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "icml17"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# (module, name) of the entry points a new user meets first; each docstring must hold a runnable example
ENTRY_POINTS = [
    ("icml17.maml", "MAML"),
    ("icml17.maml", "adapt"),
    ("icml17.maml", "TaskBatch"),
    ("icml17.core", "run_loop"),
    ("icml17.maml.rl", "meta_iteration"),
    ("icml17.pixelcnn", "MultiscalePixelCNN"),
    ("icml17.sharpness", "measure"),
    ("icml17.sharpness", "AlphaScaling"),
    ("icml17.sharpness", "PerNeuronScaling"),
    ("icml17.sharpness", "BatchNormScaling"),
    ("icml17.sharpness", "InputMap"),
    ("icml17.pixelcnn.video", "VideoModel"),
    ("icml17.core.curvature", "HessianOperator"),
    ("icml17.core.curvature", "lanczos"),
]


def modules_with_examples() -> list[str]:
    """Dotted names of the modules whose source has a ``>>>`` line (read as text: nothing else is imported)."""
    names = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__main__.py" or ">>>" not in path.read_text():
            continue
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.fixture(scope="module", autouse=True)
def _functorch_imported():
    """Pay the one-time import of torch._dynamo (the first torch.func transform does it) before any example."""
    import torch._dynamo  # noqa: F401


def test_entry_point_modules_are_collected():
    names = modules_with_examples()
    assert "icml17.maml.engine" in names and "icml17.sharpness.transforms" in names, names


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_examples_run(module_name: str):
    module = importlib.import_module(module_name)
    tests = [t for t in doctest.DocTestFinder().find(module, module_name) if t.examples]
    assert tests, f"{module_name} has '>>>' in its source but no docstring example was found"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    failures = []
    for test in tests:
        out: list[str] = []
        result = runner.run(test, out=out.append, clear_globs=True)
        if result.failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("package", "name"), [pytest.param(p, n, id=f"{p}.{n}") for p, n in ENTRY_POINTS])
def test_entry_point_has_an_example(package: str, name: str):
    obj = getattr(importlib.import_module(package), name)
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc, f"{package}.{name} has no runnable example in its docstring (an Examples: section)"
    assert re.search(r"^\s*Examples:\s*$", doc, re.M), f"{package}.{name}: put its example under 'Examples:'"


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_examples_sit_under_an_examples_heading(module_name: str):
    """The API reference (griffe, Google style) reads doctests as code under 'Examples:' only; under 'Example:'
    they become an admonition whose '>>>' lines render as nested quotes."""
    module = importlib.import_module(module_name)
    wrong = [
        t.name
        for t in doctest.DocTestFinder().find(module, module_name)
        if t.examples and not re.search(r"^\s*Examples:\s*$", t.docstring or "", re.M)
    ]
    assert not wrong, f"put these examples under an 'Examples:' heading: {wrong}"
