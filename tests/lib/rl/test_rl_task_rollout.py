"""lib.rl.task and lib.rl.rollout: the sorting task's prompts and rewards (organism and chat), and
sampling with the KV cache against sampling without it and a naive greedy loop."""

import random

import pytest
import torch
from random_models import random_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lib import language as g
from lib.language import sorting
from lib.rl import rollout
from lib.rl.task import CHAT_REQUEST, SortTask, chat_task, organism_task

pytestmark = pytest.mark.usefixtures("one_thread")

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def chat_tokenizer(template: str | None = TEMPLATE) -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer (``<|end|>`` its end token) with a simple chat template."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    text = [CHAT_REQUEST.format(" ".join(g.LETTERS)), " ".join(g.LETTERS[::-1]), "<|user|> <|assistant|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|end|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(text * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|end|>", pad_token="<|end|>")
    tok.chat_template = template
    return tok


def slow_reward(letters, completion, stop_id, decode):
    """(exact, partial) from the definitions: exact iff the completion is the sorted letters then
    the stop token; partial counts the answer's places that hold the right letter."""
    want = sorted(letters)
    body = completion[:-1] if completion and completion[-1] == stop_id else completion
    got = decode(body)
    exact = float(bool(completion) and completion[-1] == stop_id and got == want)
    return exact, sum(i < len(got) and got[i] == want[i] for i in range(len(want))) / len(want)


def test_organism_reward():
    task = organism_task()
    letters = ("d", "a", "c", "b")
    answer = sorting.answer_ids(letters)
    assert task.stop_id == g.BOS_ID and task.prompt(letters) == sorting.prompt_ids(letters)
    assert task.reference(letters) == answer and task.max_new(letters) == 5
    assert task.reward(letters, answer) == (1.0, 1.0)
    assert task.reward(letters, answer[:-1]) == (0.0, 1.0)  # no stop token: not exact
    assert task.reward(letters, answer[:2] + [g.BOS_ID]) == (0.0, 0.5)  # stopped early
    swapped = [answer[1], answer[0], *answer[2:]]
    assert task.reward(letters, swapped) == (0.0, 0.5)
    assert task.reward(letters, [g.ID["the"], *answer[1:]]) == (0.0, 0.75)
    assert task.reward(letters, answer[:-1] + [g.ID["e"], g.BOS_ID]) == (0.0, 1.0)  # one too many

    rng, ids = random.Random(0), [g.ID[c] for c in "abcdefgh"] + [g.ID["the"], g.BOS_ID]
    decode = lambda body: [sorting.LETTER_OF.get(t, "?") for t in body]  # noqa: E731
    exact_seen = 0
    for _ in range(400):
        letters = tuple(rng.sample("abcdefgh", rng.randint(2, 5)))
        answer = sorting.answer_ids(letters)
        completion = answer if rng.random() < 0.2 else list(answer)
        if completion is not answer:  # corrupt some places, maybe drop or add the stop
            for i in rng.sample(range(len(completion)), rng.randint(0, 2)):
                completion[i] = rng.choice(ids)
            completion = completion[: rng.randint(1, len(completion))]
        want = slow_reward(letters, completion, g.BOS_ID, decode)
        assert task.reward(letters, completion) == pytest.approx(want), (letters, completion)
        exact_seen += want[0]
    assert 50 < exact_seen < 350


def test_chat_task():
    tok = chat_tokenizer()
    task = chat_task(tok)
    letters = ("q", "c", "x", "a")
    assert task.stop_id == tok.eos_token_id and task.slack == 8
    prompt = task.prompt(letters)
    assert all(isinstance(t, int) for t in prompt)
    request = CHAT_REQUEST.format("q c x a")
    assert tok.decode(prompt) == f"<|user|>{request}<|end|><|assistant|>"
    reference = task.reference(letters)
    assert reference[-1] == tok.eos_token_id and tok.decode(reference[:-1]) == "a c q x"
    assert task.max_new(letters) == len(reference) + 8
    assert task.reward(letters, reference) == (1.0, 1.0)
    assert task.reward(letters, reference[:-1]) == (0.0, 1.0)
    decode = lambda body: tok.decode(body).split()  # noqa: E731
    rng = random.Random(1)
    for _ in range(100):
        replies = [sorted(letters), rng.sample(letters, 4), sorted(letters)[:3], sorted(letters) + ["b"]]
        words = rng.choice(replies)
        completion = tok.encode(" ".join(words), add_special_tokens=False)
        completion += [tok.eos_token_id] * (rng.random() < 0.7)
        want = slow_reward(letters, completion, tok.eos_token_id, decode)
        assert task.reward(letters, completion) == pytest.approx(want)


def test_chat_task_needs_a_chat_template():
    with pytest.raises(ValueError, match="no chat template"):
        chat_task(chat_tokenizer(template=None))


def biased_model(stop_bias: float) -> torch.nn.Module:
    """A random model over the language's 448 ids whose logit of ``<bos>`` (the stop token) is
    raised, so that some completions stop before ``max_new`` and some do not."""
    model = random_model(d_vocab=len(g.VOCAB), n_ctx=40, n_layers=2)
    with torch.no_grad():
        model.b_U[g.BOS_ID] += stop_bias
    return model


def check_completion(task: SortTask, letters, completion: list[int]) -> bool:
    """Ends at the (first) stop token or is ``max_new`` long; returns whether it stopped."""
    assert 1 <= len(completion) <= task.max_new(letters)
    assert task.stop_id not in completion[:-1]
    stopped = completion[-1] == task.stop_id
    assert stopped or len(completion) == task.max_new(letters)
    return stopped


def test_sampling_with_and_without_the_cache_agree():
    model, task = biased_model(5.0), organism_task()
    batch = sorting.problems(16, seed=0, held=False, lengths=(2, 8))  # prompts of several lengths
    runs = {}
    for seed in (1, 2):
        for cache in (True, False):
            gen = torch.Generator().manual_seed(seed)
            runs[seed, cache] = rollout.generate(model, task, batch, 1.0, gen, use_cache=cache)
    assert runs[1, True] == runs[1, False] and runs[2, True] == runs[2, False]
    assert runs[1, True][1] != runs[2, True][1]  # the seed matters, so the agreement means something
    prompts, completions = runs[1, True]
    assert prompts == [sorting.prompt_ids(p) for p in batch]
    stopped = [check_completion(task, p, c) for p, c in zip(batch, completions)]
    assert 0 < sum(stopped) < len(stopped)


def naive_greedy(model, task: SortTask, letters) -> list[int]:
    tokens, new = task.prompt(letters), []
    for _ in range(task.max_new(letters)):
        token = model(torch.tensor([tokens + new]))[0, -1].argmax().item()
        new.append(token)
        if token == task.stop_id:
            break
    return new


def test_greedy_matches_a_naive_loop():
    model, task = biased_model(3.0), organism_task()
    batch = sorting.problems(16, seed=5, held=True, lengths=(2, 8))
    with torch.no_grad():
        want = [naive_greedy(model, task, p) for p in batch]
    for cache in (True, False):
        prompts, completions = rollout.generate(model, task, batch, 0.0, use_cache=cache)
        assert completions == want
    stopped = [check_completion(task, p, c) for p, c in zip(batch, completions)]
    assert 0 < sum(stopped) < len(stopped)
    manual = sum(c == sorting.answer_ids(p) for p, c in zip(batch, want)) / len(batch)
    assert rollout.exact_accuracy(model, task, batch) == manual


def test_exact_accuracy_counts_exact_greedy_answers(monkeypatch):
    task, batch = organism_task(), sorting.problems(5, seed=9, held=True)
    replies = [
        sorting.answer_ids(batch[0]),
        sorting.answer_ids(batch[1])[:-1],  # no stop token
        sorting.answer_ids(batch[2])[::-1],
        sorting.answer_ids(batch[3]),
        [g.BOS_ID],
    ]

    def fake_generate(model, task_, problems, temperature, generator=None, use_cache=True):
        assert temperature == 0.0 and problems == batch
        return [task_.prompt(p) for p in problems], replies

    monkeypatch.setattr(rollout, "generate", fake_generate)
    manual = sum(r == sorting.answer_ids(p) for p, r in zip(batch, replies)) / len(batch)
    assert manual == 0.4 and rollout.exact_accuracy(None, task, batch) == manual
