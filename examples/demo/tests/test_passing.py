"""Quick tests that pass: the first thing a newcomer queues."""


def test_addition():
    assert 1 + 1 == 2


def test_strings():
    assert "test" + "scheduler" == "testscheduler"


def test_environment_is_known():
    import os

    # testscheduler tells every run which environment it drives.
    print("running on environment", os.environ.get("TESTSCHEDULER_ENV_ID"))
    assert os.environ.get("TESTSCHEDULER_ENV_ID")
