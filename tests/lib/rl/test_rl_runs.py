"""lib.rl.runs: the problems of a run, GRPO runs (all parameters or a mask's) and the supervised run,
their logs and their updates against one step written out by hand."""

import copy
import math
from dataclasses import dataclass

import pytest
import torch
from random_models import random_model

from lib import language as g
from lib.language import sorting
from lib.rl import masks, runs
from lib.rl.rollout import exact_accuracy, generate
from lib.rl.task import SortTask, organism_task

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = runs.RunSpec(lr=1e-3, steps=3, prompts_per_step=2, group=4, n_eval=8, eval_every=1)


@dataclass(frozen=True)
class ParityTask(SortTask):
    """The organism's prompts with a reward a random model earns half the time (an even first
    token), so that groups have a spread and GRPO an update."""

    def reward(self, letters, completion):
        even = float(completion[0] % 2 == 0)
        return even, even


def parity_task() -> ParityTask:
    return ParityTask(tokenizer=None, stop_id=g.BOS_ID)


def model():
    return random_model(d_vocab=len(g.VOCAB), n_ctx=24, n_layers=2)


def params_of(m) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in m.named_parameters()}


class Recorder:
    """Stands in for the optimizer: keeps the gradient each step would apply (masked and clipped),
    so that it is compared itself (Adam's first step is lr times the gradient's sign, blind to its
    size) and the model does not move."""

    def __init__(self, model, spec, mask):
        self.named, self.grads = list(model.named_parameters()), []

    def step(self):
        self.grads.append({n: p.grad.detach().clone() for n, p in self.named})

    def zero_grad(self):
        for _, p in self.named:
            p.grad = None


def clipped(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    """torch's clip_grad_norm_ written out: scale by max_norm / (norm + 1e-6) if that is below 1."""
    norm = math.sqrt(sum((grad.double() ** 2).sum().item() for grad in grads.values()))
    assert norm > max_norm  # the clipping is exercised
    return {n: grad * min(1.0, max_norm / (norm + 1e-6)) for n, grad in grads.items()}


def test_step_and_eval_problems():
    spec = runs.RunSpec(lr=1e-3, prompts_per_step=16, seed=3)
    steps = [runs.step_problems(spec, s) for s in range(20)]
    assert all(len(b) == 16 for b in steps)
    assert not any(sorting.held_out(p) for b in steps for p in b)
    assert all(5 <= len(p) <= 8 and len(set(p)) == len(p) for b in steps for p in b)
    assert steps[0] == runs.step_problems(spec, 0) and steps[0] != steps[1]
    assert steps[0] != runs.step_problems(runs.RunSpec(lr=1e-3, prompts_per_step=16, seed=4), 0)
    held = runs.eval_problems(200)
    assert len(held) == 200 and all(sorting.held_out(p) for p in held)
    assert all(5 <= len(p) <= 8 and len(set(p)) == len(p) for p in held)
    assert {len(p) for p in held} == {5, 6, 7, 8}
    assert runs.eval_problems(50) == held[:50] == sorting.problems(50, 2001, held=True)


def test_grpo_run_log_against_a_replay():
    """On a random model no sampled answer is exact: every group has no spread, the advantages are
    0, and the weights do not move; the log's rewards are those of the replayed samples."""
    m, task = model(), organism_task()
    before = copy.deepcopy(m)
    log = runs.run(m, task, SPEC, progress=False)
    assert set(log) == {"train", "eval"}
    assert [e["step"] for e in log["train"]] == [0, 1, 2]
    assert all(set(e) == {"step", "reward", "partial", "no_spread"} for e in log["train"])
    assert [e["step"] for e in log["eval"]] == [0, 1, 2, 3] and all(
        set(e) == {"step", "accuracy"} for e in log["eval"]
    )
    gen, held = torch.Generator().manual_seed(SPEC.seed), runs.eval_problems(SPEC.n_eval)
    for step, entry in enumerate(log["train"]):
        batch = [p for p in runs.step_problems(SPEC, step) for _ in range(SPEC.group)]
        _, completions = generate(before, task, batch, 1.0, gen)
        rewards = [task.reward(p, c) for p, c in zip(batch, completions)]
        assert entry["reward"] == pytest.approx(sum(r[0] for r in rewards) / len(batch)) == 0.0
        assert entry["partial"] == pytest.approx(sum(r[1] for r in rewards) / len(batch))
        assert entry["no_spread"] == 1.0
    assert all(e["accuracy"] == exact_accuracy(before, task, held) == 0.0 for e in log["eval"])
    after, want = params_of(m), params_of(before)
    assert all(torch.equal(after[n], want[n]) for n in want)


def manual_grpo_gradient(m, task, spec, mask=None):
    """The first GRPO step's gradient (beta 0) from its definitions: rewards, advantages per
    group, log p of each completion token from its own row, the loss with ratio 1 (its gradient
    that of log p) over all completion tokens, the mask, then clipping."""
    batch = [p for p in runs.step_problems(spec, 0) for _ in range(spec.group)]
    prompts, completions = generate(m, task, batch, 1.0, torch.Generator().manual_seed(spec.seed))
    rewards = [task.reward(p, c)[0] for p, c in zip(batch, completions)]
    advantages = []
    for s in range(0, len(rewards), spec.group):
        r = rewards[s : s + spec.group]
        mean = sum(r) / len(r)
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1))
        advantages += [(x - mean) / (std + 1e-4) for x in r]
    assert any(advantages)
    params = dict(m.named_parameters())
    with torch.enable_grad():
        total, count = 0.0, 0
        for prompt, completion, a in zip(prompts, completions, advantages):
            logp = m(torch.tensor([prompt + completion]))[0].log_softmax(-1)
            for j, t in enumerate(completion):
                lp = logp[len(prompt) - 1 + j, t]
                total, count = total - torch.exp(lp - lp.detach()) * a, count + 1
        grads = dict(zip(params, torch.autograd.grad(total / count, list(params.values()))))
    if mask is not None:
        grads = {n: grad * mask[n] for n, grad in grads.items()}
    return clipped(grads, spec.max_grad_norm)


SPEC1 = runs.RunSpec(
    lr=1e-3, steps=1, prompts_per_step=2, group=4, n_eval=4, eval_every=1, max_grad_norm=0.05
)


@pytest.mark.parametrize("masked", [False, True])
def test_first_grpo_gradient_against_a_manual_one(monkeypatch, masked):
    m, task = model(), parity_task()
    mask = (
        masks.random_mask({n: p.shape for n, p in m.named_parameters()}, keep=0.3, seed=1) if masked else None
    )
    recorders = []
    monkeypatch.setattr(runs, "_optimizer", lambda *args: recorders.append(Recorder(*args)) or recorders[-1])
    log = runs.run(m, task, SPEC1, mask=mask, progress=False)
    assert log["train"][0]["no_spread"] < 1 and 0 < log["train"][0]["reward"] < 1
    (got,) = recorders[0].grads
    want = manual_grpo_gradient(model(), task, SPEC1, mask)
    assert sum(bool(want[n].any()) for n in want) > len(want) // 2
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-7)
        if masked:
            assert not got[n][~mask[n]].any()


def test_beta_run_starts_as_the_beta_0_run():
    """The KL to a reference identical to the model is 0 with gradient 0 at the first step."""
    task = parity_task()
    log = runs.run(m := model(), task, SPEC1, progress=False)
    kl = runs.run(m_kl := model(), task, runs.RunSpec(**(vars(SPEC1) | {"beta": 0.04})), progress=False)
    assert kl == log
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), m_kl.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(m.parameters(), model().parameters()))


def test_masked_run_leaves_unmasked_entries_bit_identical():
    m, task = model(), parity_task()
    before = params_of(m)
    mask = masks.random_mask({n: p.shape for n, p in before.items()}, keep=0.05, seed=0)
    log = runs.run(m, task, SPEC, mask=mask, progress=False)
    assert any(e["no_spread"] < 1 for e in log["train"])
    after = params_of(m)
    for n in before:
        assert torch.equal(after[n][~mask[n]], before[n][~mask[n]]), n
    changed = sum((after[n] != before[n])[mask[n]].sum().item() for n in before)
    assert changed > 0.5 * sum(k.sum().item() for k in mask.values())


def test_sft_run_first_loss_and_gradient_against_manual_cross_entropy(monkeypatch):
    spec = runs.RunSpec(lr=1e-3, steps=1, prompts_per_step=3, n_eval=4, eval_every=1, max_grad_norm=0.5)
    m, task = model(), organism_task()
    recorders = []
    monkeypatch.setattr(runs, "_optimizer", lambda *args: recorders.append(Recorder(*args)) or recorders[-1])
    log = runs.sft_run(m, task, spec, progress=False)
    assert [e["step"] for e in log["eval"]] == [0, 1] and [set(e) for e in log["train"]] == [{"step", "loss"}]
    reference = model()
    params = dict(reference.named_parameters())
    with torch.enable_grad():
        total, count = 0.0, 0
        for letters in runs.step_problems(spec, 0):
            prompt, answer = sorting.prompt_ids(letters), sorting.answer_ids(letters)
            logits = reference(torch.tensor([prompt + answer]))[0, len(prompt) - 1 : -1]
            total = total + torch.nn.functional.cross_entropy(logits, torch.tensor(answer), reduction="sum")
            count += len(answer)
        loss = total / count
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    assert log["train"][0]["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert loss.item() > 5  # about log(448) on a random model
    want, (got,) = clipped(grads, spec.max_grad_norm), recorders[0].grads
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-7)


def test_sft_run_trains():
    spec = runs.RunSpec(lr=1e-2, steps=4, prompts_per_step=4, n_eval=4, eval_every=2)
    m = model()
    log = runs.sft_run(m, organism_task(), spec, progress=False)
    assert [e["step"] for e in log["train"]] == [0, 1, 2, 3] and [e["step"] for e in log["eval"]] == [0, 2, 4]
    assert not all(torch.equal(a, b) for a, b in zip(m.parameters(), model().parameters()))
