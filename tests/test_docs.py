"""The documentation: the site builds with warnings as errors, its CLI reference lists every command of the parser,
its results pages are what the records give, README stays a short guide, and neither speaks of how the project
was developed."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
HOOK = DOCS / "_hooks" / "reference.py"
README_MAX_LINES, README_MAX_BYTES = 200, 20 * 1024
# references to the project's own history or to files that are not in the repository
HISTORY = re.compile(r"stop [0-9]+|[Ss]ession [0-9]+|notes/maml|notes/sharpness|DESIGN\.md")


def _hook():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once with --strict into a temporary folder (mkdocs fails on the first warning)."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]' (make install does)")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="mkdocs-material is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert "WARNING" not in proc.stderr, proc.stderr[-6000:]
    return out


def test_site_builds_strictly_with_every_page(site):
    pages = [
        "index.html",
        "cli/index.html",
        "benchmarks/index.html",
        "gpu/index.html",
        "developer/index.html",
        *(f"guides/{g}/index.html" for g in ("maml", "maml-rl", "pixelcnn", "sharpness")),
        *(f"results/{s}/index.html" for s in ("maml", "maml-rl", "pixelcnn", "sharpness")),
    ]
    pages += [f"api/{package}/index.html" for package in _hook().API_PACKAGES]
    missing = [p for p in pages if not (site / p).is_file()]
    assert not missing, missing


def test_api_pages_render_every_exported_name(site):
    hook = _hook()
    for package in hook.API_PACKAGES:
        html = (site / "api" / package / "index.html").read_text()
        assert 'class="doc doc-heading"' in html or 'class="doc doc-object' in html, package
        for name, identifier in hook.api_names(package):
            assert f'id="{identifier}"' in html, f"{package}.{name} ({identifier}) is not on its API page"


def test_cli_reference_lists_every_command_of_the_parser(site):
    import argparse

    from icml17.cli import build_parser

    hook = _hook()
    found = []  # walk the parser here, independently of the hook's own walk

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append((prefix, parser))
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, f"{prefix} {name}")

    walk(build_parser(), "icml17")
    assert len(found) > 20
    text = hook.cli_reference()
    html = (site / "cli" / "index.html").read_text()
    for command, parser in found:
        assert f"\n## {command} {{ #{command.replace(' ', '-')} }}\n" in text, command
        assert f'id="{command.replace(" ", "-")}"' in html, command
        section = text.split(f"## {command} ", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in section, f"{command}: {flag} is missing from the CLI reference"


def test_results_pages_are_what_the_records_give(tmp_path):
    """Regenerate every page into a copy of docs/ and compare: `icml17 results` has been run after the last record
    changed, and nobody edited a generated block by hand."""
    from icml17.core.results import read_records
    from icml17.core.seeds import family
    from icml17.tables import PAGES, write_pages

    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy, ignore=shutil.ignore_patterns("_hooks"))
    written = write_pages(copy, ROOT / "results")
    stale = [str(page.relative_to(copy)) for page, changed in written if changed]
    assert not stale, f"run `icml17 results`: these pages differ from the records: {stale}"
    for page, _ in written:
        assert page.read_text() == (DOCS / page.relative_to(copy)).read_text()
    for system in PAGES:
        text = (DOCS / "results" / f"{system}.md").read_text()
        for r in read_records(ROOT / "results"):
            if r.get("system") == system and "experiment" in r:
                assert f"| {r['experiment']} |" in text, f"{r['experiment']} missing from results/{system}.md"
                assert f"### {family(r['experiment'])} " in text


def test_weights_tables_are_what_the_manifest_gives(tmp_path):
    from icml17.tables import WEIGHTS_START, update_weights_table

    for page in (README, DOCS / "index.md"):
        assert WEIGHTS_START in page.read_text(), page
        copy = tmp_path / page.name
        copy.write_text(page.read_text())
        assert not update_weights_table(copy, ROOT), f"run `icml17 results`: the weights table of {page} is stale"


def test_readme_is_a_short_guide():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, f"README.md has {len(text.splitlines())} lines"
    assert len(text.encode()) <= README_MAX_BYTES, f"README.md has {len(text.encode())} bytes"
    assert "make test" in text  # CI runs .ci/run, which runs `make test`


def test_user_facing_examples_name_no_private_data_folder():
    """Examples say DATA (a dataset folder) or rely on the default; the records' own commands may say more."""
    for page in [README, *DOCS.rglob("*.md")]:
        assert "--data-dir ../shared" not in _hand_written(page.read_text()), page


def test_readme_and_docs_links_point_at_files_that_exist():
    generated = {"cli.md"} | {f"api/{p}.md" for p in _hook().API_PACKAGES}
    for page in [README, *DOCS.rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (page.parent / target).resolve()
            if resolved.is_relative_to(DOCS.resolve()) and str(resolved.relative_to(DOCS.resolve())) in generated:
                continue
            assert resolved.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


def _hand_written(text: str) -> str:
    """The text outside generated blocks (those quote the records verbatim)."""
    return re.sub(r"<!-- (results|headline):start -->.*?<!-- (results|headline):end -->", "", text, flags=re.S)


def test_no_development_history_in_readme_or_docs():
    pages = [README, ROOT / "NOTES.md", ROOT / "mkdocs.yml", HOOK, *DOCS.rglob("*.md")]
    for page in pages:
        for line in _hand_written(page.read_text()).splitlines():
            assert not HISTORY.search(line), f"{page.relative_to(ROOT)}: {line.strip()}"
    assert not HISTORY.search(_hook().cli_reference())
