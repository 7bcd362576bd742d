"""Each tab is a gr.Blocks of its own that the Space renders: served alone, a tab has the components, API
endpoints (with their docs) and MCP tools it has in the Space, and the Space has nothing else."""
from __future__ import annotations

import httpx
import pytest

from conftest import serving
from dlcourse.ui import classify, pixel_similarity, quadratic


def what_a_visitor_gets(url: str) -> dict:
    """The page's layout (type, label, elem_id, children), the API's named endpoints and the MCP tools of a served app."""
    config = httpx.get(url + "config", timeout=30).json()
    components = {c["id"]: c for c in config["components"]}

    def tree(node: dict) -> tuple:
        props = components.get(node["id"], {"type": "blocks", "props": {}})["props"]
        return (components.get(node["id"], {}).get("type"), props.get("label"), props.get("elem_id"),
                [tree(child) for child in node.get("children", [])])

    info = httpx.get(url + "gradio_api/info", timeout=30).json()["named_endpoints"]
    for endpoint in info.values():
        endpoint.pop("code_snippets")  # they name the server's URL
    tools = httpx.get(url + "gradio_api/mcp/schema", timeout=30).json()
    for tool in tools:
        tool["meta"].pop("file_data_present")  # Gradio's: whether this tool or one listed before it takes a file
    return {"layout": tree(config["layout"]), "endpoints": info, "tools": {tool["name"]: tool for tool in tools}}


@pytest.fixture(scope="module")
def tabs_alone(classifier, baseline) -> list[dict]:
    tabs = [classify.tab(classifier), quadratic.tab(), pixel_similarity.tab(baseline, classifier)]
    served = []
    for tab in tabs:
        with serving(tab) as url:
            served.append(what_a_visitor_gets(url))
    return served


def test_the_space_is_its_tabs_each_served_alone_the_same(app_url, tabs_alone):
    space = what_a_visitor_gets(app_url)
    assert [set(tab["endpoints"]) for tab in tabs_alone] == [
        {"/classify", "/classify_batch"}, {"/fit_quadratic", "/quadratic_loss", "/fit_relus"},
        {"/pixel_similarity", "/learn_pixels"}]
    assert space["endpoints"] == {name: doc for tab in tabs_alone for name, doc in tab["endpoints"].items()}
    assert space["tools"] == {name: tool for tab in tabs_alone for name, tool in tab["tools"].items()}
    # the Space is its heading and a tab around each tab's own layout, unchanged
    heading, tabs = space["layout"][3]
    assert heading[0] == "markdown" and tabs[0] == "tabs"
    assert [(tab[1], tab[3]) for tab in tabs[3]] == [
        (label, alone["layout"][3]) for label, alone in zip(("Classify", "Fit a quadratic", "Pixel similarity"), tabs_alone)]
