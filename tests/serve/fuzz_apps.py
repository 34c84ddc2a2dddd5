"""The deployment the Serve fuzz test (``test_serve_fuzz.py``) sends hostile payloads to, once
unwrapped and once monitored: ``__call__`` takes a list of payloads (one request carries
many) and answers each with :class:`hostile_payloads.Model`'s answer or exception; ``one``
takes a single payload; ``pid`` says which process serves (for its memory)."""

import os

from hostile_payloads import Model
from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Echo:
    def __init__(self):
        self.model = Model()

    def __call__(self, batch):
        out = []
        for payload in batch:
            try:
                out.append((True, self.model(payload)))
            except Exception as exc:  # noqa: BLE001 - the user's exception, answered as data
                out.append((False, exc))
        return out

    def one(self, payload):
        return self.model(payload)

    def pid(self):
        return os.getpid()
