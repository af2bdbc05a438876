"""lib.claims.check: silent when the claim holds, the claim and its values when it does not."""

import pytest
import torch

from lib.claims import ClaimError, check


def test_a_holding_claim_is_silent():
    check("two is more than one", 2 > 1, a=2)
    check("a one-element tensor counts", torch.tensor([True]))


def test_a_failing_claim_names_itself_and_its_values():
    with pytest.raises(ClaimError) as err:
        check(
            "the top induction head sits in layer 1",
            torch.tensor(0) == 1,
            layer=torch.tensor(0),
            score=0.912345,
            heads=[(1, 2)],
            many=list(range(20)),
        )
    assert str(err.value) == (
        "the top induction head sits in layer 1: does not hold (layer=0, score=0.9123, "
        "heads=[[1, 2]], many=list of 20: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, ...)"
    )
    assert isinstance(err.value, AssertionError)


def test_a_claim_on_a_multi_element_tensor_is_an_error():
    with pytest.raises(RuntimeError):
        check("ambiguous", torch.tensor([True, False]))
