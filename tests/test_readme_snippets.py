"""The README's Python snippets, extracted from README.md and run as written (the sharpness one on the synthetic
MNIST and a smaller subset), so that the README cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippet(marker: str) -> str:
    """The one ```python block of README.md that contains ``marker``."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if marker in b]
    assert len(blocks) == 1, f"expected one README python block containing {marker!r}, found {len(blocks)}"
    return blocks[0]


def _run(code: str, replacements: dict[str, str] | None = None) -> dict:
    for old, new in (replacements or {}).items():
        assert old in code, f"the README snippet no longer contains {old!r}; update this test"
        code = code.replace(old, new)
    namespace: dict = {"__name__": "readme_snippet"}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    return namespace


def test_maml_snippet():
    ns = _run(_snippet("from icml17.maml import MAML"))
    assert ns["metrics"].loss.shape == (25,)
    curve = ns["curve"]
    assert curve.shape == (100, 11) and torch.isfinite(curve).all()


def test_pixelcnn_snippet():
    torch.manual_seed(0)
    ns = _run(_snippet("from icml17.pixelcnn import MultiscalePixelCNN"))
    lp, s, sr = ns["lp"], ns["s"], ns["sr"]
    assert lp.total.shape == (4,) and lp.terms["scale2/group4"].shape == (4,) and lp.bits_per_dim().shape == (4,)
    assert s.images.shape == (4, 1, 28, 28) and s.evaluations == 151
    assert [level.shape[-1] for level in s.levels] == [7, 14, 28]
    assert sr.images.shape == (4, 1, 28, 28) and sr.evaluations == 102


def test_sharpness_snippet(synthetic_data_dir):
    # The snippet as written, on the synthetic MNIST and (for time) 128 examples and 16 probes.
    ns = _run(_snippet("from icml17.sharpness.data import mnist_subset"),
              {'"../shared/data"': repr(str(synthetic_data_dir)), "n=512": "n=128", "n_probes=64": "n_probes=16"})
    top, tr, out, report = ns["top"], ns["tr"], ns["out"], ns["report"]
    assert ns["x"].shape == (128, 1, 28, 28)
    assert len(top.eigenvalues) == 3 and top.eigenvalues[0] >= top.eigenvalues[1] >= top.eigenvalues[2]
    assert tr.n_hvp == 16 and out["mode"] == "eval"
    assert abs(out["lambda_max"] - top.eigenvalues[0]) / top.eigenvalues[0] < 1e-2
    assert report.spread > 10 and all(r.outputs_preserved for r in report.rows)
    assert "spread" in report.table()
