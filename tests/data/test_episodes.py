"""Episode samplers: distinct classes, per-task label permutations, whole-class rotations, disjoint character
splits, seeded determinism, and errors for episodes that do not fit the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icml17.core.config import ConfigError
from icml17.data.episodes import EpisodeSampler, omniglot_split, pool_from_labels


def identifiable_pool(classes=12, per_class=6, size=5) -> torch.Tensor:
    """Each image encodes (class, example) in its top-left pixel pair and has an asymmetric mark, so that
    rotations can be detected: (C, M, 1, size, size) float."""
    pool = torch.zeros(classes, per_class, 1, size, size)
    pool[:, :, 0, 0, 0] = torch.arange(classes).view(-1, 1).float() + 1
    pool[:, :, 0, 0, 1] = torch.arange(per_class).view(1, -1).float() + 1
    return pool


def unrotate(img: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Undo the quarter turn that brought the marked corner pixel (0, 0) elsewhere."""
    for k in range(4):
        back = torch.rot90(img, -k, dims=(-2, -1))
        if back[..., 0, 0] > 0 and back[..., 0, 1] > 0:
            return back, k
    raise AssertionError("no rotation restores the marked corner")


def test_episodes_have_distinct_classes_and_consistent_labels():
    s = EpisodeSampler(identifiable_pool(), ways=5, shots=2, queries=3)
    b = s.sample(40, torch.Generator().manual_seed(0))
    assert b.support_x.shape == (40, 10, 1, 5, 5) and b.query_x.shape == (40, 15, 1, 5, 5)
    assert b.support_y.shape == (40, 10) and b.query_y.shape == (40, 15)
    for t in range(40):
        classes = b.info["classes"][t]
        assert len(set(classes.tolist())) == 5
        for x, y in ((b.support_x[t], b.support_y[t]), (b.query_x[t], b.query_y[t])):
            ids = x[:, 0, 0, 0].long() - 1
            assert torch.equal(ids, classes[y])  # label j always means class classes[j]
        examples = torch.cat([b.support_x[t], b.query_x[t]])[:, 0, 0, 1]
        per_class = torch.cat([b.support_x[t, :, 0, 0, 0], b.query_x[t, :, 0, 0, 0]])
        for c in per_class.unique():  # no example drawn twice within a class
            assert len(examples[per_class == c].unique()) == 5


def test_labels_are_permuted_per_task():
    s = EpisodeSampler(identifiable_pool(classes=5), ways=5, shots=1, queries=1)
    b = s.sample(50, torch.Generator().manual_seed(1))
    label_of_class0 = [int((b.info["classes"][t] == 0).nonzero()) for t in range(50)]
    assert len(set(label_of_class0)) == 5


def test_rotations_are_per_class_and_whole():
    s = EpisodeSampler(identifiable_pool(), ways=4, shots=2, queries=2, rotate=True)
    b = s.sample(30, torch.Generator().manual_seed(2))
    seen = set()
    for t in range(30):
        for x, y in ((b.support_x[t], b.support_y[t]), (b.query_x[t], b.query_y[t])):
            for img, label in zip(x, y):
                _, k = unrotate(img)
                assert k == b.info["rotations"][t, label]  # every example of a class turned the same way
                seen.add(k)
    assert seen == {0, 1, 2, 3}


def test_sampling_is_seeded_and_uint8_pools_are_scaled():
    pool = torch.randint(0, 256, (10, 8, 1, 4, 4), dtype=torch.uint8)
    a = EpisodeSampler(pool, ways=3, shots=1, queries=2, rotate=True).sample(4, torch.Generator().manual_seed(3))
    b = EpisodeSampler(pool, ways=3, shots=1, queries=2, rotate=True, preconvert=False).sample(
        4, torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(a.support_x, b.support_x)
    assert a.support_x.dtype == torch.float32 and 0 <= a.support_x.min() and a.support_x.max() <= 1


def test_episodes_that_do_not_fit_are_refused():
    pool = identifiable_pool(classes=4, per_class=20)
    with pytest.raises(ConfigError, match="only 4"):
        EpisodeSampler(pool, ways=5, shots=1, queries=1)
    with pytest.raises(ConfigError, match="only 20"):
        EpisodeSampler(pool, ways=2, shots=5, queries=16)


def test_omniglot_splits_are_disjoint():
    background = np.zeros(1623, dtype=bool)
    background[:964] = True
    seeded = omniglot_split(background, "seeded", seed=0)
    assert [len(seeded[k]) for k in ("train", "val", "test")] == [1100, 100, 423]
    bg = omniglot_split(background, "background", seed=0)
    assert [len(bg[k]) for k in ("train", "val", "test")] == [864, 100, 659]
    assert background[bg["train"]].all() and not background[bg["test"]].any()
    for split in (seeded, bg):
        all_ids = np.concatenate(list(split.values()))
        assert len(np.unique(all_ids)) == len(all_ids)
    assert not np.array_equal(omniglot_split(background, "seeded", 1)["test"], seeded["test"])


@pytest.mark.parametrize("data", ["synthetic_data_dir", "real_data_dir"])
def test_omniglot_meta_train_and_test_share_no_character(data, request):
    from icml17.maml.presets import make_config
    from icml17.maml.tasks import _pools

    pools = _pools(make_config("omniglot-5w1s"), request.getfixturevalue(data))
    assert pools["train"].shape == (1100, 20, 1, 28, 28) and pools["test"].shape == (423, 20, 1, 28, 28)
    flat = {k: {v[c].tobytes() for c in range(len(v))} for k, v in pools.items()}
    assert not flat["train"] & flat["test"] and not flat["train"] & flat["val"]


def test_pool_from_labels_groups_by_class():
    images = np.arange(12).reshape(12, 1, 1, 1).astype(np.uint8)
    labels = np.array([0, 1, 2] * 4)
    pool = pool_from_labels(images, labels)
    assert pool.shape == (3, 4, 1, 1, 1) and (pool[1, :, 0, 0, 0] % 3 == 1).all()
