"""MkDocs hook: the CLI reference and the API reference pages, generated at build time (never written to disk).

- ``cli.md``: every command of ``icml17.cli.build_parser()``, found by walking its subparsers, with its usage,
  description and a table of its options, all taken from argparse.
- ``api/<package>.md``: one page per public package, rendered by mkdocstrings from the docstrings of the names
  the package exports (``__all__``; the lazily imported ``_EXPORTS`` of ``icml17.core``, which a static reader
  cannot see, are listed one by one at the modules that define them).

``tests/test_docs.py`` imports this file to check the reference against the parser.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
from collections.abc import Iterator

# package -> one line on what it is (the pages' order in the navigation)
API_PACKAGES = {
    "icml17.maml": "MAML: the engine, models, presets, losses.",
    "icml17.maml.rl": "MAML for reinforcement learning: environments, policy, sampler, TRPO, training.",
    "icml17.pixelcnn": "The full and the parallel multiscale PixelCNN, heads, presets.",
    "icml17.pixelcnn.video": "Action-conditional video models and their sampler.",
    "icml17.sharpness": "Flatness measures, reparametrizations, the invariance checker.",
    "icml17.core": "The shared machinery: training loop, checkpoints, configs, statistics.",
    "icml17.core.curvature": "Exact Hessian-vector products and the spectral estimators built on them.",
    "icml17.core.device": "The one device rule, precision and TF32 settings, out-of-memory messages.",
    "icml17.core.devicecheck": "A stand-in device that catches tensors made on the wrong device, without a GPU.",
}
CLI_MODULES = {"commands", "demo", "plots", "__main__"}  # command-line glue: documented by the CLI reference
SUBPACKAGES_WITH_PAGES = {"icml17.maml": ("rl",), "icml17.pixelcnn": ("video",)}
USAGE_WIDTH = "100"  # argparse wraps usage lines to $COLUMNS: fixed so that the page does not depend on a terminal


# ------------------------------------------------------------------------------------------------ CLI
def commands(
    parser: argparse.ArgumentParser | None = None, prefix: str = "icml17"
) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(full command, its parser, its one-line help) for every command and group, depth first."""
    if parser is None:
        from icml17.cli import build_parser

        parser = build_parser()
        yield prefix, parser, ""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            formatter = parser._get_formatter()
            helps = {a.dest: formatter._expand_help(a) if a.help else "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub, helps.get(name, "")
                yield from commands(sub, f"{prefix} {name}")


def _md(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _anchor(command: str) -> str:
    return command.replace(" ", "-")


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            flags = ", ".join(action.option_strings)
            if action.nargs != 0:
                flags += " " + formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
        else:
            flags = formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
        text = formatter._expand_help(action) if action.help else ""
        if action.choices is not None and not isinstance(action.choices, dict):
            text += f" (one of: {', '.join(map(str, action.choices))})"
        default = action.default
        shown = "" if default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0 else f"`{default}`"
        rows.append(f"| `{_md(flags)}` | {_md(' '.join(text.split()))} | {shown} |")
    return rows


def cli_reference() -> str:
    """The Markdown of the CLI reference page."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = USAGE_WIDTH
    try:
        lines = [
            "# CLI reference",
            "",
            "Generated from the argparse parsers of `icml17` (`icml17.cli.build_parser()`) when the site is "
            "built: it lists every command with the options `--help` shows. The flags most commands share "
            "(`--device`, `--threads`, `--set`, `--run-dir`, `--data-dir`, `--record`) mean the same "
            "everywhere; see [Home](index.md#the-shell-every-command-shares) and [GPUs](gpu.md).",
            "",
        ]
        entries = list(commands())
        groups = [c for c, p, _ in entries if any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]
        leaves = [(c, h) for c, p, h in entries if c not in groups]
        lines += ["| command | what it does |", "|---|---|"]
        lines += [f"| [`{c}`](#{_anchor(c)}) | {_md(h)} |" for c, h in leaves]
        lines.append("")
        for command, parser, help_text in entries:
            if command in groups:
                continue
            lines += [f"## {command} {{ #{_anchor(command)} }}", ""]
            description = parser.description or help_text
            if description:
                lines += [_md(" ".join(description.split())), ""]
            lines += ["```text", parser.format_usage().strip(), "```", ""]
            rows = _option_rows(parser)
            if rows:
                lines += ["| option | meaning | default |", "|---|---|---|", *rows, ""]
        return "\n".join(lines)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


# ------------------------------------------------------------------------------------------------ API
def api_names(package: str) -> list[tuple[str, str]]:
    """(exported name, the identifier mkdocstrings renders it from) for ``package``; empty where the package
    exports nothing (its module docstring and submodules are rendered instead)."""
    module = importlib.import_module(package)
    lazy = getattr(module, "_EXPORTS", None)
    names = list(getattr(module, "__all__", []))
    if lazy:
        return [(name, f"{package}.{lazy[name]}.{name}") for name in names]
    return [(name, f"{package}.{name}") for name in names]


def api_page(package: str) -> str:
    """The Markdown of one API page."""
    names = api_names(package)
    module = importlib.import_module(package)
    # the module docstring opens the page; the one-line summary only stands in for a missing one
    lines = [f"# `{package}`", ""] + ([] if (module.__doc__ or "").strip() else [API_PACKAGES[package], ""])
    if not names and not hasattr(module, "__all__"):
        if getattr(module, "__path__", None) is None:  # a plain module: its public names
            return "\n".join(
                [
                    *lines,
                    f"::: {package}",
                    "    options:",
                    "      show_root_heading: false",
                    "      show_root_toc_entry: false",
                    "",
                ]
            )
        # a package without an export list: its docstring, then each library module (not the CLI glue)
        lines += [*_docstring_only(package), ""]
        for sub in sorted(m.name for m in pkgutil.iter_modules(module.__path__)):
            if sub in CLI_MODULES or sub.startswith("_") or sub in SUBPACKAGES_WITH_PAGES.get(package, ()):
                continue
            lines += [
                f"::: {package}.{sub}",
                "    options:",
                "      show_root_heading: true",
                "      heading_level: 2",
                "",
            ]
        return "\n".join(lines)
    lines += [*_docstring_only(package), ""]
    for name, identifier in names:  # each exported name as a section of its own, documented or not
        lines += [
            f"::: {identifier}",
            "    options:",
            "      show_root_heading: true",
            "      show_root_full_path: false",
            "      heading_level: 2",
            f"      toc_label: {name}",
            "",
        ]
    return "\n".join(lines)


def _docstring_only(identifier: str) -> list[str]:
    return [
        f"::: {identifier}",
        "    options:",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "      members: false",
    ]


def api_path(package: str) -> str:
    return f"api/{package}.md"


# ------------------------------------------------------------------------------------------------ hook
def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, "cli.md", content=cli_reference()))
    for package in API_PACKAGES:
        files.append(File.generated(config, api_path(package), content=api_page(package)))
    return files
