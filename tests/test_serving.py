"""The serving process's settings: Gradio sessions that build their blocks' configs on demand, no monitoring
summary rebuilt after every event, and the same settings for app.py, the tests' server and the benchmarks'
no-op app."""
from __future__ import annotations

import subprocess
import sys

import httpx
from gradio.routes import App
from gradio.state_holder import SessionState
from gradio_client import Client, handle_file

from conftest import EXAMPLES_DIR, ROOT, serving
from dlcourse.ui import quadratic, sessions
from dlcourse.ui.space import build_demo, prepare_process


def eager_session(demo) -> SessionState:
    """A session as Gradio itself builds it, every block's config up front."""
    state = SessionState.__new__(SessionState)
    sessions._gradio_init(state, demo)
    return state


def test_a_new_session_builds_no_config_until_read_and_then_the_same_as_gradio(classifier, baseline):
    prepare_process()
    demo = build_demo(classifier, baseline)
    state = SessionState(demo)
    assert isinstance(state.config_values, sessions.ConfigsOnDemand)
    assert dict.__len__(state.config_values) == 0  # nothing built when the session starts
    eager = eager_session(demo)
    assert len(eager.config_values) > 100
    assert list(state.components) == list(eager.components)


def test_a_changed_component_reads_the_same_as_with_gradios_sessions(classifier, baseline):
    prepare_process()
    demo = build_demo(classifier, baseline)
    markdown = next(key for key, block in demo.blocks.items() if type(block).__name__ == "Markdown")
    lazy, eager = SessionState(demo), eager_session(demo)
    for state in (lazy, eager):
        state._update_value_in_config(markdown, "changed by a handler")
    assert lazy.config_values[markdown] == eager.config_values[markdown]
    assert lazy.config_values[markdown]["props"]["value"] == "changed by a handler"
    assert list(lazy.components) == list(eager.components)


def test_the_served_space_answers_plain_http_calls_and_deep_links(app_url):
    with httpx.Client(base_url=app_url, timeout=60) as http:
        with open(EXAMPLES_DIR / "mnist-test-7.png", "rb") as f:
            path = http.post("gradio_api/upload", files={"files": f}).json()[0]
        for _ in range(3):  # each call without a session_hash is a new Gradio session
            event = http.post("gradio_api/call/classify",
                              json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}).json()["event_id"]
            answer = http.get(f"gradio_api/call/classify/{event}").text
            assert "event: complete" in answer and '"label": "7"' in answer, answer
        client = Client(app_url, verbose=False)
        assert client.predict(handle_file(EXAMPLES_DIR / "mnist-test-7.png"), api_name="/classify")["label"] == "7"
        link = http.get("gradio_api/deep_link", params={"session_hash": client.session_hash})
        assert link.status_code == 200 and link.json(), link.text  # the session's configs, built when read


def quadratic_calls(url: str, count: int) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(count):
            data = ["lesson", 1.0, 20, 42, 1.1, 1.1, 1.1, "mae"]
            event = http.post("gradio_api/call/quadratic_loss", json={"data": data}).json()["event_id"]
            assert "event: complete" in http.get(f"gradio_api/call/quadratic_loss/{event}").text


def test_the_space_does_not_rebuild_gradios_monitoring_summary_after_every_event(monkeypatch):
    """Gradio rebuilds a pandas summary of its last events after each one unless told otherwise (space.py)."""
    from gradio.queueing import Queue

    from support.serving import free_port

    summaries = []
    real_get_df = Queue._get_df
    spy = staticmethod(lambda records: summaries.append(len(records)) or real_get_df(records))  # the real summary
    monkeypatch.setattr(Queue, "_get_df", spy)
    with serving(quadratic.tab()) as url:  # as app.py serves
        quadratic_calls(url, 5)
        assert httpx.get(url + "monitoring").status_code == 403  # the dashboard it was for is off
    assert summaries == []

    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY")  # Gradio as it comes: a summary after every event
    port = free_port()
    demo = quadratic.tab().queue()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        quadratic_calls(f"http://127.0.0.1:{port}/", 5)
    finally:
        demo.close()
    # one after each event, or one for two events that finish close together (seen once in a CI run: [1, 2, 3, 5])
    assert summaries[-1] == 5 and len(summaries) >= 3 and summaries == sorted(set(summaries)), summaries


def test_composing_the_space_builds_no_server_app_and_launch_builds_the_one_that_serves(classifier, baseline,
                                                                                       monkeypatch):
    gradios = App.__dict__["create_app"].__func__
    built = []
    monkeypatch.setattr(App, "create_app", staticmethod(
        lambda blocks, *args, **kwargs: built.append(blocks) or gradios(blocks, *args, **kwargs)))
    demo = build_demo(classifier, baseline)
    assert built == [] and demo.app is None
    with serving(demo) as url:
        assert built and all(blocks is demo for blocks in built)  # queued and launched: the Space's own
        client = Client(url, verbose=False)
        assert client.predict(handle_file(EXAMPLES_DIR / "mnist-test-7.png"), api_name="/classify")["label"] == "7"
    assert quadratic.tab().app is not None  # outside build_demo a Blocks gets its app as Gradio makes it


RETURNS_FREED_MEMORY = """
import torch
from dlcourse.ui.space import return_freed_memory

def rss_mb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024

kept = [torch.ones(64) for _ in range(400_000)]  # ~150 MB of small blocks on the heap
del kept[:-1]  # freed, except the last, which pins the top of the heap as a live object would
before = rss_mb()
return_freed_memory()
print(before - rss_mb())
"""


def test_return_freed_memory_gives_freed_heap_back_to_the_system():
    run = subprocess.run([sys.executable, "-c", RETURNS_FREED_MEMORY], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout) > 100  # MB returned; glibc alone keeps them
