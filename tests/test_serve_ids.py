"""Original ids at the serving edge: the translation layer (:class:`IdCodec`), the request schemas and
the store's typed keys (no Ray). ``tests/test_serve_string_ids.py`` runs the same over real Serve HTTP."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interestrec.ids import IdMap
from interestrec.serving.idtypes import MISSING, IdCodec, InvalidId, UnknownId
from interestrec.serving.schemas import EventsRequest, RecommendRequest, RecommendResponse
from interestrec.serving.store import Event, id_key, id_value

DENSE = IdCodec(IdMap.dense(["AE2", "AE1", "007"]), IdMap.dense(["B0b", "B0a", "B0c"]))
IDENT = IdCodec(IdMap.identity([5, 1, 9]), IdMap.identity([30, 10, 20]))


def test_dense_ids_translate_both_ways():
    assert [DENSE.user(u) for u in ("007", "AE1", "AE2")] == [0, 1, 2]  # sorted order
    assert DENSE.item_list(["B0c", "B0a"]) == [2, 0]
    with pytest.raises(UnknownId, match="unknown user AE9"):
        DENSE.user("AE9")
    with pytest.raises(UnknownId, match="unknown item B0z"):
        DENSE.item_list(["B0a", "B0z"])
    assert DENSE.item_list(["B0z", "B0b"], skip_unknown=True) == [1]
    body = {"user_id": 1, "cluster": 3, "items": [{"item_id": 2, "title": "t", "explanation": {
        "nearest_history_item": {"item_id": 0, "title": ""}, "cluster": 3}}], "users": [{"user_id": 0, "similarity": 0.5}],
        "none": None}
    assert DENSE.out(body) == {"user_id": "AE1", "cluster": 3, "items": [{"item_id": "B0c", "title": "t", "explanation": {
        "nearest_history_item": {"item_id": "B0a", "title": ""}, "cluster": 3}}], "users": [{"user_id": "007", "similarity": 0.5}],
        "none": None}
    assert DENSE.out({"user_id": None, "items": []}) == {"user_id": None, "items": []}
    assert DENSE.store_key(0) == "007" and DENSE.original_items([1, 2]) == ["B0b", "B0c"]


def test_identity_ids_are_their_own_index_and_strings_are_checked():
    assert IDENT.user(9) == 9 and IDENT.user("9") == 9  # a path segment arrives as text
    assert IDENT.out({"item_id": 30, "user_id": 5}) == {"item_id": 30, "user_id": 5}
    with pytest.raises(UnknownId, match="unknown user 7"):
        IDENT.user(7)
    with pytest.raises(InvalidId, match="int64"):
        IDENT.user("AE1")
    with pytest.raises(InvalidId, match="int64"):
        IDENT.user(str(2**63))
    with pytest.raises(InvalidId, match="item"):
        IDENT.item_list([10, "B0a"])


def test_stored_events_map_into_the_version_index_space():
    events = [Event(1, "k", "AE1", "B0c", 0, "view"), Event(2, "k", "AE1", "B0gone", 0, "view")]
    assert [e.item_id for e in DENSE.event_indices(events)] == [2, MISSING]
    assert DENSE.event_indices([]) == []


def test_live_items_are_items_where_the_catalogue_lacks_the_id():
    from interestrec.recommend.live import LiveId

    live = {777, "B0new"}.__contains__  # what a replica's copy of the live catalogue says
    assert IDENT.item_refs([20, "777", 777], live) == [20, LiveId(777), LiveId(777)]  # the id in the data's kind
    assert DENSE.item_refs(["B0new", "B0a"], live) == [LiveId("B0new"), 0]
    with pytest.raises(UnknownId, match="unknown item 778"):
        IDENT.item_refs([20, 778], live)
    with pytest.raises(InvalidId, match="int64"):
        IDENT.item_refs(["B0new"], live)
    assert IDENT.item_refs([778, "x", 777, 10], live, skip_unknown=True) == [LiveId(777), 10]
    # a version whose catalogue has the id: the catalogue's item is meant, live or not
    assert IdCodec(IdMap.identity([10, 777]), IdMap.identity([10, 777])).item_refs([777], live) == [777]
    assert IDENT.original_items([LiveId(777), 1, LiveId(778), 2]) == [777, 1, 778, 2]
    assert DENSE.original_items([2, LiveId("B0new")]) == ["B0c", "B0new"]
    events = [Event(1, "k", "AE1", "B0new", 0, "view"), Event(2, "k", "AE1", "B0gone", 0, "view"),
              Event(3, "k", "AE1", "B0a", 0, "view")]
    assert [e.item_id for e in DENSE.event_indices(events, live)] == [LiveId("B0new"), MISSING, 0]
    assert [e.item_id for e in DENSE.event_indices(events)] == [MISSING, MISSING, 0]  # no live catalogue


def test_request_and_response_models_take_ints_and_strings():
    assert RecommendRequest.model_validate_json('{"user_id": "AE1"}').user_id == "AE1"
    assert RecommendRequest.model_validate_json('{"user_id": 12}').user_id == 12
    ev = EventsRequest.model_validate_json('{"user_id": "AE1", "events": [{"item_id": "B0a"}, {"item_id": 3}]}')
    assert [e.item_id for e in ev.events] == ["B0a", 3]
    for bad in ('{"user_id": 9223372036854775808}', '{"user_id": ""}', '{"user_id": 1.5}', '{"user_id": true}',
                '{"user_id": "' + "x" * 257 + '"}', '{"user_id": "\\ud800"}', '{"history": [{"item_id": null}]}'):
        with pytest.raises(ValidationError):
            RecommendRequest.model_validate_json(bad)
    out = RecommendResponse(user_id="AE1", cluster=0, version="1", items=[{"item_id": "B0a", "title": "", "rank": 1,
                            "score": 1.0, "explanation": {"interest": 0, "interest_similarity": 1.0, "cluster": 0,
                                                          "cluster_description": ""}}])
    assert out.model_dump()["items"][0]["item_id"] == "B0a" and out.model_dump()["user_id"] == "AE1"
    assert RecommendResponse(user_id=5, cluster=0, version="1", items=[]).model_dump()["user_id"] == 5


def test_store_keys_keep_the_id_type():
    for v in (7, -3, "AE1", "007", "123", "s:x"):
        assert id_value(id_key(v)) == v and type(id_value(id_key(v))) is type(v)


def test_sqlite_store_keeps_string_and_numeric_looking_ids_apart(tmp_path):
    from interestrec.serving.sqlite_store import SQLiteStore

    s = SQLiteStore(str(tmp_path / "ev.db"))
    s.append("007", [{"item_id": "B0a", "timestamp": 1, "event": "view"}], "k1")
    s.append(7, [{"item_id": 30, "timestamp": 2, "event": "view"}], "k2")
    s.append("7", [{"item_id": "0030", "timestamp": 3, "event": "view"}], "k3")
    assert [(e.user_id, e.item_id) for e in s.fresh("007", 10)] == [("007", "B0a")]
    assert [(e.user_id, e.item_id) for e in s.fresh(7, 10)] == [(7, 30)]
    assert [(e.user_id, e.item_id) for e in s.fresh("7", 10)] == [("7", "0030")]
    t = s.export()
    assert t["user_id"].to_pylist() == ["007", "7", "7"] and t["item_id"].to_pylist() == ["B0a", "30", "0030"]
    s.close()


def test_redis_store_keeps_string_and_numeric_looking_ids_apart(tmp_path):
    from fixtures.redis_server import RedisServer
    from interestrec.serving.redis_store import RedisStore

    srv = RedisServer(tmp_path).start()
    try:
        s = RedisStore(srv.url)
        s.append("007", [{"item_id": "B0a", "timestamp": 1, "event": "view"}], "k1")
        s.append(7, [{"item_id": 30, "timestamp": 2, "event": "view"}], "k2")
        assert s.append("007", [{"item_id": "B0a", "timestamp": 1, "event": "view"}], "k1").duplicate
        assert [(e.user_id, e.item_id) for e in s.fresh("007", 10)] == [("007", "B0a")]
        assert [(e.user_id, e.item_id) for e in s.fresh(7, 10)] == [(7, 30)]
        assert s.fresh("7", 10) == []
        assert s.export()["user_id"].to_pylist() == ["007", "7"]
        s.close()
    finally:
        srv.stop()


def test_publish_carries_the_id_maps_and_the_loader_reads_them(tmp_path):
    from fixtures.artifacts import make_artifacts
    from interestrec import artifacts
    from interestrec.publish import publish
    from interestrec.recommend import artifacts as ra
    from interestrec.stages import StageContext

    out = make_artifacts(tmp_path / "out", graph=False, n_users=12, n_items=40)
    for stage in ("ingest", "encode", "cluster"):
        artifacts.write_json(out / stage / "summary.json", {"_run": {"output_hash": stage}})
    plain = ra.load(str(out))  # an output without id maps: identity over the ids it holds
    assert plain.user_map.kind == "identity" and plain.user_map.to_original(plain.user_ids[:2]) == [1000, 1001]
    users = IdMap.dense([f"AE{i:02d}" for i in range(12)])
    users.to_parquet(str(out / "ingest" / "ids" / "users.parquet"))
    IdMap.identity(plain.item_ids).to_parquet(str(out / "ingest" / "ids" / "items.parquet"))
    v = publish(StageContext(out=str(out)))["path"]
    a = ra.load(v)
    assert a.user_map == users and a.item_map == IdMap.identity(plain.item_ids)
    assert artifacts.exists(artifacts.join(v, "ingest", "ids", "users.parquet"))


def test_cached_dense_lookup_equals_the_id_map():
    import numpy as np

    rng = np.random.default_rng(0)
    names = [f"AE{x}" for x in rng.integers(0, 10**6, 500)]
    codec = IdCodec(IdMap.dense(names), IdMap.dense(names[:50])).prepared()
    probe = names[::7] + ["nope", "AE-1"]
    assert codec.item_list(probe, skip_unknown=True) == [int(i) for i in IdMap.dense(names[:50]).to_index(probe, missing=-1)
                                                          if i >= 0]
    assert [codec.user(n) for n in names[::7]] == IdMap.dense(names).to_index(names[::7]).tolist()
