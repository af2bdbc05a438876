"""Measuring a model on the book's synthetic language: agreement sites and the metrics of fixed
held-out rows, for the training log of the language organism and the chapters.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

import functools

import torch
from jaxtyping import Bool
from torch import Tensor
from transformer_lens import HookedTransformer

from lib.language.corpus import Corpus, sample_corpus
from lib.language.exact import true_next_token_logprobs
from lib.language.latents import _FIRST, _PP, _REPEAT, _SUBJ, SPANS
from lib.language.lexicon import BOS_ID, OTHER_NUMBER, VOCAB, WORD_CLASSES
from lib.language.program import _NAME_IDS

EVAL_SEED, EVAL_BATCH = 1_000_003, 64  # the held-out rows of the training log


def agreement_sites(corpus: Corpus) -> tuple[Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """Where agreement is tested, and where it is hard.

    Returns the positions of the verbs and copulas the grammar produced (their form agrees with
    the subject; the wrong form is ``OTHER_NUMBER[token]``; not those inside a repeated sentence,
    which copying predicts, nor the random words of a random row), and which of them have an
    *attractor*: a noun of the other number
    inside the subject, between its head and the verb (``the dog near the trees runs``).
    """
    cls, role, number = (corpus.latents[k] for k in ("word_class", "role", "number"))
    verbs = (cls == WORD_CLASSES.index("verb")) | (cls == WORD_CLASSES.index("cop"))
    verbs &= corpus.latents["span"] == SPANS.index("text")
    attractor = torch.zeros_like(verbs)
    noun = WORD_CLASSES.index("noun")
    for b, p in verbs.nonzero().tolist():
        q = p - 1
        while q >= 0 and int(role[b, q]) in (_SUBJ, _PP):  # walk back over the subject
            if cls[b, q] == noun and role[b, q] == _PP and number[b, q] != number[b, p]:
                attractor[b, p] = True
            q -= 1
    return verbs, attractor


def _in_context_names(corpus: Corpus, sites: Bool[Tensor, "batch pos"]) -> Bool[Tensor, "site vocab"]:
    """For each site, the names already mentioned in its text."""
    mask = torch.zeros(int(sites.sum()), len(VOCAB), dtype=torch.bool)
    for i, (b, p) in enumerate(sites.nonzero().tolist()):
        row = corpus.tokens[b, :p].tolist()
        start = len(row) - 1 - row[::-1].index(BOS_ID)
        mask[i, [t for t in row[start:] if t in _NAME_IDS]] = True
    return mask


@functools.cache
def _eval_set(n_ctx: int) -> dict[str, Tensor]:
    corpus = sample_corpus(EVAL_SEED, EVAL_BATCH, n_ctx)
    verbs, attractor = agreement_sites(corpus)
    # names the grammar refers back to (not those copied inside a repeated sentence)
    mention = torch.where(corpus.latents["span"] == SPANS.index("text"), corpus.latents["mention"], 0)
    return {
        "tokens": corpus.tokens,
        "truth": true_next_token_logprobs(corpus.tokens),
        "verbs": verbs[:, 1:],
        "attractor": attractor[verbs],
        "repeat": (mention == _REPEAT)[:, 1:],
        "first": (mention == _FIRST)[:, 1:],
        "context": _in_context_names(corpus, mention == _REPEAT),
    }


def evaluate(model: HookedTransformer) -> dict[str, float]:
    """Metrics of a model on fixed held-out rows (seed :data:`EVAL_SEED`), for the training log
    and the chapters:

    - ``heldout_loss`` and ``true_loss``: mean next-token cross-entropy of the model and of the
      generator (:func:`true_next_token_logprobs`, topic marginalised) on the same tokens;
    - ``name_repeat_loss`` / ``name_repeat_true_loss``: the same at tokens where the grammar
      refers back to a name mentioned earlier in the text (not names copied inside a repeated
      sentence), and ``name_first_loss`` at first mentions (unpredictable beyond "some name not
      yet used");
    - ``name_copy_mass``: at repeats, the share of the model's probability on names that goes to
      names already in the text (1 for the generator);
    - ``agreement_acc``: the fraction of the grammar's verbs and copulas (:func:`agreement_sites`)
      where the model prefers the correct form to the other number's form;
      ``agreement_acc_attractor`` on those with an attractor.
    """
    data = _eval_set(model.cfg.n_ctx)
    tokens = data["tokens"].to(model.cfg.device)
    logprobs = model(tokens).log_softmax(-1)[:, :-1].float().cpu()
    nxt = data["tokens"][:, 1:]
    actual = logprobs.gather(-1, nxt[..., None])[..., 0]
    verbs = data["verbs"]
    right = actual[verbs]
    wrong = logprobs[verbs].gather(-1, OTHER_NUMBER[nxt[verbs]][:, None])[:, 0]
    names = torch.zeros(len(VOCAB), dtype=torch.bool)
    names[list(_NAME_IDS)] = True
    name_probs = logprobs[data["repeat"]].exp()
    copy_mass = (name_probs * data["context"]).sum(-1) / (name_probs * names).sum(-1)
    return {
        "heldout_loss": -actual.mean().item(),
        "true_loss": -data["truth"].mean().item(),
        "name_repeat_loss": -actual[data["repeat"]].mean().item(),
        "name_repeat_true_loss": -data["truth"][data["repeat"]].mean().item(),
        "name_first_loss": -actual[data["first"]].mean().item(),
        "name_copy_mass": copy_mass.mean().item(),
        "agreement_acc": (right > wrong).float().mean().item(),
        "agreement_acc_attractor": (right > wrong)[data["attractor"]].float().mean().item(),
    }
