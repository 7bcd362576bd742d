"""Hostile input through the API, as a script or another program would send it, not as the browser does.

Raw HTTP (POST /gradio_api/call/<api_name>, then the event's SSE stream; files through POST
/gradio_api/upload) and gradio_client, against the whole Space served in this process. Every case gets
an error that says what is wrong, and the next good request to the same endpoint is answered. The server
never opens a file it was not given: an audit hook watches every file this process opens. The same cases,
and the URLs Gradio's MCP server would fetch, go through the MCP route too (at the end of this file).
"""
from __future__ import annotations

import base64
import http.server
import io
import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gradio.utils import get_upload_folder
from gradio_client import handle_file
from PIL import Image

from conftest import EXAMPLES_DIR
from test_mcp import call as mcp_call
from test_mcp import data_url, texts

SEVEN = EXAMPLES_DIR / "mnist-test-7.png"
META = {"_type": "gradio.FileData"}
NOT_UPLOADED = "Only files uploaded to this app can be used"
GRADIO_REFUSES_PATH = "was not uploaded by a user"


# ---------------------------------------------------------------- the server must not open these

OPENED: list[str] = []
WATCHED: list[str] = []
_HOOKED = False
TOKENS: dict[Path, str] = {}


def _audit(event: str, args: tuple) -> None:
    if event == "open" and WATCHED and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if any(path.startswith(watched) or os.path.realpath(path).startswith(watched) for watched in WATCHED):
            OPENED.append(path)


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """A file outside Gradio's upload folder, a real image of a 7 with a unique token after its end:
    decoded, it would be classified; served, the token would show; opened, the audit hook records it."""
    folder = tmp_path_factory.mktemp("secret")
    path = folder / "secret-seven.png"
    TOKENS[path] = f"SECRET-{uuid.uuid4()}"
    path.write_bytes(SEVEN.read_bytes() + TOKENS[path].encode())
    global _HOOKED
    if not _HOOKED:  # an audit hook cannot be removed: add it once; it records nothing once WATCHED is empty
        sys.addaudithook(_audit)
        _HOOKED = True
    WATCHED.append(os.path.realpath(folder))
    yield path
    WATCHED.clear()


def token(secret: Path) -> str:
    return TOKENS[secret]  # not read back from the file: the test's own reading would count


@pytest.fixture(autouse=True)
def nothing_secret_opened():
    OPENED.clear()
    yield
    assert not OPENED, f"the server opened a file it was not given: {OPENED}"


# ---------------------------------------------------------------- raw HTTP


@dataclass
class Answer:
    kind: str  # "complete", "error", or "http" when the POST itself was refused
    value: Any  # the outputs, the error message, or the HTTP body
    status: int = 200
    raw: str = ""

    @property
    def message(self) -> str:
        return str(self.value)


class Raw:
    """POST /gradio_api/call/<api_name> with a body, then read the event's stream to its end."""

    def __init__(self, url: str):
        self.base = url + "gradio_api"
        self.http = httpx.Client(timeout=60)

    def call(self, api_name: str, data: Any = None, *, body: str | None = None) -> Answer:
        content = body if body is not None else json.dumps({"data": data})  # NaN and Infinity as JSON allows
        posted = self.http.post(f"{self.base}/call/{api_name}", content=content,
                                headers={"Content-Type": "application/json"})
        if posted.status_code != 200:
            return Answer("http", posted.text, posted.status_code, posted.text)
        stream = self.http.get(f"{self.base}/call/{api_name}/{posted.json()['event_id']}").text
        kind, value = "none", None
        for line in stream.splitlines():
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: ") and kind in ("complete", "error"):
                value = json.loads(line[len("data: "):])
        if kind == "error":
            value = (value or {}).get("error")
        return Answer(kind, value, raw=stream)

    def upload(self, name: str, content: bytes) -> str:
        response = self.http.post(f"{self.base}/upload", files=[("files", (name, content, "application/octet-stream"))])
        response.raise_for_status()
        return response.json()[0]


@pytest.fixture(scope="module")
def raw(app_url) -> Raw:
    return Raw(app_url)


@pytest.fixture(scope="module")
def uploaded_seven(raw) -> dict:
    return {"path": raw.upload("seven.png", SEVEN.read_bytes()), "meta": META}


def png_data_url(path: Path = SEVEN) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


QUAD = ["lesson", 1.0, 20, 42, 1.1, 1.1, 1.1]  # dataset, noise, points, seed, a, b, c


def fit_args(**changes: Any) -> list:
    args = dict(zip(["dataset", "noise", "points", "seed", "a", "b", "c"], QUAD), loss="mse", lr=0.01,
                momentum=0.0, steps=5, standardise=False, schedule="constant")
    args.update(changes)
    return list(args.values())


def loss_args(**changes: Any) -> list:
    args = dict(zip(["dataset", "noise", "points", "seed", "a", "b", "c"], QUAD), loss="mae")
    args.update(changes)
    return list(args.values())


def good_request_succeeds(raw: Raw, api_name: str, uploaded_seven: dict) -> None:
    """The endpoint still answers a sensible request, correctly."""
    good = {
        "classify": [uploaded_seven],
        "classify_batch": [[uploaded_seven]],
        "pixel_similarity": [uploaded_seven, "3 or 7", "L2"],
        "fit_quadratic": fit_args(),
        "quadratic_loss": loss_args(a=3, b=2, c=1),
        "classify_drawing": [{"background": None, "layers": [], "composite": uploaded_seven}],
    }[api_name]
    answer = raw.call(api_name, good)
    assert answer.kind == "complete", (api_name, answer.message)
    if api_name in ("classify", "pixel_similarity", "classify_drawing"):
        assert answer.value[0]["label"] == "7"
    if api_name == "classify_batch":
        assert answer.value[0][0]["label"] == "7"
    if api_name == "fit_quadratic":
        assert answer.value[0]["final"]["loss"] < answer.value[0]["trajectory"]["loss"][0]


# ---------------------------------------------------------------- the cases

# (endpoint, data sent, words the error must contain). `SECRET` and `UPLOAD_DIR` are filled in per test.
SECRET, UPLOAD_DIR, LOCAL_URL = "<secret>", "<upload-dir>", "<local-url>"
REFUSED = [
    # server files, as a file object with Gradio's marker, without it, and as a plain string
    ("classify", [{"path": "/etc/passwd", "meta": META}], GRADIO_REFUSES_PATH),
    ("classify", [{"path": "/etc/passwd"}], NOT_UPLOADED),
    ("classify", ["/etc/passwd"], "Input should be a valid dictionary"),
    ("classify", [{"path": SECRET, "meta": META}], GRADIO_REFUSES_PATH),
    ("classify", [{"path": SECRET}], NOT_UPLOADED),
    ("classify", [SECRET], "Input should be a valid dictionary"),
    ("classify", [{"path": f"{UPLOAD_DIR}/../../etc/passwd"}], NOT_UPLOADED),
    ("classify", [{"path": "seven.png", "url": f"{LOCAL_URL}/seven.png"}], NOT_UPLOADED),
    ("classify", [{"path": f"{LOCAL_URL}/seven.png", "meta": META}], "points to this machine or a private network"),
    ("classify_batch", [[{"path": f"{LOCAL_URL}/seven.png", "meta": META}]], "points to this machine or a private network"),
    ("classify_batch", [[{"path": "/etc/passwd", "meta": META}]], GRADIO_REFUSES_PATH),
    ("classify_batch", [[{"path": SECRET}]], "'meta' field must be explicitly provided"),
    ("classify_batch", [["/etc/passwd"]], "'meta' field must be explicitly provided"),
    ("pixel_similarity", [{"path": SECRET}, "3 or 7", "L1"], NOT_UPLOADED),
    ("pixel_similarity", [{"path": "/etc/passwd", "meta": META}, "3 or 7", "L1"], GRADIO_REFUSES_PATH),
    # the sketchpad's endpoint is private (not in the API page) but reachable over HTTP: same checks
    ("classify_drawing", [{"background": None, "layers": [], "composite": {"path": SECRET}}], "'meta' field must be explicitly provided"),
    ("classify_drawing", [{"background": None, "layers": [], "composite": {"path": SECRET, "meta": META}}], GRADIO_REFUSES_PATH),
    ("classify_drawing", [{"background": None, "layers": [], "composite": {"path": f"{LOCAL_URL}/seven.png", "meta": META}}], "points to this machine or a private network"),
    # bad base64 and base64 that is not an image
    ("classify", [{"url": "data:image/png;base64,!!!not*base64!!!"}], "could not be decoded"),
    ("classify", [{"url": "data:image/png;base64," + base64.b64encode(b"root:x:0:0:root:/root:/bin/sh").decode()}], "could not be decoded"),
    # wrong types, missing and extra fields
    ("classify", [42], "Input should be a valid dictionary"),
    ("classify", [None], "No image was given"),
    ("classify", [], "didn't receive enough input values (needed: 1, got: 0)"),
    ("classify_batch", [[]], "No images were given"),
    ("classify_batch", ["/etc/passwd"], "Input should be a valid list"),
    ("pixel_similarity", [None, "3 or 7", "L1"], "No image was given"),
    ("pixel_similarity", [None, "3 or 7", 2], "is not in the list of choices"),
    ("fit_quadratic", ["lesson"], "didn't receive enough input values (needed: 13, got: 1)"),
    ("fit_quadratic", fit_args(a="abc"), "a must be a number, not 'abc'"),
    ("fit_quadratic", fit_args(noise={"a": 1}), "noise must be a number"),
    ("fit_quadratic", fit_args(dataset=["lesson"]), "Unknown data set ['lesson']"),
    ("fit_quadratic", fit_args(dataset="/etc/passwd"), "Unknown data set '/etc/passwd'"),
    ("fit_quadratic", fit_args(standardise="yes"), "standardise must be true or false, not 'yes'"),
    ("fit_quadratic", fit_args(points=0), "needs at least 3 points"),
    ("fit_quadratic", fit_args(schedule="warm restarts"),
     "Unknown schedule 'warm restarts': choose 'constant', 'cosine'"),
    ("fit_quadratic", fit_args(schedule=None), "Unknown schedule None: choose 'constant'"),
    ("fit_quadratic", fit_args(schedule={"name": "cosine"}), "Unknown schedule {'name': 'cosine'}"),
    ("quadratic_loss", loss_args(loss=None), "Unknown loss None"),
    ("quadratic_loss", loss_args(seed=None), "seed is missing"),
    # NaN and infinities, as strings and as the literals JSON parsers accept
    ("fit_quadratic", fit_args(a="NaN"), "a must be a finite number, not nan"),
    ("quadratic_loss", loss_args(b="-Infinity"), "b must be a finite number, not -inf"),
    ("quadratic_loss", loss_args(c=float("nan")), "c must be a finite number, not nan"),
    ("fit_quadratic", fit_args(momentum=float("inf")), "momentum must be a finite number, not inf"),
]


def fill(value: Any, secret: Path, local_url: str) -> Any:
    if isinstance(value, str):
        return (value.replace(SECRET, str(secret)).replace(UPLOAD_DIR, get_upload_folder())
                .replace(LOCAL_URL, local_url))
    if isinstance(value, list):
        return [fill(item, secret, local_url) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, secret, local_url) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def local_site():
    """A web server on localhost that records every request: a URL given as a file must not be fetched."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(SEVEN.read_bytes())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


@pytest.mark.parametrize("api_name, data, words", REFUSED, ids=[f"{i:02d}-{c[0]}-{c[2][:32]}" for i, c in enumerate(REFUSED)])
def test_refused_with_a_clear_error_then_the_next_request_succeeds(raw, uploaded_seven, secret, local_site, api_name, data, words):
    url, hits = local_site
    answer = raw.call(api_name, fill(data, secret, url))
    assert answer.kind == "error", f"expected an error, got {answer.kind}: {answer.raw[:300]}"
    assert words in answer.message, answer.message
    assert token(secret) not in answer.raw and "root:x:0:0" not in answer.raw
    assert not hits, f"the server fetched {hits}"
    good_request_succeeds(raw, api_name, uploaded_seven)


def test_very_long_strings_are_not_echoed_back_whole(raw, uploaded_seven):
    answer = raw.call("quadratic_loss", loss_args(loss="m" * 1_000_000))
    assert answer.kind == "error" and "Unknown loss 'mmm" in answer.message and len(answer.message) < 300
    answer = raw.call("fit_quadratic", fit_args(a="9" * 100_000 + "x"))
    assert answer.kind == "error" and "a must be a number" in answer.message and len(answer.message) < 300
    # Gradio checks a choice before our code runs, and quotes the value whole: clear, if long
    answer = raw.call("pixel_similarity", [uploaded_seven, "x" * 100_000, "L1"])
    assert answer.kind == "error" and "is not in the list of choices: ['3 or 7', 'all ten digits']" in answer.message
    good_request_succeeds(raw, "pixel_similarity", uploaded_seven)


def test_huge_numbers_are_clamped_and_said_so(raw, uploaded_seven):
    fit = raw.call("fit_quadratic", fit_args(points=10**9, a=1e308, lr=1e6, steps=5, loss="mae"))
    assert fit.kind == "complete", fit.message
    notes = " ".join(fit.value[0]["notes"])
    assert "points 1,000,000,000 is outside [3, 1,000]: using 1,000" in notes
    assert "a 1e+308 is outside" in notes and "learning rate 1e+06 is outside" in notes
    assert fit.value[0]["settings"]["points"] == 1000 and len(fit.value[0]["data"]["x"]) == 1000
    steps = raw.call("fit_quadratic", fit_args(steps=-(10**30)))
    assert steps.kind == "complete" and steps.value[0]["settings"]["steps"] == 1
    assert "is outside [1, 10,000]: using 1." in " ".join(steps.value[0]["notes"])


def test_a_request_that_is_not_json_or_has_no_list_is_refused_by_http(raw, uploaded_seven):
    for body, words in (("{not json", "JSON decode error"), ('{"data": {"a": 1}}', "Input should be a valid list"),
                        ('{"nodata": []}', "Field required")):
        answer = raw.call("classify", body=body)
        assert answer.kind == "http" and answer.status == 422 and words in answer.value, answer.value
    good_request_succeeds(raw, "classify", uploaded_seven)


def test_an_inline_base64_image_is_accepted(raw):
    answer = raw.call("pixel_similarity", [{"url": png_data_url()}, "3 or 7", "L1"])
    assert answer.kind == "complete" and answer.value[0]["label"] == "7"
    answer = raw.call("classify", [{"url": png_data_url(EXAMPLES_DIR / "photo-paper-9.png")}])
    assert answer.kind == "complete" and answer.value[0]["label"] == "9"


def test_uploads_beyond_the_size_limit_are_refused_while_they_arrive(raw, uploaded_seven):
    response = raw.http.post(f"{raw.base}/upload", files=[("files", ("big.png", b"\0" * (26 * 2**20), "image/png"))])
    assert response.status_code == 413 and "File size exceeded maximum allowed size of 26214400 bytes" in response.text
    good_request_succeeds(raw, "classify", uploaded_seven)


def test_an_upload_named_with_dots_and_slashes_stays_in_the_upload_folder(raw, uploaded_seven):
    path = raw.upload("../../../etc/evil.png", SEVEN.read_bytes())
    assert Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve()) and Path(path).name == "evil.png"
    assert not Path("/etc/evil.png").exists()
    answer = raw.call("pixel_similarity", [{"path": path, "meta": META}, "3 or 7", "L1"])
    assert answer.kind == "complete" and answer.value[0]["label"] == "7"


@pytest.mark.parametrize("where", ["/etc/passwd", "{secret}", "{root}/model/ideal_digits.pt", "{root}/app.py",
                                   "{upload}/../../etc/passwd", "{upload}/%2e%2e/%2e%2e/etc/passwd"])
def test_the_file_route_serves_no_file_it_was_not_meant_to(raw, secret, where):
    path = where.format(secret=secret, root=EXAMPLES_DIR.parent, upload=get_upload_folder())
    response = raw.http.get(f"{raw.base}/file={path}")
    assert response.status_code in (403, 404), (path, response.status_code)
    assert "File not allowed" in response.text or response.status_code == 404
    assert token(secret) not in response.text and "root:x:0:0" not in response.text


def test_files_the_app_made_are_served(raw, uploaded_seven):
    """The file route is not simply closed: an uploaded file and a picture the app drew are served."""
    assert raw.http.get(f"{raw.base}/file={uploaded_seven['path']}").content == SEVEN.read_bytes()
    answer = raw.call("pixel_similarity", [uploaded_seven, "3 or 7", "L1"])
    heatmap = answer.value[5]
    picture = Image.open(io.BytesIO(raw.http.get(heatmap["url"]).content))
    assert picture.size == (280, 280)


def test_gradio_client_gets_the_same_clear_errors(client, tmp_path):
    notes = tmp_path / "passwd.png"
    notes.write_text("root:x:0:0:root:/root:/bin/sh\n")
    with pytest.raises(Exception, match="not an image that can be read"):
        client.predict(handle_file(notes), api_name="/classify")
    with pytest.raises(Exception, match="Unknown data set"):
        client.predict(dataset="/etc/passwd", api_name="/fit_quadratic")
    tall = tmp_path / "tall.png"
    Image.new("1", (20_000, 3_000)).save(tall)  # 60 megapixels in a small file
    with pytest.raises(Exception, match="the limit is 50 megapixels"):
        client.predict(handle_file(tall), "3 or 7", "L1", api_name="/pixel_similarity")
    assert client.predict(handle_file(SEVEN), "all ten digits", "L2", api_name="/pixel_similarity")[0]["label"] == "7"


# ---------------------------------------------------------------- the MCP route
# Gradio's MCP server (/gradio_api/mcp/) makes a file out of a tool's file argument itself: a data: URL is
# decoded into a file, an http(s) URL is fetched by the server (through Gradio's SSRF check), anything else is
# refused; other arguments are checked against the tool's schema. The same promises hold as over HTTP, and
# while these cases run the process may open no connection except to the app: a hook refuses the rest.

def _beyond_the_app(url: httpx.URL, app: httpx.URL) -> bool:
    return (url.host, url.port) != (app.host, app.port)


@pytest.fixture
def network_watched(app_url, monkeypatch) -> list[str]:
    """Every HTTP request this process sends through httpx (Gradio's downloads and its client, the MCP client)
    is recorded, and any beyond the app refused, as on a machine with no network. Afterwards: none was sent
    (but those a test expected and took out of the list it was given).

    The server runs on uvloop, whose sockets no audit hook sees, so requests are watched where httpx sends them.
    """
    app = httpx.URL(app_url)
    sent: list[str] = []
    send_async, send = httpx.AsyncHTTPTransport.handle_async_request, httpx.HTTPTransport.handle_request

    def refuse(request: httpx.Request) -> None:
        sent.append(str(request.url))
        if _beyond_the_app(request.url, app):
            raise httpx.ConnectError(f"the tests reach nothing beyond the app: {request.url}", request=request)

    async def watched_async(self, request):
        refuse(request)
        return await send_async(self, request)

    def watched(self, request):
        refuse(request)
        return send(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", watched_async)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", watched)
    yield sent
    monkeypatch.undo()
    elsewhere = [url for url in sent if _beyond_the_app(httpx.URL(url), app)]
    assert not elsewhere, f"requests beyond the app: {elsewhere}"


def mcp_good_request_succeeds(app_url: str) -> None:
    result = mcp_call(app_url, "classify", {"image": data_url(SEVEN)})
    assert not result.isError and "'label': '7'" in texts(result)[0], texts(result)


LOCAL_PORT, APP_URL = "<local-port>", "<app-url>"
NOT_A_URL = "Invalid file data format, provide a url ('http://...' or 'https://...')"
PRIVATE = "points to this machine or a private network"
MCP_REFUSED = [
    # server files: as a path, a file: URL, through "..", and as Gradio's file object (not a string: refused)
    ("classify", {"image": "/etc/passwd"}, NOT_A_URL),
    ("classify", {"image": SECRET}, NOT_A_URL),
    ("classify", {"image": f"file://{SECRET}"}, NOT_A_URL),
    ("classify", {"image": f"{UPLOAD_DIR}/../../etc/passwd"}, NOT_A_URL),
    ("classify", {"image": {"path": SECRET, "meta": META}}, "is not of type 'string'"),
    ("classify", {"image": {"path": SECRET}}, "is not of type 'string'"),
    ("pixel_similarity", {"image": SECRET, "mode": "3 or 7", "distance": "L1"}, NOT_A_URL),
    # URLs to this machine and to private addresses, spelled in several ways, and the app's own file route
    ("classify", {"image": f"{LOCAL_URL}/seven.png"}, PRIVATE),
    ("classify", {"image": f"http://localhost:{LOCAL_PORT}/seven.png"}, PRIVATE),
    ("classify", {"image": f"http://[::1]:{LOCAL_PORT}/seven.png"}, PRIVATE),
    ("classify", {"image": f"http://2130706433:{LOCAL_PORT}/seven.png"}, PRIVATE),
    ("classify", {"image": f"http://0x7f000001:{LOCAL_PORT}/seven.png"}, PRIVATE),
    ("classify", {"image": f"http://user:pw@127.0.0.1:{LOCAL_PORT}/seven.png"}, PRIVATE),
    ("classify", {"image": "http://10.0.0.1/seven.png"}, PRIVATE),
    ("classify", {"image": "http://192.168.1.1/seven.png"}, PRIVATE),
    ("classify", {"image": "http://169.254.169.254/latest/meta-data/seven.png"}, PRIVATE),
    ("classify", {"image": f"{APP_URL}gradio_api/file={SECRET}"}, PRIVATE),
    ("classify", {"image": f"ftp://127.0.0.1:{LOCAL_PORT}/seven.png"}, NOT_A_URL),
    ("pixel_similarity", {"image": f"{LOCAL_URL}/seven.png", "mode": "3 or 7", "distance": "L1"}, PRIVATE),
    # not an image, and not base64
    ("classify", {"image": "data:image/png;base64," + base64.b64encode(b"root:x:0:0:root:/root:/bin/sh").decode()},
     "not an image that can be read"),
    ("classify", {"image": "data:text/plain;base64," + base64.b64encode(b"hello").decode()}, "not an image that can be read"),
    ("classify", {"image": "data:image/png;base64,!!!not*base64!!!"}, "Invalid base64-encoded string"),
    # wrong types, missing, extra and unknown
    ("classify", {}, "'image' is a required property"),
    ("classify", {"image": 42}, "42 is not of type 'string'"),
    ("classify", {"image": data_url(SEVEN), "model": "/etc/passwd"}, "`model` is not a valid key-word argument"),
    ("fit_quadratic", {"a": "NaN"}, "'NaN' is not of type 'number'"),
    ("fit_quadratic", {"dataset": "/etc/passwd"}, "'/etc/passwd' is not one of ['lesson', 'roller_coaster']"),
    ("fit_quadratic", {"points": 1}, "needs at least 3 points"),
    ("fit_quadratic", {"schedule": "linear"}, "'linear' is not one of ['constant', 'cosine', 'one-cycle']"),
    ("no_such_tool", {}, "Unknown tool"),
]


def mcp_fill(value: Any, secret: Path, local_url: str, app_url: str) -> Any:
    value = fill(value, secret, local_url)
    if isinstance(value, str):
        return value.replace(LOCAL_PORT, local_url.rsplit(":", 1)[1]).replace(APP_URL, app_url)
    if isinstance(value, dict):
        return {key: mcp_fill(item, secret, local_url, app_url) for key, item in value.items()}
    return value


@pytest.mark.parametrize("tool, arguments, words", MCP_REFUSED,
                         ids=[f"{i:02d}-{c[0]}-{c[2][:32]}" for i, c in enumerate(MCP_REFUSED)])
def test_mcp_refuses_with_a_clear_error_then_the_next_call_succeeds(app_url, secret, local_site, network_watched,
                                                                    tool, arguments, words):
    url, hits = local_site
    result = mcp_call(app_url, tool, mcp_fill(arguments, secret, url, app_url))
    message = " ".join(texts(result))
    assert result.isError, f"expected an error, got {message[:300]}"
    assert words in message, message
    assert len(message) < 400 and token(secret) not in message and "root:x:0:0" not in message, message
    assert not hits, f"the server fetched {hits}"
    mcp_good_request_succeeds(app_url)


@pytest.mark.parametrize("url", ["http://93.184.215.14/seven.png",  # a public address
                                 "https://huggingface.co/datasets/someone/digits/resolve/main/seven.png"])
def test_mcp_leaves_a_public_image_url_to_gradio_to_fetch(app_url, network_watched, url):
    """A public address passes the app's check, and so does the Hub, whose names a Space may resolve to private
    addresses (Gradio trusts them); Gradio then fetches the image (refused here: the tests stay offline)."""
    result = mcp_call(app_url, "classify", {"image": url})
    assert result.isError and f"the tests reach nothing beyond the app: {url}" in texts(result)[0], texts(result)
    assert url in network_watched
    network_watched[:] = [sent for sent in network_watched if sent != url]  # the one request expected
    mcp_good_request_succeeds(app_url)


def test_mcp_refuses_an_image_beyond_the_pixel_limit(app_url, network_watched):
    buffer = io.BytesIO()
    Image.new("1", (20_000, 3_000)).save(buffer, format="PNG")  # 60 megapixels in 10 KB
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    result = mcp_call(app_url, "classify", {"image": image})
    assert result.isError and "the limit is 50 megapixels" in texts(result)[0]
    mcp_good_request_succeeds(app_url)


def test_mcp_refuses_a_request_over_4_mb_before_reading_it(app_url, network_watched):
    """The mcp package's server reads at most 4 MB of a request (its default, which Gradio keeps): a bigger
    inline image is refused by HTTP 413 while it arrives. Up to that, long strings get a refusal that quotes them."""
    big = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 2**20)).decode()
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "classify", "arguments": {"image": big}}})
    response = httpx.post(app_url + "gradio_api/mcp/", content=body, timeout=60,
                          headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    assert response.status_code == 413 and "Request body too large" in response.text
    mcp_good_request_succeeds(app_url)
    # 3 MB strings where a file and a number belong: refused (Gradio and the schema check quote them whole)
    result = mcp_call(app_url, "classify", {"image": "A" * 3_000_000})
    assert result.isError and texts(result)[0].startswith(NOT_A_URL)
    result = mcp_call(app_url, "fit_quadratic", {"a": "9" * 3_000_000})
    assert result.isError and texts(result)[0].endswith("is not of type 'number'")
    mcp_good_request_succeeds(app_url)


def test_mcp_accepts_an_inline_image_just_under_the_limit(app_url, network_watched):
    """A 2,200 px seven with noise that defeats compression: ~2.4 MB of PNG (~3.3 MB as base64) still arrives."""
    side = 2200
    seven = np.asarray(Image.open(SEVEN).convert("L").resize((side, side)), dtype=np.uint8)
    noise = np.frombuffer(os.urandom(side * side), dtype=np.uint8).reshape(side, side) % 16
    buffer = io.BytesIO()
    Image.fromarray(np.maximum(seven, noise)).save(buffer, format="PNG")
    assert 2.2 * 2**20 < len(buffer.getvalue()) < 2.9 * 2**20
    result = mcp_call(app_url, "classify", {"image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()})
    assert not result.isError and "'label': '7'" in texts(result)[0], texts(result)
