"""A nested directory: queue ./tests/api/ to run just this folder."""

import pytest


@pytest.mark.parametrize("code", [200, 201, 204])
def test_success_codes(code):
    assert 200 <= code < 300
