from helpers import call


def test_seeded_stock(service):
    assert call(f"{service}/stock/apples") == (200, {"item": "apples", "count": 5})


def test_unknown_item_has_none(service):
    assert call(f"{service}/stock/kiwis")[1]["count"] == 0


def test_add_stock(service):
    status, body = call(f"{service}/stock/pears", "POST", {"delta": 3})
    assert status == 200 and body["count"] == 3
