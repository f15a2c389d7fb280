from __future__ import annotations

import pytest

from shmpipe.errors import PipeError
from shmpipe.shm import names


@pytest.mark.parametrize("good", ["a", "sensor-1", "A.b_c-9", "x" * 64])
def test_valid_names(good: str) -> None:
    assert names.validate(good) == good


BAD = ["", "x" * 65, "a/b", "/a", ".a", "-a", "a..b", "a b", "é", None, 3]


@pytest.mark.parametrize("bad", BAD)
def test_invalid_names_say_what_is_expected(bad: object) -> None:
    with pytest.raises(PipeError, match="name"):
        names.validate(bad)


def test_every_object_of_a_pipe_maps_back_to_its_name() -> None:
    entries = ("shmpipe.p-1", "sem.shmpipe.p-1.lock", "shmpipe.p-1.bell.w", "shmpipe.p-1.bell.r12")
    for entry in entries:
        assert names.pipe_of(entry) == "p-1"
    assert names.pipe_of("sem.mp-123") is None
    assert names.pipe_of("iox2_x") is None
