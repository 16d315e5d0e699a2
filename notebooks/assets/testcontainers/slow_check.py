"""A test that holds its service container for two minutes: the notebook kills this run half-way."""
import time


def test_holds_the_service(service):
    time.sleep(120)
