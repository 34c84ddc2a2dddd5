import json

import numpy as np
import pytest

from raywatch.serve.extract import Extractor, HttpPayload, JsonBody, prediction_and_score, resolve_callable


def test_dict_payload_flattening():
    ex = Extractor()
    rows = ex.features(({"a": 1, "b": {"c": 2.5, "d": "x"}, "v": [1, 2], "big": list(range(1000)), "obj": object()},), {})
    assert rows == [{"a": 1, "b.c": 2.5, "b.d": "x", "v.0": 1, "v.1": 2}]


def test_numpy_scalars_become_python():
    (row,) = Extractor().features(({"a": np.float32(1.5), "b": np.int64(3), "c": np.bool_(True)},), {})
    assert row == {"a": 1.5, "b": 3, "c": True}
    assert type(row["b"]) is int


def test_list_and_array_payloads():
    ex = Extractor()
    assert ex.features(([1, 2, 3],), {}) == [{"f0": 1, "f1": 2, "f2": 3}]
    assert ex.features((np.array([1.0, 2.0]),), {}) == [{"f0": 1.0, "f1": 2.0}]
    assert ex.features((np.arange(6).reshape(3, 2),), {}) == [{"f0": 0, "f1": 1}, {"f0": 2, "f1": 3}, {"f0": 4, "f1": 5}]
    assert ex.features(([{"a": 1}, {"a": 2}],), {}) == [{"a": 1}, {"a": 2}]
    named = Extractor(feature_names=["x", "y"])
    assert named.features(([[1, 2], [3, 4]],), {}) == [{"x": 1, "y": 2}, {"x": 3, "y": 4}]


def test_max_rows_bound():
    ex = Extractor(max_rows=5)
    assert len(ex.features((np.zeros((100, 3)),), {})) == 5
    assert len(ex.features(([{"a": i} for i in range(100)],), {})) == 5


def test_json_bodies_and_kwargs():
    ex = Extractor()
    assert ex.features((json.dumps({"a": 1}).encode(),), {}) == [{"a": 1}]
    assert ex.features(('{"a": 2}',), {}) == [{"a": 2}]
    assert ex.features((), {"a": 3, "b": "z"}) == [{"a": 3, "b": "z"}]
    assert ex.features((b"\xff\xfe not json",), {}) == []
    assert ex.features(("plain text",), {}) == [{"feature": "plain text"}]


def test_http_payload_and_json_body():
    ex = Extractor()
    assert ex.features((HttpPayload(b"", b'{"amount": 12.5}'),), {}) == [{"amount": 12.5}]
    assert ex.features((HttpPayload(b"q=1", None),), {}) == [{"q": "1"}]
    assert ex.predictions(JsonBody(b'{"label": 1, "score": 0.7}')) == [{"label": 1, "score": 0.7}]


def test_starlette_request_is_not_consumed():
    from starlette.requests import Request

    received = []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b'{"a": 1}', "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"k=v", "headers": []}
    req = Request(scope, receive)
    ex = Extractor()
    # the user's code never read the body: fall back to the query string, never call receive
    assert ex.features((req,), {}) == [{"k": "v"}]
    assert received == []
    # the user's code parsed the JSON: reuse it
    import asyncio

    asyncio.run(req.json())
    assert ex.features((req,), {}) == [{"a": 1}]


def test_allow_list_and_redaction():
    payload = ({"age": 30, "ssn": "123", "email": "a@b", "score": 1.0},)
    ex = Extractor(fields=["age", "ssn", "email"], redact=["ssn", "e*"])
    assert ex.features(payload, {}) == [{"age": 30}]
    hashed = Extractor(redact=["ssn"], redact_mode="hash").features(payload, {})[0]
    assert hashed["ssn"].startswith("h:") and hashed["ssn"] != "123"
    assert hashed == Extractor(redact=["ssn"], redact_mode="hash").features(payload, {})[0]  # stable


def test_user_extractors_by_import_path_and_callable():
    ex = Extractor(feature_extractor="serve_helpers:features", prediction_extractor=lambda r: {"p": r * 2})
    assert ex.features((3,), {"scale": 2}) == [{"x": 3, "scaled": 6}]
    assert ex.predictions(5) == [{"p": 10}]
    with pytest.raises(Exception):
        Extractor(feature_extractor="serve_helpers:nope")
    assert resolve_callable("json.loads") is json.loads


def test_predictions_defaults():
    ex = Extractor()
    assert ex.predictions(0.3) == [{"prediction": 0.3}]
    assert ex.predictions([1, 0, 1]) == [{"prediction": 1}, {"prediction": 0}, {"prediction": 1}]
    assert ex.predictions(np.array([0.5, 0.25])) == [{"prediction": 0.5}, {"prediction": 0.25}]
    assert ex.predictions({"label": "cat"}) == [{"label": "cat"}]
    from starlette.responses import JSONResponse, PlainTextResponse

    assert ex.predictions(JSONResponse({"prediction": 2})) == [{"prediction": 2}]
    assert ex.predictions(PlainTextResponse("hi")) == []


def test_prediction_and_score():
    assert prediction_and_score({"class": "a", "confidence": 0.4}) == ("a", 0.4)
    assert prediction_and_score({"foo": 3}) == (3, None)
    assert prediction_and_score(None) == (None, None)


def test_numbers_no_float_holds_stay_themselves_and_cost_only_their_column():
    from decimal import Decimal
    from fractions import Fraction

    big = Fraction(10 ** 400)
    (row,) = Extractor().features(({"a": big, "b": Decimal("sNaN"), "c": 1},), {})
    assert row["a"] == big and row["b"].is_snan() and row["c"] == 1


def test_rows_have_at_most_max_keys_columns_at_any_depth():
    from raywatch.serve.extract import TooManyKeys

    ex = Extractor(max_keys=10)
    assert len(ex.features(({f"k{i}": i for i in range(10)},), {})[0]) == 10
    for payload in ({f"k{i}": i for i in range(11)}, {"a": 1, "m": {f"k{i}": i for i in range(10)}},
                    {"x": 1, "a": {"b": list(range(10))}}, [{f"k{i}": i for i in range(11)}]):
        with pytest.raises(TooManyKeys):
            ex.features((payload,), {})
    with pytest.raises(TooManyKeys):
        ex.predictions({f"p{i}": i for i in range(11)})
    wide = np.zeros((3, 1_000_000))
    assert [len(r) for r in Extractor().features((wide,), {})] == [64, 64, 64]  # only what becomes columns
    assert len(Extractor().features((np.zeros(10_000_000),), {})[0]) == 64


def test_json_nested_30000_deep_is_no_payload_not_a_failure():
    deep = "[" * 30_000 + "]" * 30_000
    ex = Extractor()
    assert ex.features((deep,), {}) == [{"feature": deep}]  # text that is no JSON is a text feature
    for payload in (deep.encode(), HttpPayload(b"", deep.encode())):
        assert ex.features((payload,), {}) == []
    assert ex.predictions(JsonBody(deep.encode())) == []
