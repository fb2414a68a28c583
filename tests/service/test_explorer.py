"""The attention explorer in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)
against a live local service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from .conftest import Server, running_server

SENTENCE = "Attention shows which words read each other."
SCREENSHOTS = Path(__file__).resolve().parents[2] / "results" / "explorer"


@pytest.fixture(scope="module")
def server(minilm_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(minilm_bundle, tmp_path_factory.mktemp("logs") / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def browser(system_tool) -> Iterator[webdriver.Chrome]:
    binary, driver = system_tool("chromium", "chromium"), system_tool("chromedriver", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--window-size=1200,1000"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def _state(browser: webdriver.Chrome) -> dict:
    return browser.execute_script("return window.attnserveExplorer")


def _encode_and_wait(browser: webdriver.Chrome, requests_before: int) -> dict:
    WebDriverWait(browser, 30).until(lambda b: _state(b)["requests"] > requests_before)
    return _state(browser)


def _api_attention(server: Server, layer: int, head: str | int) -> tuple[list[str], np.ndarray]:
    body = httpx.post(f"{server.url}/encode", json={
        "texts": [SENTENCE], "return_attentions": True, "attention_layers": [layer],
        "attention_heads": "mean" if head == "mean" else [head]}).json()
    return body["tokens"][0], np.asarray(body["attentions"][0][0][0])


def test_heatmap_matches_encode_and_follows_layer_and_head(browser: webdriver.Chrome, server: Server) -> None:
    browser.get(f"{server.url}/")  # redirects to /explorer
    WebDriverWait(browser, 30).until(lambda b: len(Select(b.find_element(By.ID, "layer")).options) == 6)
    text = browser.find_element(By.ID, "text")
    text.clear()
    text.send_keys(SENTENCE)
    browser.find_element(By.ID, "encode").click()
    first = _encode_and_wait(browser, 0)

    tokens, want = _api_attention(server, 5, "mean")  # the page starts on the last layer, mean of heads
    canvas = browser.find_element(By.ID, "heatmap")
    assert first["tokens"] == tokens
    assert int(canvas.get_attribute("data-rows")) == int(canvas.get_attribute("data-cols")) == len(tokens)
    np.testing.assert_allclose(first["matrix"], want, atol=1e-6)
    assert f"{len(tokens)} tokens · pooled vector: 384 dimensions, norm 1.0000" in browser.find_element(
        By.ID, "stats").text

    # hover over a cell: the read-out shows that cell's exact weight
    g = browser.execute_script("return geometry()")
    row, col = 2, 3
    x = g["left"] + col * 22 + 11 - canvas.size["width"] / 2  # offsets are from the canvas's centre
    y = g["top"] + row * 22 + 11 - canvas.size["height"] / 2
    ActionChains(browser).move_to_element_with_offset(canvas, x, y).perform()
    readout = browser.find_element(By.ID, "readout")
    assert (readout.get_attribute("data-row"), readout.get_attribute("data-col")) == (str(row), str(col))
    assert float(readout.get_attribute("data-value")) == pytest.approx(want[row, col], abs=1e-6)
    assert f"{want[row, col]:.6g}"[:6] in readout.text

    Select(browser.find_element(By.ID, "layer")).select_by_value("0")
    second = _encode_and_wait(browser, first["requests"])
    _, want_l0 = _api_attention(server, 0, "mean")
    np.testing.assert_allclose(second["matrix"], want_l0, atol=1e-6)
    assert not np.allclose(second["matrix"], first["matrix"], atol=1e-3)

    Select(browser.find_element(By.ID, "head")).select_by_value("7")
    third = _encode_and_wait(browser, second["requests"])
    _, want_h7 = _api_attention(server, 0, 7)
    np.testing.assert_allclose(third["matrix"], want_h7, atol=1e-6)
    assert not np.allclose(third["matrix"], second["matrix"], atol=1e-3)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "explorer.png"))


def test_too_long_text_shows_the_api_error(browser: webdriver.Chrome, server: Server) -> None:
    browser.get(f"{server.url}/explorer")
    WebDriverWait(browser, 30).until(lambda b: len(Select(b.find_element(By.ID, "layer")).options) == 6)
    browser.execute_script("document.getElementById('text').value = arguments[0]", "word " * 400)
    browser.find_element(By.ID, "encode").click()
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 30).until(lambda b: error.is_displayed())
    assert "texts[0]: 402 tokens; the model's maximum is 256" in error.text


def test_page_is_self_contained(server: Server) -> None:
    r = httpx.get(f"{server.url}/explorer")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "http://" not in r.text and "https://" not in r.text  # nothing from a CDN


def test_page_asks_for_the_key_when_keys_are_on(browser: webdriver.Chrome, tiny_bundle: Path,
                                                 tmp_path: Path) -> None:
    with running_server(tiny_bundle, tmp_path / "server.log", api_keys="sesame") as keyed:
        browser.get(f"{keyed.url}/explorer")
        error = browser.find_element(By.ID, "error")
        WebDriverWait(browser, 30).until(lambda b: error.is_displayed())
        assert "missing or invalid API key" in error.text
        key = browser.find_element(By.ID, "key")
        key.send_keys("sesame")
        browser.execute_script("document.getElementById('key').dispatchEvent(new Event('change'))")
        WebDriverWait(browser, 30).until(lambda b: len(Select(b.find_element(By.ID, "layer")).options) == 2)
        before = _state(browser)["requests"]
        browser.find_element(By.ID, "encode").click()
        state = _encode_and_wait(browser, before)
        assert not error.is_displayed()
        assert len(state["matrix"]) == len(state["tokens"]) > 2


def test_page_can_be_turned_off(tiny_bundle: Path) -> None:
    from .conftest import client_for

    with client_for(tiny_bundle, explorer=False, warmup=False) as client:
        assert client.get("/explorer").status_code == 404
        assert client.get("/").status_code == 404


@pytest.fixture(scope="module")
def pair_server(minilm_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """MiniLM beside a cross-encoder (a random-weight BertForSequenceClassification made by transformers)."""
    from tests.exporting import export_bundles
    from tests.families import make_checkpoint

    root = tmp_path_factory.mktemp("pair")
    make_checkpoint("bert", root / "checkpoint", head="classify", labels=["score"])
    export_bundles(["hf", str(root / "checkpoint"), "--output", str(root / "reranker"), "--no-optimize"])
    with running_server([str(minilm_bundle), f"reranker={root / 'reranker'}"], root / "server.log") as running:
        yield running


def test_a_rerank_model_shows_the_pairs_cross_attention(browser: webdriver.Chrome, pair_server: Server) -> None:
    """Query tokens (rows) against document tokens (columns), as /classify's attentions and segments give them."""
    query, document = "the quick fox", "a lazy dog jumps over the fox"
    browser.get(f"{pair_server.url}/explorer")
    WebDriverWait(browser, 30).until(lambda b: len(Select(b.find_element(By.ID, "modelpick")).options) == 2)
    Select(browser.find_element(By.ID, "modelpick")).select_by_visible_text("reranker (rerank)")
    assert browser.find_element(By.ID, "second").is_displayed()
    for field, value in (("text", query), ("second", document)):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "encode").click()
    state = _encode_and_wait(browser, 0)

    body = httpx.post(f"{pair_server.url}/classify", json={
        "model": "reranker", "texts": [[query, document]], "return_attentions": True, "attention_layers": [2],
        "attention_heads": "mean"}).json()  # the page starts on the last layer (3 layers), mean of heads
    tokens, segments = body["tokens"][0], body["segments"][0]
    full = np.asarray(body["attentions"][0][0][0])
    rows = [i for i, s in enumerate(segments) if s == 0]
    cols = [j for j, s in enumerate(segments) if s == 1]
    assert state["tokens"] == [tokens[i] for i in rows] and state["columns"] == [tokens[j] for j in cols]
    assert 0 < len(rows) != len(cols) > 0
    np.testing.assert_allclose(state["matrix"], full[np.ix_(rows, cols)], atol=1e-6)
    canvas = browser.find_element(By.ID, "heatmap")
    assert (int(canvas.get_attribute("data-rows")), int(canvas.get_attribute("data-cols"))) == (len(rows), len(cols))
    assert "relevance" in browser.find_element(By.ID, "stats").text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "explorer-pair.png"))
