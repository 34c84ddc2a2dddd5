"""The wrapper on a real Ray cluster: every shape keeps its responses; monitoring reaches
the stats actor; ``user_config`` reconfigures without a restart."""

import functools
import json
import urllib.error
import urllib.request

import pytest
from rw_test_support import free_port, wait_until

from raywatch.serve.compat import serve_http_port

pytestmark = [pytest.mark.ray]

ACTOR = {"name": "rw-test-serve", "sqlite_path": None, "metrics_port": None}


def _config(**extra):
    cfg = {"actor": ACTOR, "shipping": {"flush_interval": 0.2}, "resources": {"interval": 0.5},
           "windows": {"length": 1, "evaluation_interval": 0.5}}
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module")
def apps(ray_cluster):
    import ray
    import ray.cloudpickle
    from ray import serve

    import serve_apps

    ray.cloudpickle.register_pickle_by_value(serve_apps)

    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    port = serve_http_port()
    serve.run(serve_apps.build(False), name="plain", route_prefix="/plain")
    serve.run(serve_apps.build(True, _config()), name="mon", route_prefix="/mon")
    yield serve, f"http://127.0.0.1:{port}", serve_apps
    for name in ("plain", "mon"):
        serve.delete(name)
    try:
        from raywatch.actor import get_or_create

        ray.kill(get_or_create(_config(), wait=False))
    except Exception:
        pass


def _h(serve, app, name="Shapes"):
    return serve.get_deployment_handle(name, app_name=app)


def _http(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_shapes_answer_the_same_wrapped_and_unwrapped(apps):
    serve, _, _ = apps
    out = {}
    for app in ("plain", "mon"):
        h = _h(serve, app)
        out[app] = {
            "sync": h.remote({"x": 3}).result(),
            "async": h.apredict.remote(41).result(),
            "gen": list(h.options(stream=True).count.remote(4)),
            "agen": list(h.options(stream=True).acount.remote(3)),
            "batch": [r.result() for r in [h.batched.remote(i) for i in range(6)]],
        }
        with pytest.raises(ValueError):  # the user's exception still reaches the caller
            h.fails.remote(1).result()
    assert out["plain"] == out["mon"]
    assert out["mon"]["sync"] == {"prediction": 6, "above": True, "score": 0.5}
    assert out["mon"]["gen"] == [0, 1, 2, 3] and out["mon"]["agen"] == [0, 10, 20]
    assert out["mon"]["batch"] == [0, 3, 6, 9, 12, 15]


def test_batching_still_batches_when_wrapped(apps):
    serve, _, _ = apps
    h = _h(serve, "mon")
    responses = [h.batched.remote(i) for i in range(8)]
    assert [r.result() for r in responses] == [i * 3 for i in range(8)]
    sizes = h.info.remote().result()["batch_sizes"]
    assert max(sizes) > 1, sizes  # several requests shared one call of the user's method


def test_fastapi_ingress_same_http_answers(apps):
    _, base, _ = apps
    for path_method, body in [(("GET", "/items/7"), None), (("GET", "/items/404"), None),
                              (("POST", "/predict"), {"x": 2}), (("GET", "/boom"), None),
                              (("GET", "/stream?n=4"), None)]:
        method, path = path_method
        plain = _http(base, method, "/plain" + path, body)
        mon = _http(base, method, "/mon" + path, body)
        assert plain == mon, (path, plain, mon)
    assert _http(base, "GET", "/mon/items/404", None)[0] == 404
    assert _http(base, "GET", "/mon/stream?n=2", None) == (200, b"chunk0;chunk1;")
    assert _http(base, "GET", "/mon/boom", None)[0] == 500


_wait = functools.partial(wait_until, interval=0.3)


def test_each_monitored_deployment_reports_to_the_actor(apps):
    serve, base, _ = apps
    sh = _h(serve, "mon")
    before = sh._raywatch_status.remote().result()
    n0 = before["shipper"]["sent_batches"]
    for i in range(5):
        assert _http(base, "POST", "/mon/predict", {"x": i})[0] == 200
    assert _http(base, "GET", "/mon/items/404")[0] == 404
    _http(base, "GET", "/mon/boom")

    st = _wait(lambda: (lambda s: s if s["shipper"]["acked_batches"] > n0 else None)(sh._raywatch_status.remote().result()))
    assert st["labels"]["app"] == "mon" and st["labels"]["deployment"] == "Shapes"
    assert st["running"] and st["dropped_total"] == 0
    assert st["resources"]["rss_bytes"] > 0 and st["resources"]["gpu_status"] in ("ok", "no GPU")

    api = _h(serve, "mon", "Api")
    ast = _wait(lambda: (lambda s: s if s["shipper"]["acked_batches"] > 0 else None)(api._raywatch_status.remote().result()))
    assert ast["model_key"] == "mon/Api"

    from raywatch.actor import get_or_create

    actor = get_or_create(_config(), wait=False)

    import ray

    def status():
        s = ray.get(actor.status.remote(), timeout=30)["models"]
        if "mon/Api" in s and "mon/Shapes" in s and s["mon/Api"]["totals"].get("requests", 0) >= 7:
            return s
        return None

    models = _wait(status)
    api_totals = models["mon/Api"]["totals"]
    assert api_totals["errors_by_type"].get("RuntimeError", 0) >= 1 or api_totals["errors_by_type"].get("http_5xx", 0) >= 1
    assert models["mon/Shapes"]["totals"]["requests"] >= 5  # composed calls counted by Shapes itself
    assert "plain/Shapes" not in models  # the unwrapped app reports nothing


def test_user_config_reconfigures_without_restart(apps):
    serve, _, serve_apps = apps
    h = _h(serve, "mon")
    info0 = h.info.remote().result()
    assert info0["threshold"] == 0.5
    st0 = h._raywatch_status.remote().result()
    assert st0["config"]["capture"]["sample_rate"] == 1.0
    generation = st0["labels"]["generation"]  # Serve's code version of the deployment, sent with every batch
    assert isinstance(generation, str) and generation
    serve.run(
        serve_apps.build(True, _config(), shapes_user_config={"threshold": 0.9, "raywatch": {"capture": {"sample_rate": 0.25}, "drift": {"alpha": 0.01}}}),
        name="mon", route_prefix="/mon",
    )

    def reloaded():
        st = h._raywatch_status.remote().result()
        return st if st["reloads"] >= 1 else None

    st = _wait(reloaded)
    info1 = h.info.remote().result()
    assert info1["replica"] == info0["replica"]  # same replica: not restarted
    assert info1["threshold"] == 0.9 and info1["reconfigured"] == info0["reconfigured"] + 1
    assert st["config"]["capture"]["sample_rate"] == 0.25 and st["config"]["drift"]["alpha"] == 0.01
    assert st["labels"]["generation"] == generation  # a user_config change is no new generation: figures go on
    assert h.remote({"x": 0.7}).result()["above"] is False  # the user's threshold changed too
