import gc

from raywatch.stats.memo import IdentityCache


class _Thing:
    pass


def test_an_entry_is_found_by_the_same_objects_only():
    cache = IdentityCache()
    a, b = _Thing(), _Thing()
    cache.put((a, b), "ab")
    assert cache.get((a, b)) == "ab"
    assert cache.get((b, a)) is None and cache.get((a,)) is None
    assert cache.get((a, b), tag=True) is None  # the tag is part of the key
    cache.put((a, b), "ab-peers", tag=True)
    assert cache.get((a, b), tag=True) == "ab-peers" and cache.get((a, b)) == "ab"


def test_a_reused_id_never_returns_another_objects_value():
    cache = IdentityCache()
    seen = set()
    for i in range(200):  # new objects, often at the address of the one just freed
        obj = _Thing()
        assert cache.get((obj,)) is None
        seen.add(id(obj))
        cache.put((obj,), i)
        assert cache.get((obj,)) == i
    assert len(cache) <= 256
    # the cache keeps its objects, so their ids cannot be reused while an entry lives
    assert len(seen) == 200
    del obj
    gc.collect()


def test_the_cache_is_bounded():
    cache = IdentityCache(limit=8)
    things = [_Thing() for _ in range(30)]
    for t in things:
        cache.put((t,), 1)
        assert len(cache) <= 8
    assert cache.get((things[-1],)) == 1


def test_a_weak_cache_keeps_nothing_alive():
    import weakref

    cache = IdentityCache(weak=True)
    obj = _Thing()
    alive = weakref.ref(obj)
    cache.put((obj,), "derived")
    assert cache.get((obj,)) == "derived"
    del obj
    gc.collect()
    assert alive() is None  # the cache did not keep it
    for _ in range(100):  # a new object, possibly at the freed address, never sees the old value
        assert cache.get((_Thing(),)) is None
