"""lib.word_tasks: the literature's word-pair tasks and their per-tokenizer filter."""

from offline_hf import language_tokenizer

from lib.word_tasks import WORD_TASKS, single_token_pairs


def test_lists_map_each_query_once():
    for task, pairs in WORD_TASKS.items():
        assert len(pairs) >= 25, task
        assert len({x for x, _ in pairs}) == len(pairs), f"{task}: one answer per query"
        assert all(x and y and x != y and " " not in x + y for x, y in pairs), task


def test_single_token_filter_keeps_exactly_the_one_token_answers():
    tok = language_tokenizer()
    pairs = [("cat", "dog"), ("cat", "xqzzyv"), ("dogsxq", "the"), ("the", "cat")]
    # the slow reference: tokenize every word where the prompt puts it, after a space
    length = {w: len(tok.encode(" " + w, add_special_tokens=False)) for pair in pairs for w in pair}
    assert length["cat"] == length["dog"] == length["the"] == 1 and length["xqzzyv"] > 1 < length["dogsxq"]
    kept, dropped = single_token_pairs(tok, pairs)
    assert kept == [("cat", "dog"), ("the", "cat")] and dropped == [("cat", "xqzzyv"), ("dogsxq", "the")]
