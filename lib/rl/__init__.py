"""RL with a verifiable reward, and what it changes in the weights: GRPO written for the book
(:mod:`~lib.rl.rollout` samples with a KV cache, :mod:`~lib.rl.grpo` holds the loss), optimizers
that keep state only for a mask's entries (:mod:`~lib.rl.optim`), Fisher, random, magnitude and
oracle masks and their overlap (:mod:`~lib.rl.masks`), update sparsity and rank
(:mod:`~lib.rl.sparsity`), the sorting task on the organism and on real chat models
(:mod:`~lib.rl.task`), runs (:mod:`~lib.rl.runs`) and the recorded sweep (:mod:`~lib.rl.artifacts`,
``python -m lib.rl``).

Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
"""
