"""lib.saes.dashboards: top activations and logit effects against loops, and what a dashboard shows."""

import re

import torch
from offline_hf import language_tokenizer

from lib import saes


def test_top_activations_are_the_largest_positive_entries_in_order():
    g = torch.Generator().manual_seed(0)
    values = torch.relu(torch.randn(5, 7, generator=g))
    want = sorted(
        ((float(values[r, p]), r, p) for r in range(5) for p in range(7) if values[r, p] > 0), reverse=True
    )
    got = saes.top_activations(values, 6)
    assert [(r, p) for r, p, _ in got] == [(r, p) for _, r, p in want[:6]]
    assert [v for *_, v in got] == [v for v, *_ in want[:6]]
    assert len(saes.top_activations(values, 100)) == int((values > 0).sum())  # never a zero


def test_logit_effects_are_the_decoder_row_through_the_unembedding(model, random_sae):
    got = saes.logit_effects(model, random_sae, 3)
    one = torch.zeros(2, random_sae.cfg.d_sae)
    one[1, 3] = 1.0
    unit = random_sae.decode(one)  # what one unit of feature 3 adds to the reconstruction
    row = unit[1] - unit[0]
    want = [sum(row[d] * model.W_U[d, v] for d in range(model.cfg.d_model)) for v in range(7)]
    assert torch.allclose(got[:7], torch.stack(want).detach(), atol=1e-5)


def test_a_dashboard_escapes_tokens_counts_measured_tokens_and_shades_the_peak():
    values = torch.tensor([[0.0, 1.0, 4.0, 0.0], [9.0, 2.0, 0.0, 0.0]])
    measured = torch.tensor([[False, True, True, True], [False, True, True, True]])  # <bos> at 0
    tokens = [["<bos>", "a", "b&c", "."], ["<bos>", "d", "e", "."]]
    vocab = ["<bos>", "a", "b&c", "."]
    page = saes.dashboard(
        "feature <7>", values, measured, tokens, torch.tensor([0.5, -2.0, 3.0, 0.0]), vocab, n_logits=2
    )
    assert "feature &lt;7&gt;" in page and "&lt;bos&gt;" in page and "b&amp;c" in page and "<bos>" not in page
    assert "density 0.5 (3 of 6 tokens)" in page  # the unmeasured 9.0 at <bos> counts for nothing
    tops = re.findall(r'<td style="text-align: right">([^<]+)</td>', page)
    assert tops == ["4", "2", "1"]
    assert page.count("rgba(255, 120, 0, 1.00)") == 3  # each context's own peak is fully shaded
    promotes = page.split("<i>promotes</i><br>")[1].split("</div>")[0]
    assert promotes.index("b&amp;c") < promotes.index("<code>&lt;bos&gt;</code>")


def test_token_strings_decode_every_id_and_name_the_padding():
    tok = language_tokenizer()
    names = saes.token_strings(tok, len(tok) + 3)
    assert len(names) == len(tok) + 3 and names[-3:] == [f"<id {i}>" for i in range(len(tok), len(tok) + 3)]
    assert names[:50] == [tok.decode([i]) for i in range(50)]
