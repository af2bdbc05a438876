"""lib.params: one clear message per bad value."""

import pytest

from lib import params


@pytest.mark.parametrize("value", [0, 11, 2.0, True, "3"])
def test_check_int_refuses(value):
    with pytest.raises(ValueError, match=rf"N={value!r} is not allowed; expected an integer in \[1, 10\]"):
        params.check_int("N", value, 1, 10)
    assert params.check_int("N", 5, 1, 10) == 5


def test_check_choice():
    with pytest.raises(ValueError, match=r"X='c' is not allowed; expected one of \['a', 'b'\]"):
        params.check_choice("X", "c", ["a", "b"])
