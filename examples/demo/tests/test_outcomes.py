"""One of each result pytest can give, so a run's Tests table shows them all."""

import os

import pytest


@pytest.mark.parametrize("n", [1, 2, 3])
def test_squares_are_positive(n):
    assert n * n > 0


class TestMarks:
    @pytest.mark.skip(reason="shows how a skipped test looks")
    def test_skipped(self):
        pass

    @pytest.mark.xfail(reason="a known bug, expected to fail")
    def test_known_bug(self):
        assert 0.1 + 0.2 == 0.3


@pytest.mark.slow
def test_marked_slow():
    """Select or leave out with markers (-m "not slow")."""
    assert True


def test_fails_only_on_environment_3():
    """Fails on one rig only: a few runs on 1, 2 and 3 make /tests call it env_suspect."""
    assert os.environ.get("TESTSCHEDULER_ENV_ID") != "3", "this rig's fixture is broken"
