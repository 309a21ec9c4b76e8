"""The Python snippets of README.md and of the documentation's guides, run as written (with smaller sizes where a
test must be quick, and the synthetic MNIST where a snippet reads a dataset), so that neither can drift from the
API. Every ```python block of these files must be run by one test here (checked below)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# file -> number of ```python blocks it has; each is run by a test below
SNIPPET_FILES = {
    README: 4,
    DOCS / "guides" / "maml.md": 2,
    DOCS / "guides" / "pixelcnn.md": 1,
    DOCS / "guides" / "sharpness.md": 1,
    DOCS / "gpu.md": 1,
}


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def _snippet(marker: str, path: Path = README) -> str:
    """The one ```python block of ``path`` that contains ``marker``."""
    blocks = [b for b in _blocks(path) if marker in b]
    assert len(blocks) == 1, f"expected one python block of {path.name} containing {marker!r}, found {len(blocks)}"
    return blocks[0]


def _run(code: str, replacements: dict[str, str] | None = None, path: Path = README) -> dict:
    for old, new in (replacements or {}).items():
        assert old in code, f"the snippet of {path.name} no longer contains {old!r}; update this test"
        code = code.replace(old, new)
    namespace: dict = {"__name__": "readme_snippet"}
    exec(compile(code, str(path), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def test_every_python_block_is_run_here():
    for path, count in SNIPPET_FILES.items():
        assert len(_blocks(path)) == count, f"{path.name} has {len(_blocks(path))} python blocks; run each here"
    others = [p for p in DOCS.rglob("*.md") if p not in SNIPPET_FILES and _blocks(p)]
    assert not others, f"python blocks that no test runs: {others}"


# ------------------------------------------------------------------------------------------------ README
def test_maml_on_your_own_module_and_tensors():
    torch.manual_seed(0)
    ns = _run(_snippet("from icml17.maml import MAML"))
    assert ns["metrics"].loss.shape == (25,) and torch.isfinite(ns["metrics"].loss).all()
    curve = ns["curve"]
    assert curve.shape == (25, 6) and torch.isfinite(curve).all()
    assert all(p.grad is not None for p in ns["maml"].parameters() if p.requires_grad)


def test_one_maml_rl_meta_iteration():
    # the preset's sizes take minutes on a CPU: 2 tasks of 2 x 100 time steps each
    ns = _run(
        _snippet("meta_iteration("),
        {
            'cfg = make_config("point-nav")': (
                'cfg = make_config("point-nav", overrides={"meta_batch": 2, "rollouts": 2})'
            )
        },
    )
    m = ns["m"]
    assert {"return_pre", "return_post", "surrogate_before"} <= set(m)
    assert all(torch.isfinite(torch.tensor(float(m[k]))) for k in ("return_pre", "return_post"))


def test_pixelcnn_trained_and_sampled_on_your_own_tensors():
    torch.manual_seed(0)
    ns = _run(_snippet("model.sample(4)"), {"range(20)": "range(2)"})
    assert ns["bpd"].shape == (8,) and torch.isfinite(ns["bpd"]).all()
    assert ns["s"].images.shape == (4, 1, 28, 28)
    assert ns["s"].images.min() >= 0 and ns["s"].images.max() < 256
    assert torch.isfinite(ns["loss"])


def test_sharpness_of_your_own_model():
    torch.manual_seed(0)
    ns = _run(_snippet("from icml17.sharpness import AlphaScaling, check_invariance, measure"))
    top, out, report = ns["top"], ns["out"], ns["report"]
    assert len(top.eigenvalues) == 3 and top.eigenvalues[0] >= top.eigenvalues[1] >= top.eigenvalues[2]
    assert {"lambda_max", "epsilon", "adaptive_lambda_max"} <= set(out) and out["mode"] == "eval"
    assert abs(out["lambda_max"] - top.eigenvalues[0]) / abs(top.eigenvalues[0]) < 1e-2
    assert report.spread > 10 and all(r.outputs_preserved for r in report.rows)


# ------------------------------------------------------------------------------------------------ guides
def test_maml_guide_sinusoid_snippet():
    ns = _run(_snippet("maml.evaluate(", DOCS / "guides" / "maml.md"), path=DOCS / "guides" / "maml.md")
    assert ns["metrics"].loss.shape == (25,)
    curve = ns["curve"]
    assert curve.shape == (100, 11) and torch.isfinite(curve).all()


def test_maml_guide_run_loop_snippet_trains_resumably(tmp_path):
    path = DOCS / "guides" / "maml.md"
    code = _snippet("run_loop(", path)
    run_dir = str(tmp_path / "my-sinusoid")
    ns = _run(code, {'"runs/my-sinusoid",\n    1000,': f"{run_dir!r},\n    3,"}, path=path)
    assert ns["result"].steps_done == 3 and (tmp_path / "my-sinusoid" / "checkpoints" / "last.pt").is_file()
    # the same lines asked for 5 steps resume at 3: the log holds each step once
    again = _run(code, {'"runs/my-sinusoid",\n    1000,': f"{run_dir!r},\n    5,"}, path=path)
    assert (again["result"].resumed_from, again["result"].steps_done) == (3, 5)
    lines = (tmp_path / "my-sinusoid" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(json.loads(line)["loss"]) for line in lines)


def test_pixelcnn_guide_snippet():
    torch.manual_seed(0)
    path = DOCS / "guides" / "pixelcnn.md"
    ns = _run(_snippet("super_resolve", path), path=path)
    lp, s, sr = ns["lp"], ns["s"], ns["sr"]
    assert lp.total.shape == (4,) and lp.terms["scale2/group4"].shape == (4,) and lp.bits_per_dim().shape == (4,)
    assert s.images.shape == (4, 1, 28, 28) and s.evaluations == 151
    assert [level.shape[-1] for level in s.coarse_to_fine] == [7, 14, 28]
    assert sr.images.shape == (4, 1, 28, 28) and sr.evaluations == 102
    assert ns["lp2"].total.shape == (4,)


def test_sharpness_guide_snippet(synthetic_data_dir, monkeypatch):
    # the snippet as written, on the synthetic MNIST ($ICML17_DATA) and, for time, 128 examples and 16 probes
    monkeypatch.setenv("ICML17_DATA", str(synthetic_data_dir))
    path = DOCS / "guides" / "sharpness.md"
    ns = _run(_snippet("mnist_subset", path), {"n=512": "n=128", "n_probes=64": "n_probes=16"}, path=path)
    top, tr, out, report = ns["top"], ns["tr"], ns["out"], ns["report"]
    assert ns["x"].shape == (128, 1, 28, 28)
    assert len(top.eigenvalues) == 3 and top.eigenvalues[0] >= top.eigenvalues[1] >= top.eigenvalues[2]
    assert tr.n_hvp == 16 and out["mode"] == "eval"
    assert abs(out["lambda_max"] - top.eigenvalues[0]) / top.eigenvalues[0] < 1e-2
    assert report.spread > 10 and all(r.outputs_preserved for r in report.rows)
    assert "spread" in report.table()


def test_gpu_page_stand_in_device_snippet(capsys):
    path = DOCS / "gpu.md"
    _run(_snippet("stand_in_device", path), path=path)
    assert capsys.readouterr().out.startswith("caught:")
