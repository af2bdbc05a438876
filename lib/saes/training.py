"""Training sparse autoencoders with SAELens on activations cached once.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py).

The SAE classes, their losses and the trainer are SAELens's (``TopKTrainingSAE``,
``StandardTrainingSAE``, ``SAETrainer``). What the book adds is the data path: SAELens's own
runner streams tokens through the model and refills a shuffling buffer as it trains; a model as
small as the language organism gives all the activations an SAE needs in one cached tensor, so
:func:`cache_activations` runs the model once (stopped at the SAE's layer, nothing else cached)
and :func:`activation_batches` feeds shuffled batches of it to ``SAETrainer`` as its data
provider. ``<bos>`` positions are left out of training and of every metric: their residual
stream is the attention sink's, many times the norm of any other, and one such outlier per text
would dominate a reconstruction loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from sae_lens import (
    SAETrainer,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
    TrainingSAE,
)
from sae_lens.config import SAETrainerConfig
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

Architecture = Literal["topk", "standard"]


def hook_name(layer: int) -> str:
    """The hook an SAE of the book reads: the residual stream entering block ``layer``."""
    return get_act_name("resid_pre", layer)


@torch.no_grad()
def cache_activations(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], hook: str, bos: int, batch_size: int = 64
) -> Float[Tensor, "token d"]:
    """The activation at ``hook`` (a ``blocks.L...`` hook name) at every position of ``tokens``
    except those holding ``bos``, flattened in row-major order (so ``tokens[tokens != bos]``
    lines up with it), in float32; each forward pass stops after block L and caches that hook
    alone."""
    stop = int(hook.split(".")[1]) + 1
    chunks = []
    for chunk in tokens.split(batch_size):
        _, cache = model.run_with_cache(chunk.to(model.cfg.device), names_filter=hook, stop_at_layer=stop)
        chunks.append(cache[hook][chunk.to(cache[hook].device) != bos].float())
    return torch.cat(chunks)


def activation_batches(
    acts: Float[Tensor, "token d_model"], batch_size: int, seed: int
) -> Iterator[Float[Tensor, "batch d_model"]]:
    """An endless stream of batches of ``acts``: each epoch a fresh seeded permutation, the
    last incomplete batch of an epoch dropped. SAELens's ``DataProvider``."""
    if batch_size > len(acts):
        raise ValueError(f"batch_size {batch_size} exceeds the {len(acts)} cached activations")
    g = torch.Generator().manual_seed(seed)
    while True:
        for idx in torch.randperm(len(acts), generator=g).split(batch_size):
            if len(idx) == batch_size:
                yield acts[idx.to(acts.device)]


@dataclass(frozen=True)
class Spec:
    """One SAE to train: its architecture, width and sparsity knob (``k`` for TopK, the L1
    coefficient for the standard SAE), on ``steps`` batches of ``batch_size`` activations.
    SAELens's defaults (Adam, the learning rate decayed to a tenth, decoder rows at norm 0.1,
    inputs scaled to mean norm sqrt(d_in), the TopK auxiliary loss at coefficient 1) except three
    that suit runs of hundreds of steps rather than hundreds of thousands: the learning rate is
    1e-3 rather than 3e-4, a latent counts as dead for the auxiliary loss after ``dead_window``
    steps without firing rather than 1,000, and the L1 coefficient warms up over the first
    twentieth of the steps."""

    architecture: Architecture
    d_sae: int
    sparsity: float
    steps: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    dead_window: int = 50
    aux_coefficient: float = 1.0  # SAELens's default (Gao et al. use 1/32); TopK only
    resample_at: tuple[int, ...] = ()  # steps after which dead latents are resampled (:func:`resample_dead`)
    resample_scale: float = 0.2  # a resampled latent's encoder norm, relative to the live ones'

    @property
    def name(self) -> str:
        knob = f"k{int(self.sparsity)}" if self.architecture == "topk" else f"l1-{self.sparsity:g}"
        if self.architecture == "topk" and self.aux_coefficient == 0:
            knob += "-noaux"
        if self.resample_at:
            knob += "-resample" + ("" if self.resample_scale == 0.2 else f"-x{self.resample_scale:g}")
        return f"{self.architecture}-{self.d_sae}-{knob}"

    def sae_config(self, d_in: int, device: str) -> TopKTrainingSAEConfig | StandardTrainingSAEConfig:
        common = dict(
            d_in=d_in, d_sae=self.d_sae, device=device, normalize_activations="expected_average_only_in"
        )
        if self.architecture == "topk":
            return TopKTrainingSAEConfig(
                **common, k=int(self.sparsity), aux_loss_coefficient=self.aux_coefficient
            )
        return StandardTrainingSAEConfig(
            **common, l1_coefficient=self.sparsity, l1_warm_up_steps=self.steps // 20
        )


@torch.no_grad()
def resample_dead(
    sae: TrainingSAE,
    optimizer: torch.optim.Optimizer,
    dead: Bool[Tensor, " d_sae"],
    sae_in: Float[Tensor, "batch d_in"],
    generator: torch.Generator,
    encoder_scale: float = 0.2,
) -> int:
    """Resample the ``dead`` latents as Bricken et al. (2023, appendix) do, from the inputs
    ``sae_in``: each is reborn pointing at an input drawn with probability proportional to the
    square of the SAE's squared error on it (a different input each, while there are enough).
    Its decoder row becomes that input's direction (less the decoder bias) at the live rows'
    mean norm, its encoder column the same direction at ``encoder_scale`` (Bricken et al.'s
    0.2) times the live columns' mean norm, its encoder bias 0, and its Adam moments 0. SAELens
    v6 dropped resampling; this is written for the book. Returns how many were resampled."""
    idx = dead.nonzero()[:, 0]
    if len(idx) == 0 or bool(dead.all()):
        return 0
    error = (sae_in - sae(sae_in)).pow(2).sum(-1)
    picks = torch.multinomial(
        error.pow(2).cpu(), len(idx), replacement=len(idx) > len(error), generator=generator
    )
    direction = sae_in[picks.to(sae_in.device)] - sae.b_dec  # [dead, d_in]
    direction = direction / direction.norm(dim=-1, keepdim=True)
    dec_norm = sae.W_dec[~dead].norm(dim=-1).mean()
    enc_norm = sae.W_enc[:, ~dead].norm(dim=0).mean()
    sae.W_dec[idx] = direction * dec_norm
    sae.W_enc[:, idx] = (direction * encoder_scale * enc_norm).T
    sae.b_enc[idx] = 0
    for param, rows in ((sae.W_dec, (idx,)), (sae.W_enc, (slice(None), idx)), (sae.b_enc, (idx,))):
        for moment in optimizer.state.get(param, {}).values():
            if moment.shape == param.shape:
                moment[rows] = 0
    return len(idx)


class _LoggingTrainer(SAETrainer):
    """SAELens's trainer, recording its losses and L0 every ``log_every`` steps (the trainer
    only logs to Weights & Biases), and resampling dead latents after the spec's steps
    ``resample_at``."""

    def __init__(self, *args, log_every: int, spec: Spec, seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_every, self.log = log_every, []
        self.spec, self.generator = spec, torch.Generator().manual_seed(seed)

    def step(self, batch: Tensor):
        output = super().step(batch)
        if self.n_training_steps + 1 in self.spec.resample_at:  # fit() counts this step after step()
            dead = self.dead_neurons
            n = resample_dead(
                self.sae, self.optimizer, dead, output.sae_in, self.generator, self.spec.resample_scale
            )
            self.n_forward_passes_since_fired[dead] = 0
            self.log.append({"step": self.n_training_steps + 1, "resampled": n})
        return output

    def _update_pbar(self, step_output, pbar, update_interval: int = 100):
        super()._update_pbar(step_output, pbar, update_interval)
        done = self.n_training_steps  # steps completed, this one included
        if done % self.log_every == 0 or done == self.cfg.total_training_steps:
            row = {"step": done}
            row |= {name: value.item() for name, value in step_output.losses.items()}
            row["l0"] = float((step_output.feature_acts > 0).sum(-1).float().mean())
            self.log.append(row)


def _initialised(acts: Float[Tensor, "token d_model"], spec: Spec, seed: int) -> tuple[TrainingSAE, float]:
    """SAELens's SAE for ``spec`` as it starts training, and SAELens's input scaling (mean norm
    sqrt(d_in)) for ``acts``. SAELens starts the decoder bias at 0; here it starts at the scaled
    activations' mean, as in Anthropic's and ARENA's recipes: a residual stream's mean is over a
    third of its norm, and latents spent on it die."""
    torch.manual_seed(seed)
    sae_cls = TopKTrainingSAE if spec.architecture == "topk" else StandardTrainingSAE
    sae = sae_cls(spec.sae_config(acts.shape[-1], str(acts.device)))
    scale = float(acts.shape[-1] ** 0.5 / acts.norm(dim=-1).mean())
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0) * scale)
    return sae, scale


def untrained(acts: Float[Tensor, "token d_model"], spec: Spec, seed: int) -> TrainingSAE:
    """The SAE :func:`train` starts from, reading raw activations: the random-weights baseline."""
    sae, scale = _initialised(acts, spec, seed)
    sae.fold_activation_norm_scaling_factor(scale)
    return sae


def train(
    acts: Float[Tensor, "token d_model"], spec: Spec, seed: int, log_every: int = 100
) -> tuple[TrainingSAE, list[dict[str, float]]]:
    """Train the SAE ``spec`` describes on ``acts`` with SAELens's ``SAETrainer``, from
    ``seed``; the SAE (the input scaling folded into its weights, so it reads raw activations)
    and its training log."""
    if spec.batch_size > len(acts):
        raise ValueError(f"batch_size {spec.batch_size} exceeds the {len(acts)} cached activations")
    sae, scale = _initialised(acts, spec, seed)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=spec.steps * spec.batch_size,
        train_batch_size_samples=spec.batch_size,
        lr=spec.lr,
        lr_end=spec.lr / 10,
        lr_scheduler_name="cosineannealing",
        device=str(acts.device),
        dead_feature_window=spec.dead_window,
        feature_sampling_window=spec.steps,
    )
    trainer = _LoggingTrainer(
        trainer_cfg,
        sae,
        activation_batches(acts, spec.batch_size, seed),
        log_every=log_every,
        spec=spec,
        seed=seed,
    )
    trainer.activation_scaler.scaling_factor = scale  # so fit() does not estimate it again
    with torch.enable_grad():  # the book's setup turns gradients off globally
        return trainer.fit(), trainer.log


def describe(spec: Spec, layer: int) -> dict:
    """What an SAE artifact records about how it was trained."""
    return {"hook": hook_name(layer), **asdict(spec)}
