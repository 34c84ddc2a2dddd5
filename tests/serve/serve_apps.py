"""Deployments of every shape raywatch must keep working, for the Ray tests.

``build(monitored, user_config)`` returns the bound application: an ``@serve.ingress(FastAPI)``
deployment (``Api``) composed with a ``Shapes`` deployment that has a sync method, an async
one, a sync generator, an async generator, a ``@serve.batch`` method and a user
``reconfigure``. The same code runs unwrapped (``monitored=False``) and wrapped.
"""

import asyncio

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from ray import serve

import raywatch

fastapi_app = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0}, user_config={"threshold": 0.5})
class Shapes:
    def __init__(self):
        self.threshold = None
        self.reconfigured = 0
        self.batch_sizes = []

    def reconfigure(self, config):
        # the user's own reconfigure: must keep working, and never see the raywatch key
        assert "raywatch" not in config
        self.threshold = config["threshold"]
        self.reconfigured += 1

    def __call__(self, payload):
        return {"prediction": payload["x"] * 2, "above": payload["x"] > self.threshold, "score": 0.5}

    async def apredict(self, x):
        await asyncio.sleep(0.001)
        return x + 1

    def count(self, n):
        for i in range(n):
            yield i

    async def acount(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i * 10

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.2)
    async def batched(self, xs):
        self.batch_sizes.append(len(xs))
        return [x * 3 for x in xs]

    def fails(self, x):
        raise ValueError("bad input")

    def info(self):
        ctx = serve.get_replica_context()
        return {"replica": ctx.replica_id.unique_id, "threshold": self.threshold,
                "reconfigured": self.reconfigured, "batch_sizes": list(self.batch_sizes)}


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress(fastapi_app)
class Api:
    def __init__(self, shapes):
        self.shapes = shapes

    @fastapi_app.get("/items/{item_id}")
    def item(self, item_id: int):
        if item_id == 404:
            raise HTTPException(status_code=404, detail="no such item")
        return {"id": item_id}

    @fastapi_app.post("/predict")
    async def predict(self, body: dict):
        return await self.shapes.remote(body)  # composition: Shapes reports on its own

    @fastapi_app.get("/boom")
    def boom(self):
        raise RuntimeError("boom")

    @fastapi_app.get("/stream")
    def stream(self, n: int = 3):
        def gen():
            for i in range(n):
                yield f"chunk{i};"

        return StreamingResponse(gen(), media_type="text/plain")


SHAPE_METHODS = ["__call__", "apredict", "count", "acount", "batched", "fails"]


def build(monitored: bool, config=None, shapes_user_config=None):
    shapes, api = Shapes, Api
    if shapes_user_config is not None:
        shapes = shapes.options(user_config=shapes_user_config)
    if monitored:
        shapes = raywatch.monitor(shapes, config, capture={"methods": SHAPE_METHODS})
        api = raywatch.monitor(api, config)
    # Serve gives a deployment from a config YAML a stable code version (hash of the import
    # path and runtime env), so a user_config change there is a lightweight update; from
    # Python, serve.run draws a random version on each call unless one is set. Pin it to
    # get the YAML behaviour: the replica is reconfigured in place.
    shapes._version = "stable"
    api._version = "stable"
    return api.bind(shapes.bind())
