"""The refusal-directions chapter off the default organism: on a random-weight chat model in a
local Hugging Face cache (a GPT-2-architecture checkpoint whose tokenizer has a chat template and
end-of-turn tokens, as real chat models' do; it runs, nothing about refusal can be asserted from
random weights), and at the edges of its parameter ranges on the organism (slow).

The checkpoint's builder lives here until the shared offline fixtures (tests/offline_hf.py) hold
a chat model."""

import nbformat
import pytest
import torch
from offline_hf import glued
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from lib import book, language

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")
def offline_chat_model(tmp_path_factory):
    """A local HF cache in which ``gpt2`` (TransformerLens's ``gpt2-small``) is a random tiny GPT-2
    whose tokenizer (byte-level BPE trained on the book's language and its chat requests) has a
    chat template; the hub is offline."""
    home = tmp_path_factory.mktemp("hf-chat")
    repo = home / "hub" / "models--gpt2"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    rows = language.sample_corpus(0, 32, 128).tokens.tolist()
    text = [" ".join(language.VOCAB[t] for t in row if t != language.BOS_ID) for row in rows]
    text += language.requests(True)[:300] + language.requests(False)[:300] + ["I cannot. Sure, Sorry"] * 20
    specials = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=900, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(text, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|end|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(snapshot)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=3,
        n_head=4,
        n_embd=64,
        n_positions=64,
        n_ctx=64,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(snapshot)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield len(tok)


def test_the_chapter_runs_on_a_chat_model_with_its_template(offline_chat_model, tmp_path):
    out = book.execute(
        "refusal_directions",
        tmp_path / "chat.ipynb",
        {
            "MODEL_NAME": "gpt2-small",
            "DEVICE": "cpu",
            "N_TRAIN": 16,
            "N_VAL": 8,
            "N_EVAL": 16,
            "GEN_TOKENS": 6,
        },
    )
    values = glued(nbformat.read(out, as_version=4))
    assert (
        values["direction_pos"] == -4
    )  # the template's post-instruction tokens: <|end|> \n <|assistant|> \n
    assert 0 <= values["direction_layer"] < 3
    for name in ("refusal_harmful_baseline", "refusal_harmless_actadd", "refusal_harmful_ablated"):
        assert 0 <= values[name] <= 1
    assert values["ortho_max_logit_diff"] <= 1e-3 and values["ortho_max_logit_diff_bf16"] is None
    assert values["kl_harmless_ablated"] >= 0 and values["ce_baseline"] > 0


EDGES = [
    {
        "N_TRAIN": 16,
        "N_VAL": 8,
        "N_EVAL": 16,
        "N_POSITIONS": 1,
        "GEN_TOKENS": 4,
        "KL_THRESHOLD": 0.1,
        "SEED": 3,
    },
    {
        "N_TRAIN": 512,
        "N_VAL": 128,
        "N_EVAL": 256,
        "N_POSITIONS": 8,
        "GEN_TOKENS": 64,
        "KL_THRESHOLD": 10.0,
        "HEAD_THRESHOLD": 1.0,
        "SEED": 7,
    },
]


@pytest.mark.slow
@pytest.mark.parametrize("params", EDGES, ids=["smallest", "largest"])
def test_every_check_holds_at_the_edges_of_the_ranges(params, tmp_path):
    """On the organism every check cell holds at the smallest and largest sizes (a failing check
    stops the run with ``book.ChapterError`` naming the claim). Slow: minutes."""
    out = book.execute("refusal_directions", tmp_path / "edge.ipynb", params)
    values = glued(nbformat.read(out, as_version=4))
    assert values["refusal_harmful_ablated"] <= 0.1 and values["refusal_harmless_actadd"] >= 0.9
