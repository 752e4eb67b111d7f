"""A test that fails, to show a red run and pytest's report."""


def test_this_one_is_broken():
    expected = {"status": "ok", "items": 3}
    actual = {"status": "ok", "items": 2}
    assert actual == expected
