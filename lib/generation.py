"""Prompt batches and greedy generation under hooks: prompts of different lengths padded on the
left with their attention mask, forward passes chunked to a memory budget, and generation that is
right under TransformerLens's key-value cache.

Introduced in chapter 'Refusal directions' (chapters/refusal_directions.py), where
:mod:`lib.directions` scores, ablates and adds directions on such batches. Padding on the left
lines up the last positions (the chat template's post-instruction tokens) of every prompt;
TransformerLens masks the padding out of attention and shifts learned positions so that each
prompt's first real token sits at position 0, so a padded row computes what the prompt alone
would (tests/lib/test_generation.py checks it).

Generation: after the first step, TransformerLens's key-value cache feeds one new position per
step, so a hook that indexes positions (``x[:, -3]``) sees a different tensor than it does
without the cache. The hooks of :mod:`lib.directions` act on every position alike, which is
right either way; :func:`generate` can run without the cache to check that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.hook_points import HookPoint

from lib import language

Hook = tuple[str, Callable[[Tensor, HookPoint], Tensor]]
DEFAULT_MEMORY_BUDGET = 2 * 2**30  # bytes of activations per forward pass


@dataclass(frozen=True)
class Prompts:
    """Token ids padded on the left to one length, and the mask of the real tokens (1)."""

    tokens: Int[Tensor, "batch pos"]
    mask: Int[Tensor, "batch pos"]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, rows: slice | Tensor) -> Prompts:
        return Prompts(self.tokens[rows], self.mask[rows])

    def to(self, device: str | torch.device) -> Prompts:
        return Prompts(self.tokens.to(device), self.mask.to(device))

    def repeat(self, n: int) -> Prompts:
        """The whole set ``n`` times over: row ``i * len(self) + j`` is prompt ``j``."""
        return Prompts(self.tokens.repeat(n, 1), self.mask.repeat(n, 1))

    @staticmethod
    def cat(sets: Sequence[Prompts], pad_id: int) -> Prompts:
        """The sets one after another, re-padded on the left to their common length."""
        width = max(p.tokens.shape[1] for p in sets)

        def pad(x: Tensor, value: int) -> Tensor:
            return torch.nn.functional.pad(x, (width - x.shape[1], 0), value=value)

        return Prompts(
            torch.cat([pad(p.tokens, pad_id) for p in sets]), torch.cat([pad(p.mask, 0) for p in sets])
        )


def pad_id(model: HookedTransformer) -> int:
    """The id padding uses (masked out, so any id works): the tokenizer's pad, else its EOS, else 0."""
    tok = model.tokenizer
    ids = () if tok is None else (tok.pad_token_id, tok.eos_token_id)
    return next((i for i in ids if i is not None), 0)


def to_prompts(model: HookedTransformer, texts: Sequence[str]) -> Prompts:
    """Tokenize whole prompts (a chat template filled in, holding its own BOS where it has one:
    no special tokens are added) and pad them on the left."""
    ids = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(i) for i in ids)
    tokens = torch.tensor([[pad_id(model)] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    return Prompts(tokens, mask).to(model.cfg.device)


def chat_template(model: HookedTransformer, template: str = "") -> str:
    """The prompt around a request, ``{request}`` marking where it goes: ``template`` if given;
    for a model of the book's language its chat format ``<bos> <user> {request} <assistant>``;
    else the tokenizer's own chat template with the generation prompt (the assistant's turn)."""
    if template:
        if template.count("{request}") != 1:
            raise ValueError(f"CHAT_TEMPLATE={template!r} must hold {{request}} exactly once")
        return template
    if language.speaks_language(model):
        return "<bos> " + language.chat("{request}")
    if getattr(model.tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"{model.cfg.model_name}'s tokenizer has no chat template: pass CHAT_TEMPLATE, the prompt "
            "with {request} where the request goes"
        )
    marker = "REQUESTMARKER"
    text = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    return text.replace(marker, "{request}")


def fill(template: str, requests: Sequence[str]) -> list[str]:
    """The prompts: each request in the template (by replacement, so braces in it are kept)."""
    return [template.replace("{request}", r) for r in requests]


def post_instruction_tokens(model: HookedTransformer, template: str, request: str) -> int:
    """How many tokens the template puts after the request (the reference's post-instruction
    positions), counted in the tokenized prompt so that merges across the boundary count right."""
    whole = model.tokenizer(fill(template, [request])[0], add_special_tokens=False)["input_ids"]
    head = template.split("{request}")[0] + request
    return len(whole) - len(model.tokenizer(head, add_special_tokens=False)["input_ids"])


def rows_per_pass(model: HookedTransformer, n_pos: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """How many prompt rows one forward pass may hold: one block's working set for that many rows
    (residual-width tensors, the MLP's hidden layer with its activation's temporaries, and five
    float32 copies of the attention scores: raw, scaled, masked, pattern, its cast) fits in
    ``memory_budget``."""
    cfg = model.cfg
    b = torch.finfo(cfg.dtype).bits // 8
    per_token = b * (6 * cfg.d_model + 3 * (cfg.d_mlp or 0)) + 4 * 5 * cfg.n_heads * n_pos
    return max(1, memory_budget // (n_pos * per_token))


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def generate(
    model: HookedTransformer,
    prompts: Prompts,
    max_new_tokens: int,
    hooks: Sequence[Hook] = (),
    stop_ids: Sequence[int] = (),
    use_cache: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    generator: torch.Generator | None = None,
) -> Int[Tensor, "batch new"]:
    """Greedy continuations under ``hooks`` (sampled at temperature 1 from ``generator`` when
    one is given), stopping once every row has produced one of ``stop_ids``. With ``use_cache``
    each step feeds only the new token through TransformerLens's key-value cache; the hooks
    (this module's act on every position alike) then see one position. ``use_cache=False``
    recomputes the whole sequence each step, the check that caching changes nothing."""
    stop = torch.tensor(list(stop_ids), device=prompts.tokens.device)
    outs = []
    rows_max = rows_per_pass(model, prompts.tokens.shape[1] + max_new_tokens, memory_budget)
    for rows in chunks(len(prompts), rows_max):
        part, new, done = prompts[rows], [], torch.zeros(rows.stop - rows.start, dtype=torch.bool)
        done = done.to(prompts.tokens.device)
        tokens, mask = part.tokens, part.mask
        cache = (
            TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, len(part))
            if use_cache
            else None
        )
        step_in, step_mask = tokens, mask
        with model.hooks(fwd_hooks=list(hooks)):
            for _ in range(max_new_tokens):
                logits = model(step_in, attention_mask=step_mask, past_kv_cache=cache)
                last = logits[:, -1].float()
                nxt = (
                    last.argmax(-1)
                    if generator is None
                    else torch.multinomial(last.softmax(-1).cpu(), 1, generator=generator)[:, 0].to(
                        last.device
                    )
                )
                new.append(nxt)
                done |= torch.isin(nxt, stop)
                if done.all():
                    break
                ones = torch.ones_like(nxt)[:, None]
                tokens, mask = torch.cat([tokens, nxt[:, None]], 1), torch.cat([mask, ones], 1)
                step_in, step_mask = (nxt[:, None], ones) if use_cache else (tokens, mask)
        outs.append(torch.stack(new, 1))
    width = max(o.shape[1] for o in outs)
    fill = stop[0].item() if len(stop) else pad_id(model)
    return torch.cat([torch.nn.functional.pad(o, (0, width - o.shape[1]), value=fill) for o in outs])


def decode(
    model: HookedTransformer, new: Int[Tensor, "batch new"], stop_ids: Sequence[int] = ()
) -> list[str]:
    """Generated ids as text, each cut after its first stop id."""
    texts = []
    for row in new.tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in stop_ids), len(row))
        texts.append(model.tokenizer.decode(row[:cut]))
    return texts
