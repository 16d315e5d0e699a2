"""The same desired state, as tests (pytest-testinfra): run against the live server."""


def test_user(host):
    user = host.user("shop")
    assert user.exists and user.shell == "/usr/sbin/nologin"


def test_app_directory(host):
    d = host.file("/srv/shop")
    assert d.is_directory and d.user == "shop" and d.mode == 0o750


def test_log_level(host):
    assert host.file("/etc/shop/shop.ini").contains("^log_level = info$")


def test_no_debug_tools(host):
    assert not host.file("/usr/local/bin/debug-shell").exists
