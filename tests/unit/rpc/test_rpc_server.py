"""The JSON-RPC 2.0 protocol over real HTTP (raw requests, not the client)."""

from __future__ import annotations

import http.client
import json

import pytest
from rpc_helpers import post_json, raw_post

from o2ocli.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    TX_REJECTED,
)


def req(method, params=None, id_=1):
    request = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        request["params"] = params
    if id_ is not ...:
        request["id"] = id_
    return request


def test_single_call_positional_and_named(server):
    status, reply = post_json(server.url, req("add", [2, 3], 7))
    assert status == 200
    assert reply == {"jsonrpc": "2.0", "id": 7, "result": 5}
    status, reply = post_json(server.url, req("add", {"a": 1, "b": 2}, "x"))
    assert reply == {"jsonrpc": "2.0", "id": "x", "result": 3}
    # params omitted = no arguments; id null is a request (answered), not a notification
    assert post_json(server.url, req("getinfo", id_=None))[1]["result"]["blocks"] == 0


def test_response_is_compact_json(server):
    status, headers, body = raw_post(server.url, json.dumps(req("echo", [[1, {"a": 2}]])))
    assert headers["Content-Type"].startswith("application/json")
    assert body == b'{"jsonrpc":"2.0","id":1,"result":[1,{"a":2}]}'


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("nosuch", [], METHOD_NOT_FOUND),
        ("add", [1, 2, 3], INVALID_PARAMS),
        ("add", [], INVALID_PARAMS),
        ("add", {"a": 1, "zzz": 2}, INVALID_PARAMS),
        ("typeerror_inside", [3], INTERNAL_ERROR),
        ("boom", [], INTERNAL_ERROR),
        ("getbytes", [], INTERNAL_ERROR),
    ],
)
def test_errors_are_http_200_with_error_object(server, method, params, code):
    status, reply = post_json(server.url, req(method, params, 5))
    assert status == 200
    assert reply["id"] == 5 and "result" not in reply
    assert reply["error"]["code"] == code
    assert "Traceback" not in reply["error"]["message"]


def test_rpc_error_from_method_keeps_code_message_data(server):
    reply = post_json(server.url, req("reject", []))[1]
    assert reply["error"] == {
        "code": TX_REJECTED,
        "message": "transaction rejected: fee too low",
        "data": {"reason": "fee-too-low"},
    }


def test_async_method(server):
    assert post_json(server.url, req("asleep", [0.01, [1, 2]]))[1]["result"] == [1, 2]


def test_notification_gets_no_response(server):
    status, _, body = raw_post(server.url, json.dumps(req("add", [1], id_=...)))
    assert (status, body) == (204, b"")
    # even a failing notification
    status, _, body = raw_post(server.url, json.dumps(req("nosuch", [], id_=...)))
    assert (status, body) == (204, b"")


def test_batch_mixed_in_order(server):
    batch = [
        req("add", [1, 2], 1),
        req("nosuch", [], 2),
        req("add", [5], id_=...),  # notification: no entry
        req("echo", ["x"], "three"),
        42,  # not a request object
    ]
    status, reply = post_json(server.url, batch)
    assert status == 200
    assert [r["id"] for r in reply] == [1, 2, "three", None]
    assert reply[0]["result"] == 3
    assert reply[1]["error"]["code"] == METHOD_NOT_FOUND
    assert reply[2]["result"] == "x"
    assert reply[3]["error"]["code"] == INVALID_REQUEST


def test_empty_batch_is_one_invalid_request(server):
    status, reply = post_json(server.url, [])
    assert status == 200
    assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST


def test_all_notification_batch_is_empty_204(server):
    status, _, body = raw_post(server.url, json.dumps([req("add", [1], id_=...)] * 3))
    assert (status, body) == (204, b"")


def test_batch_too_long(start_server):
    st = start_server(max_batch=3)
    reply = post_json(st.url, [req("add", [1], i) for i in range(4)])[1]
    assert reply["error"]["code"] == INVALID_REQUEST and "batch" in reply["error"]["message"]
    assert len(post_json(st.url, [req("add", [1], i) for i in range(3)])[1]) == 3


@pytest.mark.parametrize(
    "body",
    [b'{"jsonrpc": "2.0", "id": 1, "method": "add"', b"", b"\xff\xfe\x00garbage", b"NaN",
     # Fuzz finding: a number that overflows to infinity parsed, and echoing it as
     # the id failed (HTTP 500, a traceback in the log).
     b'{"id": 1e999999}', b'{"jsonrpc": "2.0", "id": -1e400, "method": "add", "params": [1]}',
     b'[{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1e309]}]'],
)
def test_parse_error(server, body):
    status, _, data = raw_post(server.url, body)
    assert status == 200
    reply = json.loads(data)
    assert reply["id"] is None and reply["error"]["code"] == PARSE_ERROR


def test_deeply_nested_json_is_a_parse_error(server):
    reply = json.loads(raw_post(server.url, b"[" * 100_000 + b"]" * 100_000)[2])
    assert reply["error"]["code"] == PARSE_ERROR


@pytest.mark.parametrize(
    ("request_", "reply_id"),
    [
        ({"jsonrpc": "1.0", "id": 1, "method": "add", "params": [1]}, 1),
        ({"id": 2, "method": "add", "params": [1]}, 2),
        ({"jsonrpc": "2.0", "id": 3, "method": 5, "params": [1]}, 3),
        ({"jsonrpc": "2.0", "id": 4, "params": [1]}, 4),
        ({"jsonrpc": "2.0", "id": 5, "method": "add", "params": "1"}, 5),
        ({"jsonrpc": "2.0", "id": {"bad": "id"}, "method": "add", "params": [1]}, None),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, None),  # invalid, so answered
        ("not an object", None),
    ],
)
def test_invalid_request(server, request_, reply_id):
    status, reply = post_json(server.url, request_)
    assert status == 200
    assert reply["error"]["code"] == INVALID_REQUEST
    assert reply["id"] == reply_id


def test_body_over_max_body_is_413(start_server):
    st = start_server(max_body=1024)
    small = json.dumps(req("echo", ["a" * 900]))
    assert post_json(st.url, json.loads(small))[0] == 200
    status, _, data = raw_post(st.url, json.dumps(req("echo", ["a" * 2000])))
    assert status == 413
    assert json.loads(data)["error"]["code"] == INVALID_REQUEST


def test_chunked_body_over_max_body_is_413(start_server):
    st = start_server(max_body=1024)
    conn = http.client.HTTPConnection("127.0.0.1", st.port, timeout=10)
    try:
        chunks = iter([b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["', b"a" * 4000, b'"]}'])
        conn.request("POST", "/", body=chunks, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == INVALID_REQUEST
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_non_post_is_405(server, method):
    status, headers, data = raw_post(server.url, b"", method=method)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert json.loads(data)["error"]["code"] == INVALID_REQUEST


def test_other_path_is_404(server):
    status, _, data = raw_post(server.url + "wallet", json.dumps(req("add", [1])))
    assert status == 404
    assert json.loads(data)["id"] is None


def test_concurrent_requests_do_not_block_the_loop(server):
    # a slow async method does not hold up other requests
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/", body=json.dumps(req("asleep", [0.5, "slow"])))
        status, reply = post_json(server.url, req("add", [1, 1]))
        assert reply["result"] == 2
        assert json.loads(conn.getresponse().read())["result"] == "slow"
    finally:
        conn.close()
