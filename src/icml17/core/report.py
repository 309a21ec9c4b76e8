"""Headless plotting helpers and the demo report (Markdown + HTML with PNG figures)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig: "plt.Figure", path: str | Path, dpi: int = 120) -> Path:
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
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    img = grid[0] if c == 1 else grid.transpose(1, 2, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


@dataclass
class Section:
    title: str
    text: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)


@dataclass
class Report:
    """Collects sections and writes ``report.md`` and ``report.html`` into ``root``."""

    root: Path
    title: str = "icml17 report"
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, text: str = "", images: list[tuple[str | Path, str]] | None = None) -> Section:
        rel = [(str(Path(p).resolve().relative_to(self.root.resolve())), cap) for p, cap in images or []]
        section = Section(title, text, rel)
        self.sections.append(section)
        return section

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        md = [f"# {self.title}\n"]
        page = [f"<html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title></head><body>",
                f"<h1>{html.escape(self.title)}</h1>"]
        for s in self.sections:
            md.append(f"## {s.title}\n\n{s.text}\n")
            page.append(f"<h2>{html.escape(s.title)}</h2><pre>{html.escape(s.text)}</pre>")
            for p, cap in s.images:
                md.append(f"![{cap}]({p})\n\n*{cap}*\n")
                page.append(f"<figure><img src='{html.escape(p)}' style='max-width:100%'>"
                            f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        page.append("</body></html>")
        (self.root / "report.md").write_text("\n".join(md))
        (self.root / "report.html").write_text("\n".join(page))
        return self.root / "report.md"
