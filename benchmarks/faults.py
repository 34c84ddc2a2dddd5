"""The fault campaign (issue 11): one fault at a time on a real two-node Ray cluster under
steady traffic; after each, what was served, what the stats actor holds, what was dropped and
reported, what was lost with a process, and where every alert went.

The cluster: ``ray.cluster_utils.Cluster``, a head node and one worker node (both on this
machine, loopback only); a monitored deployment of two replicas, one per node
(``max_replicas_per_node=1``); the stats actor pinned to the head (raywatch's default); a
local webhook receiver (``tests/sinks/alert_receivers.HTTPReceiver``) that answers as the
phase's fault says. Traffic: handle calls at ``--rps`` from ``--threads`` client threads,
bounded in count and time, each answer naming the replica that served it.

Faults (``--faults``; ``--quick`` runs a representative subset with shorter stops):

* ``kill_actor``: ``ray.kill`` the stats actor (Ray restarts it; it resumes from SQLite);
* ``kill_replica``: SIGKILL a replica while its flusher is inside a flush (the deployment's
  feature extractor parks the flusher when it meets the phase's marker request and writes
  its pid; the campaign kills that pid): the records it had drained and the batches it had
  not shipped die with it;
* ``sigstop_actor``: SIGSTOP the stats actor's process for ``--stop-seconds`` (30), then SIGCONT;
* ``corrupt_store``: SIGSTOP the actor, read what its file holds (a copy), overwrite bytes of
  its SQLite file (header and pages), SIGKILL it: Ray restarts it on the damaged file;
* ``store_locked``: another process holds the SQLite file's write lock for ``--stop-seconds``;
* ``disk_full``: the actor's process can write no byte to any file for ``--stop-seconds``
  (``RLIMIT_FSIZE`` 0, as a full disk);
* ``sink_500`` / ``sink_429`` (``Retry-After``) / ``sink_hang`` / ``sink_trickle`` /
  ``sink_redirect``: the receiver misbehaves for ``--sink-fault-seconds`` while an alert fires;
* ``remove_node``: the worker node is removed (its replica dies with it; Serve starts a new one);
* ``sink_down_across_restart``: the receiver fails while the stats actor is shut down
  (``close()``) with an alert to tell: what was not delivered is in the dead-letter file,
  and ``raywatch replay-dead-letters`` delivers it once the receiver is back.

Each phase: traffic starts; one feature of the profile (the phase's own) is left out of the
requests, so a new alert (``FeatureMissing{feature=<phase>}``) fires during the fault;
the fault; recovery; the feature comes back (the alert resolves); traffic stops; then the
accounting, once every replica still alive has shipped all it served:

* **served** (per replica, counted by the client from the answers) = **ingested** (the
  requests of the batches the actor merged from that replica, ``status.replicas[r].requests``)
  + **dropped** (the replica's cumulative drop counter as the actor last heard it) +
  **lost with the process** — which is 0 for every replica alive at the end, exactly, and for
  a killed replica is what it had served but neither shipped nor reported (raywatch cannot
  know it: the campaign measures it from the client's count). ``corrupt_store`` reports
  **lost in the damaged file** beside it: what the file held before the damage (read from a
  copy while the actor was stopped) minus what the fresh store salvaged (the same repair run
  on a copy of the moved-aside file), per replica. Those requests may have been served in an
  earlier phase, so they are not a term of this phase's sum: the phase's **ingested** counts
  what the actor merged in the phase, whether the damage took it later or not;
* **failed by monitoring**: requests that failed with anything but the death of the replica
  serving them (``ActorDiedError``/``ActorUnavailableError``: the fault's own) = 0, and every
  replica's ``capture_errors_total`` = 0;
* **alerts**: every alert the actor's alert log says fired in the phase reached the receiver
  (a 2xx answer, counted at the receiver), or sits in a dead-letter file and
  ``raywatch replay-dead-letters`` delivers it.

Run: ``python benchmarks/faults.py [--quick] [--faults a,b]``; the last line printed is JSON
(``figures`` per fault, ``ok``). The baseline in the same run: the first phase, ``none``,
runs the same traffic and accounting with no fault.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL_KEY = "faults/FaultModel"
ACTOR = "rwf-stats"
NAMESPACE = "raywatch"
BASE_FEATURES = ("amount", "age")
ALL_FAULTS = ("kill_actor", "kill_replica", "sigstop_actor", "corrupt_store", "store_locked", "disk_full", "sink_500", "sink_429", "sink_hang",
              "sink_trickle", "sink_redirect", "remove_node", "sink_down_across_restart", "shutdown_with_sink_down")
QUICK_FAULTS = ("kill_actor", "kill_replica", "sigstop_actor", "sink_500")
RWF_DIR_ENV = "RWF_DIR"
MARKER = "kill_mid_flush"
REPLICA_PREFIX = "SERVE_REPLICA::faults#FaultModel#"
STICKY = "m_shutdown_with_sink_down"


# ============================================================================ in the replica

def midflush_features(payload: Any = None, *args: Any, **kwargs: Any) -> Any:
    """The deployment's feature extractor (runs on the flusher thread): the payload's
    features; on the marker request it writes this process's pid for the campaign and parks
    the flusher, mid-flush, until the process is killed (at most 60 s)."""
    if not isinstance(payload, dict):
        return payload
    if payload.get(MARKER):
        where = Path(os.environ.get(RWF_DIR_ENV, tempfile.gettempdir())) / f"midflush-{os.getpid()}.json"
        try:
            from ray import serve

            rid = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001
            rid = None
        tmp = where.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "replica": rid}))
        tmp.rename(where)
        time.sleep(60)
    return {k: v for k, v in payload.items() if k != MARKER}


# ============================================================================ the campaign


def _features(phases: List[str]) -> List[str]:
    return list(BASE_FEATURES) + [f"m_{p}" for p in phases]


def _profile(path: Path, features: List[str]) -> None:
    import numpy as np

    from raywatch.stats.profile import Profile

    rng = np.random.default_rng(0)
    Profile.fit({f: rng.normal(50.0, 10.0, 3000) for f in features}, seed=0).save(path)


def _sink(url: str) -> Dict[str, Any]:
    return {"name": "hook", "type": "webhook", "url": url, "timeout": 1,
            "retry": {"max_attempts": 3, "initial_backoff": 0.2, "max_backoff": 1, "max_retry_after": 3}}


def monitor_config(work: Path, profile: Path, hook_url: str, quick: bool = False) -> Dict[str, Any]:
    return {
        "model": "faults", "version": "v1",
        "profile_path": str(profile),
        "capture": {"feature_extractor": "faults:midflush_features"},
        "shipping": {"flush_interval": 0.5},
        "windows": ({"length": 1, "rolling": 1, "grace": 0.3, "evaluation_interval": 0.5} if quick else
                    {"length": 2, "rolling": 2, "grace": 0.5, "evaluation_interval": 1}),
        "resources": {"interval": 5},
        "actor": {"name": ACTOR, "namespace": NAMESPACE, "sqlite_path": str(work / "state" / "stats.sqlite"),
                  "metrics_port": 0, "replica_ttl": "1h", "checkpoint_interval": 2},
        "alerting": {
            "rules": [
                {"name": "FeatureMissing", "expr": f'missing_share{{feature!="{STICKY}"}} > 0.5', "severity": "warning",
                 "annotations": {"summary": "{{ $labels.feature }} is missing from the requests"}},
                # the last phase's alert must still fire when everything shuts down, traffic stopped
                {"name": "FeatureMissing", "expr": f'missing_share{{feature="{STICKY}"}} > 0.5', "severity": "warning",
                 "keep_firing_for": "10m", "annotations": {"summary": "{{ $labels.feature }} is missing from the requests"}},
            ],
            "route": {"receiver": "hook", "group_by": ["alertname", "feature"], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "sinks": [_sink(hook_url)],
            "watchdog": {"repeat_interval": "1h"},
        },
    }


class Traffic:
    """Steady traffic from client threads: counts what each replica served and every failure."""

    def __init__(self, handle: Any, features: List[str], rps: float, threads: int):
        self.handle = handle
        self.features = features
        self.rps = rps
        self.threads = threads
        self.lock = threading.Lock()
        self.served: collections.Counter = collections.Counter()   # replica -> answers
        self.failed: collections.Counter = collections.Counter()   # kind -> requests
        self.failure_samples: List[str] = []
        self.sent = 0
        self.omit: Optional[str] = None
        self._stop = threading.Event()
        self._workers: List[threading.Thread] = []
        self._seq = 0

    def payload(self, i: int) -> Dict[str, Any]:
        import random

        r = random.Random(i)
        return {f: r.gauss(50.0, 10.0) for f in self.features if f != self.omit}

    def call(self, payload: Dict[str, Any], timeout: float = 60.0) -> Optional[Dict[str, Any]]:
        with self.lock:
            self.sent += 1
        try:
            out = self.handle.remote(payload).result(timeout_s=timeout)
        except Exception as exc:  # noqa: BLE001 - classified and counted
            kind = classify(exc)
            with self.lock:
                self.failed[kind] += 1
                if len(self.failure_samples) < 10:
                    self.failure_samples.append(f"{kind}: {type(exc).__name__}: {str(exc)[:200]}")
            return None
        with self.lock:
            self.served[out["replica"]] += 1
        return out

    def _run(self, k: int, deadline: float, max_requests: int) -> None:
        period = self.threads / self.rps
        nxt = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self._seq >= max_requests:
                    return
                self._seq += 1
                i = self._seq
            self.call(self.payload(i))
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                nxt = time.monotonic()

    def start(self, seconds: float, max_requests: int) -> None:
        self._stop.clear()
        deadline = time.monotonic() + seconds
        limit = self._seq + max_requests
        self._workers = [threading.Thread(target=self._run, args=(k, deadline, limit), daemon=True)
                         for k in range(self.threads)]
        for w in self._workers:
            w.start()

    def stop(self) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(90)
        self._workers = []

    def snapshot(self) -> Dict[str, Any]:
        with self.lock:
            return {"sent": self.sent, "served": dict(self.served), "failed": dict(self.failed)}


def classify(exc: BaseException) -> str:
    """``replica_died`` for the death of the replica serving the request (the fault's own),
    ``other`` for anything else (counted against monitoring)."""
    from ray import exceptions as rex

    died = tuple(t for t in (getattr(rex, "ActorDiedError", None), getattr(rex, "ActorUnavailableError", None),
                             getattr(rex, "RayActorError", None)) if t is not None)
    if isinstance(exc, died):
        return "replica_died"
    cause = getattr(exc, "cause", None) or exc.__cause__
    if cause is not None and isinstance(cause, died):
        return "replica_died"
    return "other"


class Campaign:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="rw-faults-"))
        os.chmod(self.work, 0o700)
        self.phases = ["none"] + list(args.faults)
        self.features = _features(self.phases)
        self.profile = self.work / "reference.rwprofile"
        self.figures: Dict[str, Dict[str, Any]] = {}
        self.lost_file_total: collections.Counter = collections.Counter()  # replica -> requests lost in damaged files
        self.lost_file_phase: collections.Counter = collections.Counter()
        self.cluster = None
        self.worker = None
        self.receiver = None
        self.handle = None
        self.traffic: Optional[Traffic] = None
        self.last: Dict[str, Any] = {"served": {}, "ingested": {}, "dropped": {}, "sent": 0, "failed": {}}
        self.alerts_seen_before: set = set()

    # ------------------------------------------------------------------ set-up
    def start(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ[RWF_DIR_ENV] = str(self.work)
        paths = [str(HERE), str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        sys.path[:0] = [str(ROOT / "tests" / "sinks")]
        from alert_receivers import HTTPReceiver

        import ray
        from ray.cluster_utils import Cluster

        _profile(self.profile, self.features)
        self.receiver = HTTPReceiver()
        self.ray_tmp = self.work / "ray"
        self.ray_tmp.mkdir()
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": False, "temp_dir": str(self.ray_tmp)})
        self.worker = self.cluster.add_node(num_cpus=2)
        ray.init(address=self.cluster.address, namespace="rw-faults", log_to_driver=False, configure_logging=False)
        from ray import serve

        import raywatch

        self.cfg = monitor_config(self.work, self.profile, self.receiver.url("/hook"), quick=self.args.quick)
        self.mcfg = raywatch.MonitorConfig.model_validate(self.cfg)

        @serve.deployment(num_replicas=2, max_replicas_per_node=1, ray_actor_options={"num_cpus": 0.1},
                          health_check_period_s=1, health_check_timeout_s=5)
        class FaultModel:
            def __init__(self):
                self.rid = serve.get_replica_context().replica_id.unique_id

            def __call__(self, payload: dict) -> dict:
                s = sum(v for v in payload.values() if isinstance(v, float))
                return {"prediction": float(s > 100.0 * len(payload)), "replica": self.rid}

        serve.start(proxy_location="Disabled")  # handle calls only: no HTTP proxy to start
        self.handle = serve.run(raywatch.monitor(FaultModel, self.cfg).bind(), name="faults", route_prefix=None)
        self.traffic = Traffic(self.handle, self.features, self.args.rps, self.args.threads)

    def stop(self) -> None:
        import ray

        try:
            from ray import serve

            serve.shutdown()
        except Exception:  # noqa: BLE001
            pass
        try:
            ray.kill(ray.get_actor(ACTOR, namespace=NAMESPACE))
        except Exception:  # noqa: BLE001
            pass
        ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
        if self.receiver is not None:
            self.receiver.close()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # ------------------------------------------------------------------ the stats actor
    def actor(self) -> Any:
        import ray

        return ray.get_actor(ACTOR, namespace=NAMESPACE)

    def actor_call(self, method: str, *args: Any, timeout: float = 10.0) -> Any:
        import ray

        return ray.get(getattr(self.actor(), method).remote(*args), timeout=timeout)

    def model_status(self) -> Dict[str, Any]:
        return self.actor_call("status", MODEL_KEY)["models"][MODEL_KEY]

    def wait(self, pred, timeout: float, what: str, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = pred()
            except Exception as exc:  # noqa: BLE001 - the actor may be restarting
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(interval)
        raise TimeoutError(f"{what}: not within {timeout:.0f} s (last: {last!r:.300})")

    # ------------------------------------------------------------------ accounting
    def settled(self, timeout: float = 90.0) -> Dict[str, Any]:
        """Wait until every replica alive now has shipped (or reported dropped) all it
        served; the model's status then."""
        def check():
            alive = set(self.alive_replicas())  # again each time: a removed node's replica is dead once Ray notices
            st = self.model_status()
            reps = st["replicas"]
            for rid, n in self.traffic.snapshot()["served"].items():
                if rid not in alive:
                    continue
                r = reps.get(rid)
                if r is None or r["requests"] + r["dropped_total"] + self.lost_file_total[rid] < n:
                    return None
            return st

        self.wait(check, timeout, "every live replica's requests ingested or reported dropped")
        if set(self.traffic.snapshot()["served"]) - set(self.alive_replicas()):
            time.sleep(1.0)  # a batch a dead replica sent just before it died may still be on its way
        return self.model_status()

    def alive_replicas(self) -> List[str]:
        """Ids of the deployment's replica actors alive now."""
        import ray

        out = []
        for a in ray.util.list_named_actors(all_namespaces=True):
            name = a["name"] if isinstance(a, dict) else a
            if isinstance(name, str) and name.startswith(REPLICA_PREFIX):
                out.append(name.rsplit("#", 1)[1])
        return out

    def account(self, fault: str, st: Dict[str, Any], t: Dict[str, Any]) -> Dict[str, Any]:
        reps = st["replicas"]
        prev = self.last
        alive = set(self.alive_replicas())
        served = {r: n - prev["served"].get(r, 0) for r, n in t["served"].items()}
        ingested = {r: reps[r]["requests"] - prev["ingested"].get(r, 0) for r in reps}
        dropped = {r: reps[r]["dropped_total"] - prev["dropped"].get(r, 0) for r in reps}
        lost_process = {}
        mismatch = {}
        for r in set(served) | set(ingested):
            rest = served.get(r, 0) - ingested.get(r, 0) - dropped.get(r, 0)
            if r in alive:
                if rest:
                    mismatch[r] = rest
            elif rest:
                lost_process[r] = rest
        failed = {k: n - prev["failed"].get(k, 0) for k, n in t["failed"].items()}
        capture_errors = sum(r.get("capture_errors_total", 0) for r in reps.values())
        fig = {
            "sent": t["sent"] - prev["sent"],
            "served": sum(served.values()),
            "ingested": sum(ingested.values()),
            "dropped_reported": sum(dropped.values()),
            "lost_with_process": sum(lost_process.values()),
            "lost_in_damaged_file": sum(self.lost_file_phase.values()),
            "unexplained": sum(mismatch.values()),
            "failed_by_monitoring": failed.get("other", 0),
            "failed_by_fault": failed.get("replica_died", 0),
            "capture_errors": capture_errors,
            "replicas_gone": sorted(r for r, n in served.items() if n and r not in alive),
        }
        self.last = {"served": dict(t["served"]), "failed": dict(t["failed"]), "sent": t["sent"],
                     "ingested": {r: v["requests"] for r, v in reps.items()},
                     "dropped": {r: v["dropped_total"] for r, v in reps.items()}}
        return fig

    # ------------------------------------------------------------------ alerts
    def alert_log(self) -> List[Dict[str, Any]]:
        h = self.actor_call("history", None, None, 100_000, timeout=30)
        return h.get("alerts") or []

    def delivered(self) -> Dict[Tuple[str, str], int]:
        """(alertname, feature or '') -> firing deliveries the receiver accepted."""
        out: Dict[Tuple[str, str], int] = collections.Counter()
        for req in list(self.receiver.requests):
            if req.path != "/hook" or not 200 <= req.status < 300 or not isinstance(req.body, dict):
                continue
            for a in req.body.get("alerts") or []:
                if a.get("status") == "firing":
                    lab = a.get("labels") or {}
                    out[(lab.get("alertname", ""), lab.get("feature", ""))] += 1
        return out

    def last_status(self, key: Tuple[str, str]) -> Optional[str]:
        """"firing" or "resolved": the last word the receiver accepted about the alert ``key``."""
        out = None
        for req in list(self.receiver.requests):
            if req.path == "/hook" and 200 <= req.status < 300 and isinstance(req.body, dict):
                for a in req.body.get("alerts") or []:
                    lab = a.get("labels") or {}
                    if (lab.get("alertname", ""), lab.get("feature", "")) == key:
                        out = a.get("status")
        return out

    def dead_letter_files(self) -> List[Path]:
        return sorted((self.work / "state").glob("raywatch-dead-letters-*.jsonl"))

    def dead_letters(self) -> List[Dict[str, Any]]:
        from raywatch.alerts.deadletter import read_dead_letters

        out = []
        for p in self.dead_letter_files():
            out.extend(read_dead_letters(p))
        return out

    def replay(self) -> Dict[str, int]:
        import yaml

        cfg = self.work / "replay.yaml"
        cfg.write_text(yaml.safe_dump({"alerting": {"sinks": [_sink(self.receiver.url("/hook"))]}}))
        total: Dict[str, int] = collections.Counter()
        keep = self.work / f"dead-letters-before-replay-{len(self.figures)}"
        keep.mkdir(mode=0o700, exist_ok=True)
        for p in self.dead_letter_files():
            shutil.copyfile(p, keep / p.name)
            out = subprocess.run([sys.executable, "-m", "raywatch.cli", "replay-dead-letters", str(p), "--config",
                                  str(cfg)], capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ))
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()[-300:]
            # "sent N, best effort N, failed again N, skipped N, superseded N; N left in FILE"
            import re

            for k, v in re.findall(r"(sent|failed again|superseded|skipped|best effort) (\d+)", line):
                total[k.replace(" ", "_")] += int(v)
            m = re.search(r"(\d+) left in", line)
            if m:
                total["left"] += int(m.group(1))
        return dict(total)

    def alerts_check(self, phase: str, fired_before: set, log: Optional[List[Dict[str, Any]]] = None):
        log = self.alert_log() if log is None else log
        fired = {(a.get("alertname") or (a.get("labels") or {}).get("alertname", ""),
                  (a.get("labels") or {}).get("feature", "")) for a in log if a.get("state") == "firing"}
        new = sorted(fired - fired_before)
        got = self.delivered()
        live = [k for k in new if got.get(k)]
        letters = self.dead_letters()
        in_dl = set()
        for r in letters:
            for al in (r.get("notification") or {}).get("alerts") or []:
                lab = al.get("labels") or {}
                key = (lab.get("alertname", ""), lab.get("feature", ""))
                if key in new and key not in live:
                    in_dl.add(key)
        replay = self.replay() if self.dead_letter_files() else {}
        got = self.delivered()
        by_replay = [k for k in new if k not in live and got.get(k)]
        missing = [k for k in new if not got.get(k)]
        return {"alerts_fired": len(new), "delivered_live": len(live), "in_dead_letters": len(in_dl),
                "delivered_by_replay": len(by_replay), "undelivered": [list(k) for k in missing],
                "replay": replay, "fired": [list(k) for k in new]}, fired

    # ------------------------------------------------------------------ phases
    def run_phase(self, fault: str) -> Dict[str, Any]:
        a = self.args
        t0 = time.monotonic()
        fired_before = self.fired
        traffic = self.traffic
        traffic.start(seconds=a.phase_seconds + 120, max_requests=int(a.rps * (a.phase_seconds + 120)))
        time.sleep(a.warmup)
        traffic.omit = f"m_{fault}"  # this phase's alert: its feature goes missing
        extra = getattr(self, f"fault_{fault}")()
        traffic.omit = None
        time.sleep(a.cooldown)
        traffic.stop()
        st = self.settled()
        fig = self.account(fault, st, traffic.snapshot())
        self.lost_file_phase.clear()
        fig.update(extra or {})
        alerts, self.fired = self.alerts_check(fault, fired_before)
        fig.update(alerts)
        fig["seconds"] = round(time.monotonic() - t0, 1)
        fig["ok"] = self.verdict(fault, fig)
        return fig

    def verdict(self, fault: str, fig: Dict[str, Any]) -> bool:
        return not broken_promises(fault, fig)

    def wait_alert_pending(self, fault: str, timeout: float = 20.0) -> None:
        """Until this phase's alert is pending or firing at the actor."""
        def firing():
            for al in self.model_status().get("alerts") or []:
                if (al.get("labels") or {}).get("feature") == f"m_{fault}":
                    return True
            return False

        self.wait(firing, timeout, f"the alert of phase {fault}")

    # ------------------------------------------------------------------ faults
    def fault_none(self) -> Dict[str, Any]:
        self.wait_alert_pending("none")
        time.sleep(self.args.fault_seconds)
        return {}

    def fault_kill_actor(self) -> Dict[str, Any]:
        import ray

        self.wait_alert_pending("kill_actor")
        old = self.actor_call("info")["pid"]
        ray.kill(self.actor(), no_restart=False)
        t = time.monotonic()
        info = self.wait(lambda: (i := self.actor_call("info", timeout=5)) and i["pid"] != old and i, 60,
                         "the stats actor restarted")
        return {"actor_restart_seconds": round(time.monotonic() - t, 1),
                "recovered_models": info["recovered"].get("models")}

    def fault_sigstop_actor(self) -> Dict[str, Any]:
        self.wait_alert_pending("sigstop_actor")
        pid = self.actor_call("info")["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(self.args.stop_seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.wait(lambda: self.actor_call("info", timeout=5), 60, "the stats actor answers again")
        return {"stopped_seconds": self.args.stop_seconds}

    def fault_kill_replica(self) -> Dict[str, Any]:
        self.wait_alert_pending("kill_replica")
        marker = dict(self.traffic.payload(10**9), **{MARKER: True})
        out = self.traffic.call(marker)
        files = self.wait(lambda: list(self.work.glob("midflush-*.json")), 30, "a flusher parked mid-flush")
        info = json.loads(files[0].read_text())
        files[0].unlink()
        os.kill(info["pid"], signal.SIGKILL)
        self.wait(lambda: len(self.alive_replicas()) == 2 and info["replica"] not in self.alive_replicas(), 60,
                  "Serve replaced the killed replica")
        return {"killed_replica_served_marker": bool(out and out["replica"] == info["replica"])}

    def fault_remove_node(self) -> Dict[str, Any]:
        self.wait_alert_pending("remove_node")
        self.cluster.remove_node(self.worker, allow_graceful=False)
        self.worker = None
        self.wait(lambda: len(self.alive_replicas()) == 2, 90, "Serve replaced the worker node's replica")
        time.sleep(2)
        return {}

    def fault_corrupt_store(self) -> Dict[str, Any]:
        """Restart 1: the actor checkpoints and closes its file (ingest calls fail meanwhile:
        the replicas keep their batches). The file is damaged on disk. Restart 2: Ray starts
        the actor again on the damaged file."""
        import ray

        self.wait_alert_pending("corrupt_store")
        info = self.actor_call("info")
        pid, path = info["pid"], Path(info["sqlite_path"])
        self.actor_call("close", 3.0, timeout=30)
        before = durable_counts(path, self.work / "copy-before")
        damaged = damage(path, every=20)
        ray.kill(self.actor(), no_restart=False)
        new = self.wait(lambda: (i := self.actor_call("info", timeout=5)) and i["pid"] != pid and i, 90,
                        "the stats actor restarted on the damaged file")
        moved = [m for m in sorted(path.parent.glob(path.name + ".corrupt-*")) if not m.name.endswith(("-wal", "-shm"))]
        salvaged = durable_counts(moved[-1], self.work / "copy-salvage") if moved else dict(before)
        for rid, n in before.items():
            lost = n - salvaged.get(rid, 0)
            self.lost_file_phase[rid] += lost
            self.lost_file_total[rid] += lost
            # ingested in this phase = what the actor holds now - what it held before + what the damage took
            self.last["ingested"][rid] = self.last["ingested"].get(rid, 0) - lost
        if moved:
            self.wait_store_alert()
        store = self.actor_call("status")["actor"].get("store") or {}
        return {"pages_damaged": damaged, "moved_aside": len(moved), "recovered_models": new["recovered"].get("models"),
                "durable_before": sum(before.values()), "salvaged": sum(salvaged.get(r, 0) for r in before),
                "store_check": store.get("check")}

    def wait_store_alert(self, name: str = "RaywatchStoreCorrupt") -> None:
        self.wait(lambda: self.delivered().get((name, "")), 30, f"{name} at the receiver")

    def _store_fault(self, fault: str, hold: Any) -> Dict[str, Any]:
        """The state file cannot be written for ``--stop-seconds`` (``hold``: a context
        manager given the actor's pid and file): ingest calls fail, the replicas keep their
        batches and send them again; RaywatchStoreWriteFailing reaches the receiver."""
        self.wait_alert_pending(fault)
        info = self.actor_call("info")

        def failures() -> int:
            return int((self.actor_call("status")["actor"].get("store") or {}).get("write_failures") or 0)

        key = ("RaywatchStoreWriteFailing", "")
        # an earlier phase's alert resolved first, so that this phase's fault sends its own
        self.wait(lambda: self.last_status(key) in (None, "resolved"), 60, f"{key[0]} resolved")
        before, sent = failures(), self.delivered().get(key, 0)
        with hold(info["pid"], Path(info["sqlite_path"])):
            self.wait(lambda: failures() > before, 30, "a journal write refused")
            time.sleep(self.args.stop_seconds)
        self.wait(lambda: self.delivered().get(key, 0) > sent, 30, f"{key[0]} at the receiver")
        return {"refused_writes": failures() - before, "stopped_seconds": self.args.stop_seconds}

    def fault_store_locked(self) -> Dict[str, Any]:
        return self._store_fault("store_locked", locked)

    def fault_disk_full(self) -> Dict[str, Any]:
        return self._store_fault("disk_full", disk_full)

    def _sink_fault(self, fault: str, answer: Any) -> Dict[str, Any]:
        from alert_receivers import Answer

        self.receiver.defaults["/hook"] = answer
        n0 = len(self.receiver.requests)
        try:
            self.wait_alert_pending(fault)
            self.wait(lambda: self.met_fault(fault, n0), 20, "the alert's notification met the fault")
            time.sleep(self.args.sink_fault_seconds)
        finally:
            self.receiver.defaults["/hook"] = Answer()
        refused = [r.status for r in self.receiver.requests[n0:] if r.path == "/hook"]
        return {"answers_during_fault": dict(collections.Counter(str(s) for s in refused)),
                "firing_accepted_after_seconds": self.wait_firing_accepted(fault)}

    def met_fault(self, fault: str, n0: int) -> bool:
        """Whether a notification of this phase's alert reached the receiver since request ``n0``."""
        return any(r.path == "/hook" and isinstance(r.body, dict) and any(
            (al.get("labels") or {}).get("feature") == f"m_{fault}" for al in r.body.get("alerts") or [])
            for r in self.receiver.requests[n0:])

    def wait_firing_accepted(self, fault: str, timeout: float = 30.0) -> float:
        """Seconds from the receiver's return until it accepted this phase's alert as firing
        (the alert still fires: a failed send is retried at the group's next interval)."""
        t = time.monotonic()
        self.wait(lambda: self.delivered().get(("FeatureMissing", f"m_{fault}")), timeout,
                  f"the alert of phase {fault} accepted as firing once the receiver was back")
        return round(time.monotonic() - t, 1)

    def fault_sink_500(self):
        from alert_receivers import Answer

        return self._sink_fault("sink_500", Answer(500, "internal error"))

    def fault_sink_429(self):
        from alert_receivers import Answer

        return self._sink_fault("sink_429", Answer(429, "slow down", {"Retry-After": "2"}))

    def fault_sink_hang(self):
        from alert_receivers import Answer

        return self._sink_fault("sink_hang", Answer(200, "late", delay=5.0))

    def fault_sink_trickle(self):
        from alert_receivers import Answer

        return self._sink_fault("sink_trickle", Answer(200, "ok" * 50, trickle=0.2, max_seconds=10))

    def fault_sink_redirect(self):
        from alert_receivers import Answer

        return self._sink_fault("sink_redirect", Answer(302, "moved", {"Location": self.receiver.url("/elsewhere")}))

    def fault_sink_down_across_restart(self) -> Dict[str, Any]:
        """The receiver fails (503) while the actor is closed and killed with an alert to
        tell; it is back when the next actor starts."""
        from alert_receivers import Answer

        import ray

        self.receiver.defaults["/hook"] = Answer(503, "down")
        n0 = len(self.receiver.requests)
        self.wait_alert_pending("sink_down_across_restart")
        self.wait(lambda: self.met_fault("sink_down_across_restart", n0), 20, "the alert's notification met the fault")
        pid = self.actor_call("info")["pid"]
        self.actor_call("close", 3.0, timeout=30)   # a planned restart, the receiver still down
        ray.kill(self.actor(), no_restart=False)
        self.receiver.defaults["/hook"] = Answer()
        self.wait(lambda: (i := self.actor_call("info", timeout=5)) and i["pid"] != pid and i, 60, "a new stats actor")
        return {"dead_letters_at_restart": len(self.dead_letters()),
                "firing_accepted_after_seconds": self.wait_firing_accepted("sink_down_across_restart", 60)}

    def shutdown_with_sink_down(self) -> Dict[str, Any]:
        """The last phase: the receiver fails (503) while the app is deleted and the stats actor
        shut down for good, with an alert still to tell; then the receiver is back and
        ``raywatch replay-dead-letters`` runs."""
        from alert_receivers import Answer

        import ray
        from ray import serve

        a = self.args
        fault = "shutdown_with_sink_down"
        t0 = time.monotonic()
        fired_before = self.fired
        traffic = self.traffic
        self.receiver.defaults["/hook"] = Answer(503, "down")
        traffic.start(seconds=a.phase_seconds + 120, max_requests=int(a.rps * (a.phase_seconds + 120)))
        time.sleep(a.warmup)
        traffic.omit = f"m_{fault}"
        self.wait_alert_pending(fault)
        n0 = len(self.receiver.requests)
        self.wait(lambda: self.met_fault(fault, n0), 30, "the alert's notification met the fault")
        traffic.stop()
        fig = self.account(fault, self.settled(), traffic.snapshot())
        log = self.alert_log()
        serve.delete("faults")
        self.actor_call("close", 3.0, timeout=30)
        ray.kill(self.actor(), no_restart=True)
        self.receiver.defaults["/hook"] = Answer()
        alerts, self.fired = self.alerts_check(fault, fired_before, log=log)
        fig.update(alerts)
        fig["seconds"] = round(time.monotonic() - t0, 1)
        fig["ok"] = self.verdict(fault, fig) and fig["delivered_by_replay"] >= 1
        return fig

    # ------------------------------------------------------------------ the run
    def run(self) -> Dict[str, Any]:
        self.fired: set = set()
        t0 = time.monotonic()
        self.start()
        setup = time.monotonic() - t0
        for fault in self.phases:
            try:
                self.figures[fault] = self.shutdown_with_sink_down() if fault == "shutdown_with_sink_down" \
                    else self.run_phase(fault)
            except Exception as exc:  # noqa: BLE001 - reported, the campaign goes on
                self.figures[fault] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                self.traffic.stop()
            print(json.dumps({fault: self.figures[fault]}), flush=True)
        return {"setup_seconds": round(setup, 1), "seconds": round(time.monotonic() - t0, 1)}


# ============================================================================ the state file, offline


def durable_counts(path: Path, into: Path) -> Dict[str, int]:
    """Per replica of the campaign's model, the requests a stats actor restarted on ``path``
    would hold (its checkpoint and journal), read from a copy: for a damaged file, what the
    store's repair salvages from it (the same code the actor runs)."""
    from raywatch.aggregate.core import StatsCore
    from raywatch.aggregate.store import Store
    from raywatch.config import MonitorConfig

    into.mkdir(mode=0o700, exist_ok=True)
    dst = into / "stats.sqlite"
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            shutil.copyfile(src, Path(str(dst) + suffix))
    store = Store(str(dst), integrity_check="quick")
    try:
        cfg = MonitorConfig(actor={"sqlite_path": str(dst), "metrics_port": None}, alerting={"watchdog": False})
        core = StatsCore(cfg, store)
        core.recover()
        ms = core.models.get(MODEL_KEY)
        return {rid: r.requests for rid, r in ms.replicas.items()} if ms is not None else {}
    finally:
        store.close()


@contextlib.contextmanager
def locked(pid: int, path: Path):
    """Another process holds the SQLite file's write lock (``BEGIN EXCLUSIVE``)."""
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


@contextlib.contextmanager
def disk_full(pid: int, path: Path):
    """Process ``pid`` can write no byte to any file (``RLIMIT_FSIZE`` 0: every write
    fails with ``EFBIG``, which SQLite reports as a full disk; Python ignores ``SIGXFSZ``)."""
    import resource

    old = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, old[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, old)


def damage(path: Path, every: int = 3) -> int:
    """Overwrite every ``every``-th page of ``path`` after the first with a deterministic
    pattern, as a failing disk would (the header stays readable: SQLite opens the file and
    its check finds the damage). Returns the pages damaged."""
    page = 4096
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as c:
        page = c.execute("PRAGMA page_size").fetchone()[0]
    size = path.stat().st_size
    n = 0
    with open(path, "r+b") as f:
        for off in range(page * every, size, page * every):
            f.seek(off)
            f.write(b"\x5a" * (page // 2))
            n += 1
        f.flush()
        os.fsync(f.fileno())
    return n


def broken_promises(fault: str, fig: Dict[str, Any]) -> Dict[str, Any]:
    """What one phase's figures break of the campaign's promises (each entry non-zero), empty
    when the phase kept them all. The sums: sent = served + failed, and served = ingested +
    dropped + lost with the process (the damaged file's loss is reported beside them: see the
    module's docstring)."""
    wrong = {
        "failed_by_monitoring": fig["failed_by_monitoring"], "capture_errors": fig["capture_errors"],
        "acknowledged_but_lost": fig["unexplained"], "undelivered": fig["undelivered"],
        "sent != served + failed": fig["sent"] - fig["served"] - fig["failed_by_fault"] - fig["failed_by_monitoring"],
        "served != ingested + dropped + lost with the process":
            fig["served"] - fig["ingested"] - fig["dropped_reported"] - fig["lost_with_process"],
        "no alert fired": int(fault != "none" and fig["alerts_fired"] < 1),
    }
    if fault not in ("kill_replica", "remove_node"):  # only these kill a process that held requests
        wrong.update(lost_with_process=fig["lost_with_process"], failed_by_fault=fig["failed_by_fault"])
    if fault != "corrupt_store":
        wrong["lost_in_damaged_file"] = fig["lost_in_damaged_file"]
    elif "durable_before" in fig:
        wrong["lost_in_damaged_file != durable_before - salvaged"] = (
            fig["lost_in_damaged_file"] - fig["durable_before"] + fig["salvaged"])
    return {k: v for k, v in wrong.items() if v}


# ============================================================================ main


def guarantees(figures: Dict[str, Dict[str, Any]]) -> Dict[str, int]:
    """The campaign's promises summed over its phases, each 0 when kept: requests failed by
    monitoring; requests acknowledged to a replica (or served by a replica still alive) that
    the stats actor neither holds nor reported dropped; capture errors; alerts that fired and
    reached neither the receiver nor, through a replay of the dead-letter file, it later;
    phases that did not finish. Besides them, what the faults themselves destroyed: requests
    lost with a killed process (never acknowledged) and in a damaged file."""
    def total(key: str) -> int:
        return sum(int(f.get(key) or 0) for f in figures.values())

    return {
        "failed_by_monitoring": total("failed_by_monitoring"),
        "acknowledged_but_lost": total("unexplained"),
        "capture_errors": total("capture_errors"),
        "alerts_fired": total("alerts_fired"),
        "alerts_not_delivered": sum(len(f.get("undelivered") or []) for f in figures.values()),
        "phases_failed": sum(1 for f in figures.values() if "error" in f),
        "served": total("served"),
        "lost_with_killed_process": total("lost_with_process"),
        "lost_in_damaged_file": total("lost_in_damaged_file"),
    }


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a representative subset, under 60 s on 2 cores")
    ap.add_argument("--faults", help=f"comma-separated, of {', '.join(ALL_FAULTS)} (default: all; --quick: "
                                     f"{', '.join(QUICK_FAULTS)})")
    ap.add_argument("--rps", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--stop-seconds", type=float, default=None, help="SIGSTOP length (30; --quick: 4)")
    ap.add_argument("--sink-fault-seconds", type=float, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, state, dead letters)")
    args = ap.parse_args(argv)
    args.faults = tuple(args.faults.split(",")) if args.faults else (QUICK_FAULTS if args.quick else ALL_FAULTS)
    for f in args.faults:
        if f not in ALL_FAULTS:
            ap.error(f"unknown fault {f!r}")
    last = "shutdown_with_sink_down"  # it shuts everything down: always the last phase
    args.faults = tuple(f for f in args.faults if f != last) + ((last,) if last in args.faults else ())
    args.stop_seconds = args.stop_seconds if args.stop_seconds is not None else (3.0 if args.quick else 30.0)
    args.sink_fault_seconds = args.sink_fault_seconds if args.sink_fault_seconds is not None else (2.0 if args.quick else 6.0)
    args.warmup = 0.5 if args.quick else 3.0
    args.cooldown = 2.0 if args.quick else 6.0
    args.fault_seconds = 1.0
    args.phase_seconds = 60.0

    import logging

    logging.basicConfig(level=logging.WARNING)
    c = Campaign(args)
    try:
        run = c.run()
    finally:
        c.stop()
    out = {"benchmark": "faults", "quick": args.quick, **run, "faults": list(args.faults),
           "ok": bool(c.figures) and all(f.get("ok") for f in c.figures.values()),
           "guarantees": guarantees(c.figures), "figures": c.figures}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
