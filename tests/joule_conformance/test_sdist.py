"""The one committed test of the Joule suite: whether its tests could be generated.

Skipped (with the reason) when the joule 1.0.1 sdist cannot be fetched; failed when the
fetched file or its tests are not what ``_harness.py`` expects.
"""

from __future__ import annotations

import pytest

from . import _harness


def test_joule_pipe_tests_generated() -> None:
    state = _harness.prepare()
    if state.status == "unavailable":
        pytest.skip(state.reason)
    if state.status != "ok":
        pytest.fail(state.reason, pytrace=False)
    assert state.files == sorted(_harness.EXPECTED_IMPORTS)
    for name in state.files:
        assert (_harness.GENERATED_DIR / name).is_file(), name
