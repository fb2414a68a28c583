"""Framing: oversized headers and bodies, chunked bodies, content types and encodings, JSON that is cheap
to send and expensive to parse."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from tests.service.conftest import Server

from .conftest import HOSTILE_SETTINGS, raw_request, status_of


def test_giant_header_gets_431_and_a_closed_connection(tiny_server: Server) -> None:
    head = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32_000_000 + b"\r\n\r\n")
    response = raw_request(tiny_server, head)
    assert status_of(response) == 431, response[:200]


def test_many_headers_get_431(tiny_server: Server) -> None:
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(400))
    response = raw_request(tiny_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert status_of(response) == 431, response[:200]


def test_headers_just_within_the_limit_are_served(tiny_server: Server) -> None:
    value = "v" * (HOSTILE_SETTINGS["max_header_bytes"] - 200)
    r = httpx.get(f"{tiny_server.url}/healthz", headers={"x-pad": value}, timeout=10)
    assert r.status_code == 200


def test_chunked_body_past_the_limit_gets_413(tiny_server: Server) -> None:
    def chunks():
        for _ in range(100):
            yield b" " * 65536  # 6.5 MB of whitespace, more than max_body_bytes (4 MB)

    r = httpx.post(f"{tiny_server.url}/encode", content=chunks(), headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 413
    assert r.json()["error"]["param"] == "body"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml"])
def test_other_content_types_get_415(tiny_server: Server, content_type: str) -> None:
    r = httpx.post(f"{tiny_server.url}/encode", content=b'{"texts": ["a"]}', headers={"content-type": content_type},
                   timeout=10)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == {
        "message": f"content-type {content_type} is not supported; send application/json",
        "type": "invalid_request_error", "param": "content-type", "code": 415,
    }


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
def test_json_content_types_are_accepted(tiny_server: Server, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = httpx.post(f"{tiny_server.url}/encode", content=b'{"texts": ["a"]}', headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def test_gzip_bomb_is_refused_without_decompressing(tiny_server: Server) -> None:
    bomb = gzip.compress(b'{"texts": ["' + b"a" * 50_000_000 + b'"]}')
    assert len(bomb) < 100_000
    r = httpx.post(f"{tiny_server.url}/encode", content=bomb,
                   headers={"content-type": "application/json", "content-encoding": "gzip"}, timeout=30)
    assert r.status_code == 415
    assert r.json()["error"]["param"] == "content-encoding"


@pytest.mark.parametrize("body", [
    b'{"tokens": [' + b",".join([b"[1]"] * 900_000) + b"]}",
    b'{"tokens": [[2, 3]], "return_attentions": true, "attention_layers": [' + b",".join([b"1"] * 1_500_000) + b"]}",
    b"{" + b",".join(b'"k%d": 1' % i for i in range(300_000)) + b"}",
], ids=["a-million-lists", "a-million-layers", "300k-keys"])
def test_json_with_too_many_values_gets_413_before_parsing(tiny_server: Server, body: bytes) -> None:
    r = httpx.post(f"{tiny_server.url}/encode", content=body, headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 413, r.text[:300]
    assert r.json()["error"]["param"] == "body"
    assert "max_json_values" in r.json()["error"]["message"]


def test_commas_inside_strings_do_not_count_as_values(tiny_server: Server) -> None:
    text = ",[{:" * 5000  # 20,000 characters of JSON punctuation inside one string
    body = json.dumps({"texts": [text] * 4, "truncate": True}).encode()
    r = httpx.post(f"{tiny_server.url}/encode", content=body, headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 200, r.text[:300]
