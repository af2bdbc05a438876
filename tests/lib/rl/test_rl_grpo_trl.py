"""lib.rl.grpo against TRL itself: a real ``trl.GRPOTrainer`` (TRL 1.16, pinned in
requirements.txt) on a tiny random GPT-2, its ``_compute_loss`` fed log-probabilities we control
(its ``_get_per_token_logps_and_entropies`` replaced by one that returns them), and its advantages
from its own ``_generate_and_score_completions`` (completions from a ``rollout_func``, rewards from
a reward function that reads them off the batch). The loss and its gradient with respect to the
log-probabilities must match ``lib.rl.grpo.grpo_loss``; the advantages ``group_advantages``.
"""

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from offline_hf import language_tokenizer
from transformers import GPT2Config, GPT2LMHeadModel
from trl import GRPOConfig, GRPOTrainer

from lib.rl.grpo import group_advantages, grpo_loss, padded

pytestmark = pytest.mark.usefixtures("one_thread")

G, N_PROMPTS = 4, 2  # completions per prompt, prompts
BETA = 0.04
# two prompts of different lengths and G completions each, of different lengths (the padding and
# the token-level normalisation have something to do)
PROMPTS = [[5, 6, 7], [8, 9]]
COMPLETIONS = [
    [10, 11, 12],
    [13],
    [14, 15, 16, 17],
    [18, 19],
    [20, 21],
    [22, 23, 24, 25, 26],
    [27],
    [28, 29, 30],
]
# rewards: the first group has a spread, the second too (with a tie); see test_advantages_match_trl
# for a group without one
REWARDS = [1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0, 0.25]


@pytest.fixture(scope="module")
def tokenizer():
    return language_tokenizer()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer) -> Path:
    """A 1-layer GPT-2 with random weights and its tokenizer, saved as a local folder: TRL loads
    its reference model (beta > 0) from the policy's path."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=16,
        n_positions=32,
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental"


def reward_column(completions, reward, **kwargs) -> list[float]:
    """TRL passes every dataset column to a reward function: the reward is one."""
    return reward


def trainer(
    tmp_path: Path, checkpoint: Path, tokenizer, completions: list[list[int]], **config
) -> GRPOTrainer:
    """A GRPOTrainer on the tiny GPT-2 whose rollouts are ``PROMPTS`` x ``completions``; one
    optimizer step per generation (gradient_accumulation_steps = steps_per_generation = 1, so TRL
    keeps no old log-probabilities of its own), TRL's defaults otherwise."""

    def rollout(prompts, trainer):
        rows = [PROMPTS[i // G] for i in range(len(prompts))]
        return {"prompt_ids": rows, "completion_ids": completions, "logprobs": None}

    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=G * N_PROMPTS,
        num_generations=G,
        max_completion_length=max(len(c) for c in completions),
        report_to="none",
        use_cpu=True,
        **config,
    )
    dataset = Dataset.from_dict({"prompt": ["x"] * N_PROMPTS, "reward": [0.0] * N_PROMPTS})
    out = GRPOTrainer(
        model=str(checkpoint),
        reward_funcs=reward_column,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=rollout,
    )
    out.current_gradient_accumulation_steps = 1  # what the training loop sets with one micro-batch
    return out


def test_trl_defaults_are_what_lib_assumes():
    """grpo_loss's defaults are TRL's: token-level ("dapo") normalisation, symmetric clipping at
    0.2, the bias-corrected KL, group-scaled rewards, no KL term."""
    cfg = GRPOConfig(output_dir="unused", report_to="none", use_cpu=True)
    assert cfg.loss_type == "dapo" and cfg.epsilon == 0.2 and cfg.epsilon_high is None
    assert cfg.use_bias_correction_kl is True and cfg.scale_rewards == "group"
    assert cfg.beta == 0.0 and cfg.importance_sampling_level == "token" and cfg.delta is None


def test_advantages_and_mask_match_trl(tmp_path, checkpoint, tokenizer):
    """TRL's own ``_generate_and_score_completions`` (its advantage formula inline there, no
    function of its own) gives group_advantages' advantages, padded's completion mask, and a token
    count equal to the mask's sum; a group whose rewards are all equal gets advantage 0."""
    t = trainer(tmp_path, checkpoint, tokenizer, COMPLETIONS)
    for rewards in (REWARDS, [1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 1.0, 1.0]):
        inputs = [{"prompt": "x", "reward": r} for r in rewards]
        out = t._generate_and_score_completions(inputs)
        mine = group_advantages(torch.tensor(rewards), G)
        torch.testing.assert_close(out["advantages"], mine, rtol=0, atol=1e-6)
        _, _, mask = padded([PROMPTS[i // G] for i in range(len(rewards))], COMPLETIONS, "cpu")
        assert torch.equal(out["completion_mask"].bool(), mask)
        assert out["num_items_in_batch"].item() == mask.sum().item()
        assert "old_per_token_logps" not in out and "ref_per_token_logps" not in out
    assert mine[G:].abs().max() == 0


CASES = {  # name: (beta, use_bias_correction_kl, off-policy old log-probs)
    "beta 0": (0.0, True, False),
    "beta 0.04, bias-corrected KL": (BETA, True, False),
    "beta 0.04, plain KL": (BETA, False, False),
    "beta 0, clipped": (0.0, True, True),
    "beta 0.04, bias-corrected KL, clipped": (BETA, True, True),
    "beta 0.04, plain KL, clipped": (BETA, False, True),
}


@pytest.mark.parametrize("case", CASES)
def test_loss_and_gradient_match_trl(tmp_path, checkpoint, tokenizer, case):
    """TRL's ``_compute_loss`` (loss_type "dapo", its default) and grpo_loss on the same
    log-probabilities, advantages and mask: the same loss and the same gradient with respect to
    the log-probabilities. Without old log-probabilities TRL uses the current ones detached
    (ratio 1); with them, off by up to +-0.5 in log space, clipping bites on some tokens."""
    beta, corrected, off_policy = CASES[case]
    t = trainer(tmp_path, checkpoint, tokenizer, COMPLETIONS, beta=beta, use_bias_correction_kl=corrected)
    assert t.loss_type == "dapo" and t.beta == beta
    rows = [PROMPTS[i // G] for i in range(len(COMPLETIONS))]
    _, _, mask = padded(rows, COMPLETIONS, "cpu")
    g = torch.Generator().manual_seed(1)
    logps = -torch.rand(mask.shape, generator=g) * 3
    ref = logps - 0.3 * torch.randn(mask.shape, generator=g)
    old = logps + (torch.rand(mask.shape, generator=g) - 0.5) if off_policy else None
    advantages = group_advantages(torch.tensor(REWARDS), G)

    theirs = logps.clone().requires_grad_()
    t._get_per_token_logps_and_entropies = lambda *a, **k: (theirs, torch.zeros_like(theirs), None)
    width = max(map(len, PROMPTS))
    inputs = {
        "prompt_ids": torch.zeros(len(rows), width, dtype=torch.long),
        "prompt_mask": torch.ones(len(rows), width, dtype=torch.long),
        "completion_ids": torch.zeros(mask.shape, dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": advantages,
        "num_items_in_batch": mask.sum(),
    }
    if beta:
        inputs["ref_per_token_logps"] = ref
    if off_policy:
        inputs["old_per_token_logps"] = old
    t.model.train()
    trl_loss = t._compute_loss(t.model, inputs)
    trl_loss.backward()

    mine = logps.clone().requires_grad_()
    my_loss = grpo_loss(
        mine,
        mine.detach() if old is None else old,
        advantages,
        mask,
        ref_logps=ref if beta else None,
        beta=beta,
        bias_corrected_kl=corrected,
    )
    my_loss.backward()
    torch.testing.assert_close(my_loss, trl_loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-6, atol=1e-8)
    assert theirs.grad.abs().sum() > 0 and (theirs.grad[~mask] == 0).all()
    if off_policy:  # some tokens are clipped: their policy-gradient term is gone
        ratio = (logps - old).exp()
        adv = advantages[:, None].expand_as(ratio)
        clipped = mask & (((ratio > 1.2) & (adv > 0)) | ((ratio < 0.8) & (adv < 0)))
        assert clipped.sum() >= 3
        if not beta:
            assert (theirs.grad[clipped] == 0).all()
