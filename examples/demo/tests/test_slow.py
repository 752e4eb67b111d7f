"""Slow tests: watch lines arrive one by one, or cancel the run midway."""

import time


def test_counts_slowly():
    for i in range(1, 21):
        print(f"step {i}/20", flush=True)
        time.sleep(0.5)


def test_thinks_before_answering():
    time.sleep(3)
    assert True
