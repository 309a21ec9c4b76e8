"""Evaluation on given episodes, and the refusals that keep a wrong model/episode pairing from scoring."""

import numpy as np
import pytest
import torch

from icml17.core.config import ConfigError
from icml17.data.episodes import TaskBatch
from icml17.maml import MAML
from icml17.maml.evaluate import Trained, evaluate, input_shape, load_episodes, load_shipped
from icml17.maml.losses import make_losses
from icml17.maml.models import build_maml_model, is_norm_parameter
from icml17.maml.presets import make_config
from icml17.maml.train import build_engine


def _omniglot_trained(ways=5):
    cfg = make_config("omniglot-5w1s" if ways == 5 else "omniglot-20w1s")
    return Trained(cfg, build_engine(cfg, input_shape(cfg)), 0, 0.0, "")


def _episodes(tasks, ways, shots, queries, seed=0):
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1).clone()
    qy = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1).clone()
    return TaskBatch(
        torch.rand(tasks, ways * shots, 1, 28, 28, generator=g),
        sy,
        torch.rand(tasks, ways * queries, 1, 28, 28, generator=g),
        qy,
    )


def _save(path, batch):
    np.savez(
        path,
        support_x=batch.support_x.numpy(),
        support_y=batch.support_y.numpy(),
        query_x=batch.query_x.numpy(),
        query_y=batch.query_y.numpy(),
    )
    return path


def test_given_episodes_score_as_the_same_tasks_in_memory(tmp_path):
    trained = _omniglot_trained()
    batch = _episodes(6, 5, 1, 2)
    from_file = evaluate(trained, episodes=load_episodes(_save(tmp_path / "ep.npz", batch)), steps=2)
    direct = trained.engine.evaluate(batch, 2).score.mean(0)
    assert from_file["tasks"] == 6 and from_file["queries"] == 2 and from_file["split"] == "given-episodes"
    assert np.allclose(from_file["mean"], direct.numpy(), atol=1e-6)


def test_episodes_with_more_ways_than_the_model_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"5-way: labels must lie in \[0, 5\)"):
        evaluate(_omniglot_trained(5), episodes=load_episodes(_save(tmp_path / "e.npz", _episodes(2, 20, 1, 1))))


def test_episodes_with_fewer_ways_than_the_model_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="has 3 classes; the model .* is 5-way"):
        evaluate(_omniglot_trained(5), episodes=load_episodes(_save(tmp_path / "e.npz", _episodes(2, 3, 1, 1))))


def test_episodes_of_the_wrong_image_size_are_refused(tmp_path):
    b = _episodes(2, 5, 1, 1)
    b = TaskBatch(b.support_x[..., :20, :20], b.support_y, b.query_x[..., :20, :20], b.query_y)
    with pytest.raises(ConfigError, match="inputs of shape"):
        evaluate(_omniglot_trained(5), episodes=load_episodes(_save(tmp_path / "e.npz", b)))


def test_episode_file_missing_an_array_is_named(tmp_path):
    np.savez(tmp_path / "e.npz", support_x=np.zeros((1, 5, 1, 28, 28), np.float32))
    with pytest.raises(ConfigError, match="lacks arrays"):
        load_episodes(tmp_path / "e.npz")


def test_files_that_are_not_episode_archives_are_named_before_loading(tmp_path):
    """A .npy, an empty file and a text file each get one clear refusal (they raised a TypeError, EOFError or a
    misleading 'pickled data' message)."""
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("support_x,support_y\n")
    for name in ("one.npy", "empty.npz", "text.npz"):
        with pytest.raises(ConfigError, match="is not a .npz archive of episodes: write the four arrays"):
            load_episodes(tmp_path / name)


def test_eight_bit_images_are_refused_with_the_fix(tmp_path):
    batch = _episodes(2, 5, 1, 1)
    batch = TaskBatch(batch.support_x * 255, batch.support_y, batch.query_x * 255, batch.query_y)
    with pytest.raises(ConfigError, match="floats in \\[0, 1\\].*divide 8-bit images by 255"):
        load_episodes(_save(tmp_path / "e.npz", batch))
    assert load_episodes(_save(tmp_path / "ok.npz", _episodes(2, 5, 1, 1))).support_x.max() <= 1


def test_default_engine_does_not_adapt_normalisation_parameters_as_the_reference():
    model = build_maml_model("conv4-omniglot", ways=5)
    loss, score, _ = make_losses("omniglot", 1)
    engine = MAML(model, loss_fn=loss, score_fn=score)
    norm = {n for n, _ in model.named_parameters() if is_norm_parameter(n, model)}
    assert norm, "the conv4 model has batch-norm offsets"
    assert set(engine.adapt_names) == {n for n, _ in model.named_parameters()} - norm


def test_shipped_sinusoid_weights_load_and_adapt():
    trained = load_shipped("sinusoid-k10")
    r = evaluate(trained, tasks=50, steps=1)
    assert trained.iterations == 70000 and r["mean"][1] < 0.6 * r["mean"][0]


def test_unknown_shipped_weights_name_the_available_ones():
    from icml17.weights import WeightsError

    with pytest.raises(WeightsError, match="sinusoid-k10"):
        load_shipped("nope")


def test_readme_states_where_the_chunk_size_was_measured():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [line for line in readme.splitlines() if "chunks of 8" in line]
    assert lines and all("2-core" in line or "measured on" in line for line in lines), lines
