"""Added by a colleague: green on their laptop."""
from helpers import call


def test_answers_on_its_published_port(container):
    port = container.get_exposed_port(8000)
    assert call(f"http://127.0.0.1:{port}/stock/apples")[0] == 200
