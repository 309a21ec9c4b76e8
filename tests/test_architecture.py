"""Architecture rules of icml17, checked on the import graph parsed from the sources (nothing is imported).

The modules are the ``.py`` files under ``src/icml17`` as they are on disk. Every ``import`` and
``from ... import`` statement counts, at module level or inside a function: a lazy import still couples the two
modules, it only hides the coupling from import time. ``from package import name`` is an edge to
``package.name`` when that is a module, else to the package. Imports made from strings
(``importlib.import_module``, used by the CLI's and the demo's command tables) are not seen.

Rules: (a) no import cycles; (b) the foundation (``icml17.core``, ``icml17.data``) never imports a system or an
entry point; (c) the systems (maml, pixelcnn, sharpness) never import one another; (d) no library module
imports the CLI (only ``__main__`` entry points may); (e) no library module imports argparse: only the command
layer (:data:`CLI_LAYER`) parses flags, the library takes plain values.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "icml17"
SYSTEMS = ("icml17.maml", "icml17.pixelcnn", "icml17.sharpness")
FOUNDATION = ("icml17.core", "icml17.data")
APPLICATION = (*SYSTEMS, "icml17.cli", "icml17.cli_args", "icml17.cli_listing", "icml17.demo")
CLI = "icml17.cli"

# The command layer, the only modules that may import argparse, each with the reason. Every other module is library
# code: it takes plain values (paths, numbers, configs), so it can be called from Python and tested without a
# command line, and a flag's name never leaks into it.
CLI_LAYER = {
    "icml17.cli": "the one command: builds the parser and dispatches to the command modules",
    "icml17.cli_args": "the flags, argparse types and --set parsing every command shares",
    "icml17.cli_listing": "the command lists `icml17 <system> --help` prints without importing the system",
    "icml17.tables": "registers `icml17 results` (its parser and handlers; the pages are written by library code)",
    "icml17.demo": "registers `icml17 demo`; its run_demo() takes plain values",
}
CLI_LAYER_SUFFIXES = {
    ".commands": "each package's commands.py registers its subcommands and only parses and calls its package",
    ".__main__": "`python -m` entry points hand their argv to the CLI",
}

# Import edges (importer, imported) that break a rule today, in files being rewritten by others: each rule's
# test tolerates exactly these and fails once one is fixed, so that it is taken off this list. Empty it.
KNOWN_OFFENDERS: dict[str, set[tuple[str, str]]] = {
    "cycles": set(),
    "foundation": set(),
    "systems": set(),
    "cli": set(),
    "argparse": set(),
}


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``), for every source file of the package."""
    out = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def _targets(node: ast.Import | ast.ImportFrom, module: str, package: bool, known: set[str]) -> set[str]:
    """The package's modules that one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & known
    if node.level:  # relative: up from the module's own package
        base = module.split(".") if package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    names = {f"{source}.{alias.name}" for alias in node.names}
    return {n if n in known else source for n in names} & known


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file (itself excluded)."""
    mods = modules()
    known = set(mods)
    graph = {}
    for name, (path, package) in mods.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(node, name, package, known)
        graph[name] = edges - {name}
    return graph


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The graph's strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def _check(rule: str, violations: set[tuple[str, str]], what: str) -> None:
    known = KNOWN_OFFENDERS[rule]
    new = sorted(violations - known)
    fixed = sorted(known - violations)
    assert not new, f"{what}:\n" + "\n".join(f"  {a} imports {b}" for a, b in new)
    assert not fixed, f"no longer violated, take them off KNOWN_OFFENDERS[{rule!r}]:\n" + "\n".join(
        f"  {a} -> {b}" for a, b in fixed
    )


def test_the_graph_covers_the_package_and_sees_lazy_imports():
    graph = import_graph()
    assert {
        "icml17.cli",
        "icml17.core.curvature",
        "icml17.core.curvature.operator",
        "icml17.pixelcnn.factored",
        "icml17.sharpness.measures",
        "icml17.maml.engine",
    } <= set(graph)
    assert "icml17.core.curvature" in graph["icml17.sharpness.measures"]
    assert "icml17.core.curvature.products" in graph["icml17.core.curvature.operator"]  # absolute submodule
    # a function-level import and a relative one, on a toy tree (the resolver, not the package, is tested)
    tree = ast.parse("def f():\n    from .b import g\n    from . import c\n")
    known = {"p", "p.a", "p.b", "p.c"}
    found = set().union(
        *(_targets(n, "p.a", False, known) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
    )
    assert found == {"p.b", "p.c"}
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles():
    graph = import_graph()
    components = strongly_connected(graph)
    violations = {(a, b) for comp in components for a in comp for b in graph[a] if b in comp}
    _check("cycles", violations, "import cycles (edges inside each cycle; lazy imports count too)")


def test_core_and_data_import_no_system_nor_entry_point():
    graph = import_graph()
    violations = {
        (a, b)
        for a, deps in graph.items()
        if any(_within(a, f) for f in FOUNDATION)
        for b in deps
        if any(_within(b, app) for app in APPLICATION)
    }
    _check("foundation", violations, "icml17.core / icml17.data must not import a system, the CLI or the demo")


def test_systems_do_not_import_each_other():
    graph = import_graph()
    violations = {
        (a, b)
        for a, deps in graph.items()
        for b in deps
        for sa in SYSTEMS
        for sb in SYSTEMS
        if sa != sb and _within(a, sa) and _within(b, sb)
    }
    _check("systems", violations, "maml, pixelcnn and sharpness must not import one another")


def test_no_library_module_imports_the_cli():
    graph = import_graph()
    # ``python -m`` entry points exist to call the CLI; every other module is library code
    entry_points = {m for m in graph if m == CLI or m.endswith(".__main__")}
    violations = {(a, b) for a, deps in graph.items() if a not in entry_points for b in deps if _within(b, CLI)}
    _check("cli", violations, "library modules must not import icml17.cli")


def external_imports(path: Path) -> set[str]:
    """The top-level names of the modules outside the package that ``path`` imports anywhere in its file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {ROOT}


def in_cli_layer(module: str) -> bool:
    return module in CLI_LAYER or any(module.endswith(suffix) for suffix in CLI_LAYER_SUFFIXES)


def test_no_library_module_imports_argparse():
    mods = modules()
    assert set(CLI_LAYER) <= set(mods), "CLI_LAYER names a module that does not exist: update it"
    violations = {
        (name, "argparse")
        for name, (path, _) in mods.items()
        if not in_cli_layer(name) and "argparse" in external_imports(path)
    }
    _check(
        "argparse",
        violations,
        "library modules must not import argparse (parse in the command layer, CLI_LAYER, and pass plain values)",
    )


def test_the_argparse_rule_sees_lazy_and_from_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os.path\ndef f():\n    from argparse import Namespace\nfrom . import x\n")
    assert external_imports(source) == {"os", "argparse"}
    assert in_cli_layer("icml17.maml.rl.commands") and in_cli_layer("icml17.pixelcnn.__main__")
    assert not in_cli_layer("icml17.core.runs") and not in_cli_layer("icml17.maml.evaluate")
