"""SegmentTraffic: merges exactly in any order, and reads back only what is plausible."""

import json

import numpy as np
import pytest

from raywatch.stats.segment_traffic import SegmentTraffic
from raywatch.stats.segments import Segments


def test_merging_parts_equals_the_traffic_of_all_requests():
    rng = np.random.default_rng(0)
    lat, failed = rng.lognormal(-4, 1, 3000), rng.random(3000) < 0.1
    whole = SegmentTraffic.of(lat, failed)
    parts = [SegmentTraffic.of(lat[i::3], failed[i::3]) for i in range(3)]
    merged = parts[2].merge(parts[0]).merge(parts[1])
    assert merged == whole and merged.errors == int(failed.sum())
    assert parts[0] == SegmentTraffic.of(lat[0::3], failed[0::3])  # merging changed no input
    back = SegmentTraffic.from_dict(json.loads(json.dumps(merged.to_dict())))
    assert back == whole and back.latency.quantile(0.99) == whole.latency.quantile(0.99)


def test_per_segment_traffic_partitions_the_requests():
    rng = np.random.default_rng(1)
    seg = rng.choice(["a", "b", "c", "d"], 1000)
    lat, failed = rng.random(1000), rng.random(1000) < 0.2
    s = Segments.build({"x": seg}, lambda rows: SegmentTraffic.of(lat[rows], failed[rows]), k=2)
    assert s.total("x") == SegmentTraffic.of(lat, failed)


@pytest.mark.parametrize("bad", [{"requests": -1, "errors": 0}, {"requests": 2, "errors": 3}, {"requests": 1.5, "errors": 0},
                                 {"requests": 1, "errors": 0, "latency": {"counts": [-1]}}, "nonsense"])
def test_implausible_traffic_is_refused(bad):
    with pytest.raises(ValueError):
        SegmentTraffic.from_dict(bad)
