"""MAML for reinforcement learning (Finn et al. 2017, section 5.3, Algorithm 3).

envs (2D navigation, gymnasium MuJoCo locomotion) -> sampler (tasks x rollouts stepped together) -> baseline
(linear features, GAE) -> inner (policy-gradient ``adapt``) -> trpo (outer step with exact curvature products)
-> train / evaluate / plots; ``icml17 maml-rl train|eval|plots`` in commands.
"""
