"""Sinusoid regression tasks (MAML, Finn et al. 2017, section 5.1): amplitude, phase and inputs in the paper's
ranges, targets on the task's sine."""

import math

import torch

from icml17.data.sinusoid import sample_sinusoid_tasks, sinusoid


def test_sinusoid_tasks_follow_the_paper_ranges():
    b = sample_sinusoid_tasks(500, 10, 5, torch.Generator().manual_seed(0))
    amp, phase = b.info["amplitude"], b.info["phase"]
    assert b.support_x.shape == (500, 10, 1) and b.query_x.shape == (500, 5, 1)
    assert 0.1 <= amp.min() and amp.max() <= 5.0 and 0 <= phase.min() and phase.max() <= math.pi
    assert -5 <= b.support_x.min() and b.support_x.max() <= 5
    torch.testing.assert_close(b.query_y, sinusoid(b.query_x, amp.view(-1, 1, 1), phase.view(-1, 1, 1)))
