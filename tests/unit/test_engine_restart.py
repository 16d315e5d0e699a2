"""An engine that goes away in the middle of a session, without a daemon: what the next call raises
(EngineWatch between the docker SDK and requests), and how that error shows in a notebook."""
from __future__ import annotations

import types

import pytest
import requests


from labkit.core import engine, ipython
from labkit.core.errors import DaemonUnavailable, EngineRestarted, EngineStopped, LabSkipped

URL = "unix:///run/test-engine.sock"


class FakeAPI:
    def __init__(self) -> None:
        self.down = False
        self.sent = 0

    def send(self, request, **kwargs):
        if self.down:
            raise requests.exceptions.ConnectionError(
                "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))")
        self.sent += 1
        return "response"


@pytest.fixture
def watched(monkeypatch):
    """(api, watch, engine_process setter): an engine process that answers until told otherwise."""
    process = {"now": (4242, "1000")}
    monkeypatch.setattr(engine, "engine_process", lambda url: process["now"])
    api = FakeAPI()
    watch = engine.EngineWatch(types.SimpleNamespace(api=api), URL)
    watch.CHECK_EVERY = 0

    def set_process(value):
        process["now"] = value
    return api, watch, set_process


def _clear(exc: Exception, says: str) -> None:
    first, last = str(exc).splitlines()[0], str(exc).splitlines()[-1]
    assert says in first and URL in first
    assert last.startswith("Hint: ") and "re-run this notebook from the top" in last.lower()


def test_an_engine_that_never_answered_is_left_to_client_and_ping(watched):
    api, watch, _ = watched
    api.down = True
    with pytest.raises(requests.exceptions.ConnectionError):
        watch.send("GET /_ping")


def test_the_next_call_after_the_engine_stopped_says_so_until_it_is_back(watched):
    api, watch, set_process = watched
    assert watch.send("GET /_ping") == "response"
    api.down = True
    for _ in range(2):  # every call while it is away
        with pytest.raises(EngineStopped) as info:
            watch.send("POST /containers/create")
        assert isinstance(info.value, DaemonUnavailable) and not isinstance(info.value, EngineRestarted)
        _clear(info.value, "stopped answering")
        assert "its socket is gone" in info.value.message
    api.down = False
    set_process((5151, "2000"))  # it came back as another process: already said, so no second error
    assert watch.send("POST /containers/prune") == "response" and watch.engine == (5151, "2000")


def test_a_restart_between_two_calls_is_named_once_before_anything_is_sent(watched):
    api, watch, set_process = watched
    watch.send("GET /_ping")
    sent = api.sent
    set_process((5151, "2000"))
    with pytest.raises(EngineRestarted) as info:
        watch.send("POST /containers/create")
    _clear(info.value, "restarted")
    assert api.sent == sent, "the request must not reach the new engine"
    assert watch.send("POST /containers/create") == "response"  # once: cleanup works after it


def test_an_unknown_engine_process_is_no_restart(watched):
    _, watch, set_process = watched
    watch.send("GET /_ping")
    set_process(None)  # a TCP engine, or nobody listening at that moment
    assert watch.send("GET /_ping") == "response"


def test_ping_lets_the_engine_errors_through():
    class Api:
        base_url = "http+docker://localhost"

        def get(self, *args, **kwargs):
            raise EngineStopped("The Docker engine at x stopped answering in the middle of this session.")

    with pytest.raises(EngineStopped):
        engine.ping(types.SimpleNamespace(api=Api()), URL, "DOCKER_HOST")


# --- how errors show in a notebook ---------------------------------------------------------

@pytest.fixture
def shell(monkeypatch, tmp_path):
    """An IPython shell with labkit's error display, recording what it publishes."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config
    config = Config()
    config.HistoryManager.enabled = False
    sh = InteractiveShell.instance(config=config)
    monkeypatch.setattr(ipython, "_installed", False)
    assert ipython.install_error_display()
    published, errors = [], []
    monkeypatch.setattr(sh.display_pub, "publish", lambda data, metadata=None, **kw: published.append((data, metadata)))
    monkeypatch.setattr(sh, "_showtraceback",
                        lambda etype, value, stb: errors.append((etype.__name__, str(value), stb)))
    sh.user_ns.update(EngineStopped=EngineStopped, LabSkipped=LabSkipped)
    yield sh, published, errors
    InteractiveShell.clear_instance()


def test_an_engine_error_shows_as_the_short_callout_and_one_line(shell):
    sh, published, errors = shell
    result = sh.run_cell('raise EngineStopped("The Docker engine at unix:///x stopped answering.")')
    assert not result.success
    (data, _), = published
    assert data["text/plain"].startswith("[ERROR] EngineStopped: The Docker engine at unix:///x stopped answering.")
    assert "Hint:" in data["text/plain"] and "labkit-callout" in data["text/html"]
    assert errors == [("EngineStopped", str(result.error_in_exec),
                       ["EngineStopped: The Docker engine at unix:///x stopped answering."])]


def test_a_skip_shows_only_its_banner_and_still_stops_the_notebook(shell):
    sh, published, errors = shell
    result = sh.run_cell('raise LabSkipped("This lab needs a K3s image.", "Load one.")')
    assert not result.success  # the kernel replies "error": Run All and papermill stop here
    (data, metadata), = published
    assert data["text/plain"] == "[WARNING] Skipped: This lab needs a K3s image.\nHint: Load one."
    assert metadata == {"labkit": {"skipped": "This lab needs a K3s image.\nHint: Load one."}}
    assert errors == [("SystemExit", "", [])]  # papermill's deliberate stop: no banner, no traceback
    cell = {"outputs": [{"output_type": "display_data", "data": data, "metadata": metadata}]}
    assert ipython.skip_reason(cell) == "This lab needs a K3s image.\nHint: Load one."


def test_labkit_verify_reports_a_notebook_stopped_by_a_skip_as_skipped(tmp_path):
    """The whole chain without a daemon: a real kernel, papermill (which must exit without an error
    banner), and verify reading the skip from the banner."""
    import nbformat

    from labkit import verify
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("from labkit.core import errors, ipython\nipython.install_error_display()"),
                nbformat.v4.new_code_cell('raise errors.LabSkipped("This lab needs a unicorn.", "Borrow one.")'),
                nbformat.v4.new_code_cell("print('never runs')")]
    path = tmp_path / "99-skip.ipynb"
    nbformat.write(nb, path)
    result = verify.run_notebook(path, tmp_path / "out")
    assert (result.status, result.reason) == ("skipped", "This lab needs a unicorn.\nHint: Borrow one.")
    executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    assert not any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in executed.cells)
    assert not any(c.get("outputs") for c in executed.cells if "never runs" in c.source)
