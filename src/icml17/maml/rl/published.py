"""The published numbers MAML-RL's records and plots are compared with, in one place.

Finn et al. 2017, Figure 5 plots the mean return after 0 to 3 policy-gradient steps; the numbers are those of the
reference code's result files (cbfinn/maml_rl). They are looked up by experiment name (``<preset>[-<method>]``)
where a record is written (:func:`icml17.maml.rl.evaluate.write_result_record`) and a figure drawn
(:func:`icml17.maml.rl.plots.plot_returns`); the results pages read them from the records.
"""

from __future__ import annotations

PAPER_SOURCE = "Finn et al. 2017, Figure 5 (the reference code's result files, cbfinn/maml_rl)"

# Mean return after 0, 1, 2, 3 policy-gradient steps in the reference code's result files (cbfinn/maml_rl);
# None where the notes give only the first and last numbers or none.
PAPER_RETURNS: dict[str, list[float] | None] = {
    "point-nav": [-40.4, -11.7, -3.3, -3.2],
    "point-nav-random": [-82.7, -58.0, -53.8, -46.8],
    "cheetah-vel": [-129.5, -78.6, -66.6, -60.8],
    "cheetah-vel-pretrained": [-158.0, -135.4, -128.5, -133.6],
    "cheetah-dir": [-50.7, 293.2, 313.5, 315.7],
    "ant-vel": [30.6, 96.7, 100.1, 101.4],
    "ant-dir": [8.7, 499.1, 500.7, 499.1],
}
# The oracle (told the task, never adapted) is one number per environment.
PAPER_ORACLE = {"point-nav": -2.3, "cheetah-vel": -54.5, "ant-vel": 107.9}
