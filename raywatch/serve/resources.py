"""Process, node and GPU figures for one replica, sampled off the request path.

:class:`ResourceSampler` reads, with psutil, the replica process's CPU % (of one core, like
``top``), resident memory, thread count and open file descriptors, and the node's CPU % and
memory %; and, through NVML (``pynvml`` from nvidia-ml-py), the utilization, memory used and
total, temperature and power of the GPUs *assigned to this replica*: Ray's GPU ids
(``ray.get_gpu_ids()``) when running in a Ray worker, else ``CUDA_VISIBLE_DEVICES``. NVML
numbers devices physically and ignores ``CUDA_VISIBLE_DEVICES``, which is why the ids are
mapped explicitly (UUID-style ids, ``GPU-...``, are looked up by UUID).

Without an assigned GPU, without the ``pynvml`` module or without a driver, the sample says
``gpu_status: "no GPU"`` (with a ``gpu_reason``) and ``gpus: []``; it never raises. A GPU
figure a device does not support (power on some boards) is ``None``.

The NVML module is injectable (``nvml=``) so that the GPU path is tested without a GPU:

>>> import types
>>> class Mem: used, total = 3 * 2**30, 16 * 2**30
>>> class Util: gpu = 42
>>> fake = types.SimpleNamespace(
...     NVML_TEMPERATURE_GPU=0,
...     nvmlInit=lambda: None,
...     nvmlDeviceGetCount=lambda: 2,
...     nvmlDeviceGetHandleByIndex=lambda i: ("h", i),
...     nvmlDeviceGetUtilizationRates=lambda h: Util,
...     nvmlDeviceGetMemoryInfo=lambda h: Mem,
...     nvmlDeviceGetTemperature=lambda h, sensor: 55,
...     nvmlDeviceGetPowerUsage=lambda h: 70500,
... )
>>> s = ResourceSampler(nvml=fake, gpu_ids=["1"]).sample()
>>> s["gpu_status"], s["gpus"][0]["index"], s["gpus"][0]["utilization"], s["gpus"][0]["power_watts"]
('ok', 1, 42.0, 70.5)
>>> ResourceSampler(nvml=fake, gpu_ids=[]).sample()["gpu_status"]
'no GPU'
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional, Sequence

from raywatch import series
from raywatch.stats.batch import NO_GPU

__all__ = ["ResourceSampler", "assigned_gpu_ids", "NO_GPU"]

logger = logging.getLogger("raywatch.serve.resources")


def assigned_gpu_ids() -> List[str]:
    """GPU ids assigned to this process: Ray's, else ``CUDA_VISIBLE_DEVICES``; [] if none."""
    try:
        import ray

        if ray.is_initialized():
            ids = ray.get_gpu_ids()
            if ids:
                return [str(i) for i in ids]
    except Exception:
        pass
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return []
    return [p.strip() for p in env.split(",") if p.strip() and p.strip() != "-1"]


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        return None


class ResourceSampler:
    """One call to :meth:`sample` returns a dict in the shape of ``ReplicaBatch.resources``.

    Parameters
    ----------
    gpu:
        Look at GPUs at all (``resources.gpu`` in the config).
    nvml:
        The NVML module; ``None`` imports ``pynvml`` on first use.
    gpu_ids:
        GPU ids to report; ``None`` asks Ray / ``CUDA_VISIBLE_DEVICES`` (see
        :func:`assigned_gpu_ids`) on first use.
    pid:
        Process to sample (default: this one).
    """

    def __init__(
        self,
        *,
        gpu: bool = True,
        nvml: Any = None,
        gpu_ids: Optional[Sequence[Any]] = None,
        pid: Optional[int] = None,
    ):
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process(pid)
        self._gpu = gpu
        self._nvml = nvml
        self._gpu_ids = None if gpu_ids is None else [str(i) for i in gpu_ids]
        self._handles: Optional[List[Any]] = None
        self._gpu_reason = ""
        self._lock = threading.Lock()
        # prime the CPU counters: psutil's first cpu_percent(None) call returns 0.0
        _call(self._proc.cpu_percent, None)
        _call(psutil.cpu_percent, None)

    # ---------------------------------------------------------------- GPU

    def _init_gpus(self) -> None:
        self._handles = []
        if not self._gpu:
            self._gpu_reason = "GPU sampling disabled"
            return
        ids = self._gpu_ids if self._gpu_ids is not None else assigned_gpu_ids()
        if not ids:
            self._gpu_reason = "no GPU assigned to this replica"
            return
        nvml = self._nvml
        if nvml is None:
            try:
                import pynvml as nvml  # type: ignore[no-redef]
            except Exception as exc:
                self._gpu_reason = f"pynvml not importable: {type(exc).__name__}"
                return
            self._nvml = nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:
            self._gpu_reason = f"NVML unavailable: {type(exc).__name__}: {exc}"
            logger.info("raywatch: no GPU figures (%s)", self._gpu_reason)
            return
        handles = []
        for gid in ids:
            try:
                if gid.startswith(("GPU-", "MIG-")):
                    handle = nvml.nvmlDeviceGetHandleByUUID(gid)
                    index = _call(nvml.nvmlDeviceGetIndex, handle) if hasattr(nvml, "nvmlDeviceGetIndex") else None
                else:
                    index = int(gid)
                    handle = nvml.nvmlDeviceGetHandleByIndex(index)
                handles.append((index if index is not None else gid, handle))
            except Exception as exc:
                logger.info("raywatch: GPU %s not readable through NVML: %s", gid, exc)
        if not handles:
            self._gpu_reason = "assigned GPUs not found by NVML"
        self._handles = handles

    def _gpu_figures(self) -> List[Dict[str, Any]]:
        nvml = self._nvml
        out = []
        for index, h in self._handles or []:
            util = _call(nvml.nvmlDeviceGetUtilizationRates, h)
            mem = _call(nvml.nvmlDeviceGetMemoryInfo, h)
            temp = _call(nvml.nvmlDeviceGetTemperature, h, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
            power_mw = _call(nvml.nvmlDeviceGetPowerUsage, h)
            out.append(
                {
                    "index": index,
                    "utilization": float(util.gpu) if util is not None else None,
                    "memory_used_bytes": int(mem.used) if mem is not None else None,
                    "memory_total_bytes": int(mem.total) if mem is not None else None,
                    "temperature_celsius": float(temp) if temp is not None else None,
                    "power_watts": float(power_mw) / 1000.0 if power_mw is not None else None,
                }
            )
        return out

    # ---------------------------------------------------------------- sample

    def sample(self) -> Dict[str, Any]:
        """Current figures; a figure that cannot be read is ``None``. Never raises."""
        with self._lock:
            p, ps = self._proc, self._psutil
            mem = _call(p.memory_info)
            fds = _call(p.num_fds) if hasattr(p, "num_fds") else None
            if fds is None:
                files = _call(p.open_files)
                fds = len(files) if files is not None else None
            vm = _call(ps.virtual_memory)
            # the figures the stats actor turns into series are keyed by their catalogue name
            out: Dict[str, Any] = {
                series.CPU_PERCENT.name: _call(p.cpu_percent, None),
                series.RSS_BYTES.name: int(mem.rss) if mem is not None else None,
                "num_threads": _call(p.num_threads),
                "open_files": fds,
                series.NODE_CPU_PERCENT.name: _call(ps.cpu_percent, None),
                series.NODE_MEMORY_PERCENT.name: float(vm.percent) if vm is not None else None,
            }
            try:
                if self._handles is None:
                    self._init_gpus()
                gpus = self._gpu_figures()
            except Exception as exc:  # never let GPU trouble break sampling
                self._gpu_reason = f"NVML error: {type(exc).__name__}"
                gpus = []
            out["gpus"] = gpus
            if gpus:
                out["gpu_status"] = "ok"
            else:
                out["gpu_status"] = NO_GPU
                out["gpu_reason"] = self._gpu_reason or NO_GPU
            return out

    def close(self) -> None:
        if self._handles and self._nvml is not None and hasattr(self._nvml, "nvmlShutdown"):
            _call(self._nvml.nvmlShutdown)
        self._handles = None
