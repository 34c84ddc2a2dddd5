from raywatch.serve.shipper import Shipper
from raywatch.stats.batch import ReplicaBatch


class FakeTransport:
    """In-memory transport: each send returns a ticket; tests decide when tickets finish."""

    def __init__(self):
        self.sent = []
        self.results = {}
        self.resolves = 0
        self.resolve_error = None
        self.send_error = None
        self.calls = []

    def resolve(self):
        self.resolves += 1
        if self.resolve_error:
            raise self.resolve_error
        return f"actor-{self.resolves}"

    def send(self, handle, batch):
        if self.send_error:
            raise self.send_error
        ticket = len(self.sent)
        self.sent.append((handle, batch.seq, batch.dropped_total))
        return ticket

    def done(self, refs):
        return [r for r in refs if r in self.results]

    def check(self, ref):
        err = self.results[ref]
        if isinstance(err, BaseException):
            raise err
        return err  # the actor's reply

    def call(self, handle, method, *args):
        self.calls.append((handle, method))
        return None


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _b(seq, n=10):
    return ReplicaBatch(app="a", deployment="d", replica_id="r", start_ts=0, end_ts=0, requests=n, seq=seq)


def test_one_send_per_batch_and_ack():
    tr, clock = FakeTransport(), Clock()
    connected = []
    s = Shipper(tr, clock=clock, on_connect=connected.append)
    s.submit(_b(1))
    s.submit(_b(2))
    s.pump()
    assert [x[1] for x in tr.sent] == [1, 2]
    assert connected == ["actor-1"]
    tr.results = {0: None, 1: None}
    s.pump()
    assert s.acked_batches == 2 and not s.inflight and not s.pending


def test_a_reregister_reply_registers_the_config_again_at_most_once_a_minute():
    from raywatch.stats.batch import REREGISTER

    tr, clock = FakeTransport(), Clock()
    connected = []
    s = Shipper(tr, clock=clock, on_connect=connected.append)
    for seq in (1, 2):
        s.submit(_b(seq))
    s.pump()
    assert connected == ["actor-1"]
    tr.results = {0: REREGISTER, 1: REREGISTER}  # both acked; the actor lacks the config's secrets
    s.pump()
    assert s.acked_batches == 2 and connected == ["actor-1", "actor-1"] and s.reregistrations == 1
    clock.t = 30.0
    s.submit(_b(3))
    s.pump()
    tr.results[2] = REREGISTER
    s.pump()
    assert connected == ["actor-1", "actor-1"]  # not again within the minute
    clock.t = 61.0
    s.submit(_b(4))
    s.pump()
    tr.results[3] = "ok"
    s.pump()
    assert connected == ["actor-1", "actor-1"]  # an "ok" asks nothing
    s.submit(_b(5))
    s.pump()
    tr.results[4] = REREGISTER
    s.pump()
    assert connected == ["actor-1", "actor-1", "actor-1"] and s.reregistrations == 2


def test_in_flight_bound_and_pending_overflow_drops_oldest():
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock, max_in_flight=2, max_pending_batches=3)
    for i in range(1, 8):
        s.submit(_b(i, n=5))
        s.pump()
    # 2 in flight (never acked: a slow actor), 3 pending, the rest dropped and counted
    assert len(s.inflight) == 2 and len(s.pending) == 3
    assert s.dropped_batches == 2 and s.dropped_records == 10
    assert [b.seq for b, _ in s.pending] == [5, 6, 7]


def test_failure_retries_after_backoff_with_reresolve_and_same_seq():
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock, retry_backoff=1.0, max_retries=3)
    s.submit(_b(1))
    s.pump()
    tr.results[0] = RuntimeError("actor died")
    s.pump()  # reaps the failure, schedules a retry
    assert s.handle is None and len(s.pending) == 1 and len(tr.sent) == 1
    clock.t = 0.5
    s.pump()
    assert len(tr.sent) == 1  # still backing off
    clock.t = 1.01
    s.pump()
    assert len(tr.sent) == 2 and tr.sent[1][1] == 1  # same batch, same seq
    assert tr.sent[1][0] == "actor-2"  # re-resolved


def test_gives_up_after_max_retries_and_counts():
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock, retry_backoff=0.1, max_backoff=0.1, max_retries=2)
    s.submit(_b(1, n=7))
    for i in range(10):
        s.pump()
        for ref in list(s.inflight):
            tr.results[ref] = RuntimeError("nope")
        clock.t += 1
    assert s.dropped_records == 7 and s.dropped_batches == 1
    assert len(tr.sent) == 3  # first try + 2 retries


def test_unreachable_actor_keeps_batches_bounded():
    tr, clock = FakeTransport(), Clock()
    tr.resolve_error = LookupError("no actor")
    s = Shipper(tr, clock=clock, max_pending_batches=4, retry_backoff=0.5)
    for i in range(10):
        s.submit(_b(i, n=1))
        s.pump()
        clock.t += 1
    assert len(s.pending) == 4 and s.dropped_records == 6 and not tr.sent
    tr.resolve_error = None
    clock.t += 20  # past the (capped, exponential) backoff
    s.pump()
    assert len(tr.sent) == 4


def test_stamp_sets_cumulative_counters_at_send_time():
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock)
    counter = {"dropped": 3}

    def stamp(b):
        b.dropped_total = counter["dropped"]

    s.submit(_b(1))
    counter["dropped"] = 9
    s.pump(stamp)
    assert tr.sent[0][2] == 9


def test_inflight_timeout_is_a_failure():
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock, retry_backoff=0.1)
    s.submit(_b(1))
    s.pump()
    clock.t = s.inflight_timeout + 1
    s.pump()
    assert s.failures == 1 and s.handle is None and len(s.pending) == 1


def test_pump_never_raises_on_send_errors():
    tr, clock = FakeTransport(), Clock()
    tr.send_error = RuntimeError("serialization")
    s = Shipper(tr, clock=clock)
    s.submit(_b(1))
    s.pump()
    assert s.failures == 1 and len(s.pending) == 1


# ---------------------------------------------------------------- abandoned batches (sent, then given up on)


def _give_up(s, tr, clock, error=RuntimeError("actor died")):
    """Fail every call in flight until nothing is pending or in flight."""
    for _ in range(20):
        s.pump()
        for ref in list(s.inflight):
            tr.results[ref] = error
        clock.t += 1
        if not s.pending and not s.inflight:
            return


def test_a_batch_given_up_on_after_a_send_is_abandoned_not_dropped_for_certain():
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock, retry_backoff=0.1, max_backoff=0.1, max_retries=2)
    s.submit(_b(1, n=7))
    _give_up(s, tr, clock)
    # it may have been stored (the actor died after its journal write): the actor decides
    assert s.dropped_records == 7 and s.unsent_dropped_records == 0 and s.abandoned == {1: 7}
    s.submit(_b(2, n=3))
    s.pump()
    (ref, (batch, _, _)), = s.inflight.items()
    assert batch.seq == 2 and batch.abandoned == [[1, 7]]
    tr.results[ref] = "duplicate"  # an earlier delivery of seq 2 carried no such list: keep telling
    s.pump()
    assert s.abandoned == {1: 7}
    s.submit(_b(3, n=1))
    s.pump()
    (ref, (batch, _, _)), = s.inflight.items()
    tr.results[ref] = "ok"  # merged with its list: the actor has heard
    s.pump()
    assert batch.abandoned == [[1, 7]] and s.abandoned == {}


def test_a_timed_out_batch_dropped_from_the_queue_is_abandoned():
    # the call may still land (a slow or restarting actor): counting it dropped would count it twice
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock, max_pending_batches=2, max_in_flight=1, retry_backoff=0.1)
    s.submit(_b(1, n=5))
    s.pump()
    clock.t = s.inflight_timeout + 1
    s.pump()  # timed out: back in the queue
    for seq in (2, 3):
        s.submit(_b(seq, n=4))  # the queue overflows: the oldest, seq 1, goes
    assert s.abandoned == {1: 5} and s.unsent_dropped_records == 0
    s.submit(_b(4, n=2))  # never sent: lost for certain
    assert s.unsent_dropped_records == 4 and s.dropped_records == 9


def test_abandoned_batches_are_bounded(monkeypatch):
    import raywatch.serve.shipper as shipper_mod

    monkeypatch.setattr(shipper_mod, "MAX_ABANDONED", 3)
    tr, clock = FakeTransport(), Clock()
    s = Shipper(tr, clock=clock, retry_backoff=0.1, max_backoff=0.1, max_retries=0)
    for seq in range(1, 6):
        s.submit(_b(seq, n=seq))
        _give_up(s, tr, clock)
    assert list(s.abandoned) == [3, 4, 5] and s.unsent_dropped_records == 1 + 2
