"""Headless plotting helpers and the demo report (Markdown + HTML with PNG figures)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def image_grid(images: np.ndarray, path: str | Path, nrow: int | None = None, pad: int = 2) -> Path:
    """Save a grid PNG of images shaped (N, H, W), (N, 1, H, W) or (N, 3, H, W), uint8 or floats in [0, 1]."""
    from PIL import Image

    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.dtype != np.uint8:
        x = (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)
    n, c, h, w = x.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    img = grid[0] if c == 1 else grid.transpose(1, 2, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


@dataclass
class Section:
    title: str
    text: str = ""  # Markdown
    images: list[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)
    failed: bool = False
    seconds: float | None = None


PAGE_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; color: #222; }
h1 { border-bottom: 2px solid #ddd; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 1rem 0; } th, td { border: 1px solid #ccc; padding: .3rem .7rem; }
th { background: #f4f4f4; } td { text-align: right; } td:first-child { text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; min-width: 20rem; image-rendering: pixelated;
       border: 1px solid #eee; } figcaption { color: #555; font-size: .9rem; }
code { background: #f6f6f6; padding: 0 .2rem; } .failed { color: #b00; } .ok { color: #080; }
"""


@dataclass
class Report:
    """Collects sections (Markdown text and figures) and writes ``report.md`` and ``report.html`` into ``root``.

    The HTML page is rendered from the same Markdown by the ``markdown`` package (tables, headings, code), with
    figures at a readable size and their captions. Raw HTML in the text is escaped, not passed through, so text in
    angle brackets (``<data-dir>``, ``<Alphabet>``, an error message) shows as written.
    """

    root: Path
    title: str = "icml17 report"
    intro: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(
        self,
        title: str,
        text: str = "",
        images: list[tuple[str | Path, str]] | None = None,
        *,
        failed: bool = False,
        seconds: float | None = None,
    ) -> Section:
        rel = [(str(Path(p).resolve().relative_to(self.root.resolve())), cap) for p, cap in images or []]
        section = Section(title, text, rel, failed, seconds)
        self.sections.append(section)
        return section

    @property
    def failures(self) -> list[str]:
        return [s.title for s in self.sections if s.failed]

    def markdown(self) -> str:
        md = [f"# {self.title}\n", self.intro + "\n" if self.intro else ""]
        if self.failures:
            md.append(f"**Failed sections: {', '.join(self.failures)}** (details below).\n")
        for s in self.sections:
            took = f" ({s.seconds:.0f} s)" if s.seconds is not None else ""
            md.append(f"## {'FAILED: ' if s.failed else ''}{s.title}{took}\n\n{s.text}\n")
            for p, cap in s.images:
                md.append(f"![{cap}]({p})\n\n*{cap}*\n")
        return "\n".join(md)

    def html(self) -> str:
        import markdown

        body = []
        md = markdown.Markdown(extensions=["tables", "fenced_code", "sane_lists"])
        md.preprocessors.deregister("html_block")  # text, not markup: "<data-dir>" is escaped, never swallowed
        md.inlinePatterns.deregister("html")
        body.append(f"<h1>{html.escape(self.title)}</h1>")
        if self.intro:
            body.append(md.reset().convert(self.intro))
        if self.failures:
            body.append(
                f"<p class='failed'><strong>Failed sections: {html.escape(', '.join(self.failures))}</strong></p>"
            )
        for s in self.sections:
            took = f" <small>({s.seconds:.0f} s)</small>" if s.seconds is not None else ""
            status = "<span class='failed'>FAILED: </span>" if s.failed else ""
            body.append(f"<h2>{status}{html.escape(s.title)}{took}</h2>")
            body.append(md.reset().convert(s.text))
            for p, cap in s.images:
                body.append(
                    f"<figure><img src='{html.escape(p)}' alt='{html.escape(cap)}'>"
                    f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                )
        return (
            f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{PAGE_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "report.md").write_text(self.markdown())
        (self.root / "report.html").write_text(self.html())
        return self.root / "report.html"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (rendered as an HTML table in the report)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
