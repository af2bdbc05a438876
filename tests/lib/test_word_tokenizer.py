"""lib.word_tokenizer: a word-level tokenizer with <bos>, saved and reloaded."""

from lib.word_tokenizer import word_tokenizer


def test_word_tokenizer_prepends_bos_and_round_trips(tmp_path):
    tok = word_tokenizer(["a", "b", "<bos>", "<unk>", "<pad>"], tmp_path / "tok")
    assert tok("a b a")["input_ids"] == [2, 0, 1, 0]
    assert tok.decode([0, 1], skip_special_tokens=True) == "a b"
    assert tok("zzz")["input_ids"] == [2, 3]
