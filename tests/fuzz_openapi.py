"""A small property-based fuzzer driven by a FastAPI OpenAPI document (hypothesis strategies per schema).

Each schema node yields valid values mixed with hostile ones: integers past int64 and with hundreds of
digits, NaN / ±Infinity, lone surrogates and other odd unicode, wrong types, oversized lists. Bodies are
sent as raw JSON text (``allow_nan``), path parameters as text.
"""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HOSTILE_INTS = [2**63, -(2**63) - 1, 2**64, 10**400, -(10**400), 0, -1, 2**63 - 1, -(2**63)]
HOSTILE_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324]
HOSTILE_TEXT = ["\ud800", "a\udfffb", "\x00", "\u202e\u0301", "𝔘𝔫𝔦", "💩" * 700, "", " ", "\ufeff", "null"]


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        node = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def strategy(schema: dict, spec: dict, depth: int = 0) -> st.SearchStrategy:
    """Values for one schema node (valid and hostile)."""
    schema = _resolve(schema, spec)
    junk = st.sampled_from([None, "x", [], {}, True, 1.5])
    if depth > 4:
        return junk
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of(*[strategy(s, spec, depth + 1) for s in schema.get("anyOf", schema.get("oneOf"))])
    if "enum" in schema:
        return st.one_of(st.sampled_from(schema["enum"]), st.text(max_size=8), junk)
    if "const" in schema:
        return st.just(schema["const"])
    t = schema.get("type")
    if t == "integer":
        lo, hi = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1)
        return st.one_of(st.integers(lo, hi), st.sampled_from(HOSTILE_INTS), st.integers(), junk)
    if t == "number":
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE_FLOATS), junk)
    if t == "string":
        return st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_TEXT), junk)
    if t == "boolean":
        return st.one_of(st.booleans(), junk)
    if t == "null":
        return st.none()
    if t == "array":
        item = strategy(schema.get("items", {}), spec, depth + 1)
        return st.one_of(st.lists(item, max_size=4), st.lists(item, min_size=1001, max_size=1002).map(lambda x: x), junk)
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        req = set(schema.get("required", []))
        return st.one_of(st.fixed_dictionaries(
            {k: strategy(v, spec, depth + 1) for k, v in props.items() if k in req},
            optional={k: strategy(v, spec, depth + 1) for k, v in props.items() if k not in req}), junk)
    return st.one_of(st.integers(), st.text(max_size=8), junk)


def fuzz(client, spec: dict, examples: int = 50, headers=None) -> Counter:
    """Fuzz every operation of ``spec`` through ``client`` (an ``httpx.Client``); counts status classes.

    ``headers``: a dict, or a function of the path returning one (e.g. a different token per route).
    """
    counts: Counter = Counter()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            _fuzz_one(client, spec, path, method, op, examples, headers, counts)
    return counts


def _fuzz_one(client, spec: dict, path: str, method: str, op: dict, examples: int, headers, counts: Counter) -> None:
    """Fuzz one operation (``examples`` hypothesis cases)."""
    params = [p for p in op.get("parameters", []) if p["in"] == "path"]
    query = [p for p in op.get("parameters", []) if p["in"] == "query"]
    body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
    parts = st.fixed_dictionaries({
        "path": st.fixed_dictionaries({p["name"]: strategy(p["schema"], spec) for p in params}),
        "query": st.fixed_dictionaries({}, optional={p["name"]: strategy(p["schema"], spec) for p in query}),
        "body": strategy(body, spec) if body else st.none(),
    })

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(parts)
    def run(case):
        url = path
        for k, v in case["path"].items():
            text = str(v) if not isinstance(v, str) else v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            url = url.replace("{" + k + "}", quote(text, safe=""))  # a path segment: control chars, '/' escaped
        query = {k: json.dumps(v) if not isinstance(v, str) else v.encode("utf-8", "replace").decode()
                 for k, v in case["query"].items()}
        content = json.dumps(case["body"], allow_nan=True).encode() if body else None
        r = client.request(method.upper(), url, params=query, content=content,
                           headers={**((headers(path) if callable(headers) else headers) or {}), "content-type": "application/json"})
        counts["requests"] += 1
        counts[">=500" if r.status_code >= 500 else f"{r.status_code // 100}xx"] += 1
        if r.status_code >= 500:
            counts[f"500 at {method.upper()} {path}: {content[:200] if content else url}"] += 1

    run()
