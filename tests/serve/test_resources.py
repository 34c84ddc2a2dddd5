import types

from raywatch.serve.resources import ResourceSampler, assigned_gpu_ids


class FakeNVML(types.SimpleNamespace):
    pass


def make_nvml(fail_init=False, power=True):
    calls = []

    class Mem:
        used, total = 2 * 2**30, 8 * 2**30

    class Util:
        gpu = 37

    def init():
        calls.append("init")
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def handle(i):
        calls.append(("handle", i))
        if i > 3:
            raise RuntimeError("invalid index")
        return ("h", i)

    def pw(h):
        if not power:
            raise RuntimeError("Not Supported")
        return 120000 + h[1]

    return calls, FakeNVML(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetHandleByUUID=lambda u: ("h", 9),
        nvmlDeviceGetIndex=lambda h: h[1],
        nvmlDeviceGetUtilizationRates=lambda h: Util,
        nvmlDeviceGetMemoryInfo=lambda h: Mem,
        nvmlDeviceGetTemperature=lambda h, s: 60 + h[1],
        nvmlDeviceGetPowerUsage=pw,
    )


def test_process_and_node_figures():
    s = ResourceSampler(gpu=False).sample()
    assert s["rss_bytes"] > 0 and s["num_threads"] >= 1 and s["open_files"] >= 1
    assert 0 <= s["node_memory_percent"] <= 100
    assert s["cpu_percent"] is not None and s["node_cpu_percent"] is not None
    assert s["gpus"] == [] and s["gpu_status"] == "no GPU"


def test_assigned_gpus_through_fake_nvml():
    calls, nvml = make_nvml()
    sampler = ResourceSampler(nvml=nvml, gpu_ids=[2, 3])
    s = sampler.sample()
    assert s["gpu_status"] == "ok"
    assert [g["index"] for g in s["gpus"]] == [2, 3]
    g = s["gpus"][0]
    assert g == {"index": 2, "utilization": 37.0, "memory_used_bytes": 2 * 2**30, "memory_total_bytes": 8 * 2**30,
                 "temperature_celsius": 62.0, "power_watts": 120.002}
    sampler.sample()
    assert calls.count("init") == 1  # initialised once
    sampler.close()
    assert "shutdown" in calls


def test_uuid_ids_and_unreadable_figures_are_none():
    _, nvml = make_nvml(power=False)
    s = ResourceSampler(nvml=nvml, gpu_ids=["GPU-1234-abcd"]).sample()
    assert s["gpus"][0]["index"] == 9 and s["gpus"][0]["power_watts"] is None


def test_no_driver_is_no_gpu_not_an_error():
    _, nvml = make_nvml(fail_init=True)
    s = ResourceSampler(nvml=nvml, gpu_ids=[0]).sample()
    assert s["gpu_status"] == "no GPU" and s["gpus"] == []
    assert "NVML unavailable" in s["gpu_reason"]


def test_missing_device_is_skipped():
    _, nvml = make_nvml()
    s = ResourceSampler(nvml=nvml, gpu_ids=[7]).sample()
    assert s["gpu_status"] == "no GPU" and "not found" in s["gpu_reason"]


def test_gpu_ids_from_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1, 3")
    assert assigned_gpu_ids() == ["1", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert assigned_gpu_ids() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert assigned_gpu_ids() == []
    _, nvml = make_nvml()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [g["index"] for g in ResourceSampler(nvml=nvml).sample()["gpus"]] == [1]


def test_real_pynvml_without_gpu_reports_no_gpu():
    # whatever this machine has: never raises, status is one of the two
    s = ResourceSampler(gpu_ids=[0]).sample()
    assert s["gpu_status"] in ("ok", "no GPU")
