"""The pure placement plan against its rules, for random pipelines over random placements:
every module pipe gets an end, LocalPipes exactly inside one process, one shm pipe per
stream and host with a reader key per consumer, and the hosts' plans agree on the bridges."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shmpipe.run import Pipeline
from shmpipe.run.module import Code
from shmpipe.run.plan import plan, stream_endpoint

HOSTS = ("a", "b", "c")


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    """A DAG: module i writes stream si and reads streams of earlier modules."""
    n = draw(st.integers(2, 6))
    p = Pipeline()
    for h, port in zip(HOSTS, (6000, 7000, 8000), strict=True):
        p.host(h, f"tcp://127.0.0.1:{port}")
    for i in range(n):
        p.stream(f"s{i}", "float32_2")
    for i in range(n):
        inputs = {}
        if i:
            srcs = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=3, unique=True))
            inputs = {f"in{j}": f"s{j}" for j in srcs}
        p.module(f"m{i}", "x:y", inputs=inputs, outputs={"out": f"s{i}"},
                 process=draw(st.sampled_from([None, "p1", "p2"])),
                 host=draw(st.sampled_from(HOSTS)))
    # every stream needs a reader: a sink on a random host reads the ones nobody reads
    read = {s for m in p.modules.values() for s in m.inputs.values()}
    unread = {f"in{k}": s for k, s in enumerate(p.streams) if s not in read}
    p.module("sink", "x:y", inputs=unread, host=draw(st.sampled_from(HOSTS)))
    # a process lives on one host: name processes per host
    for m in p.modules.values():
        if m.process is not None:
            m.process = f"{m.process}-{m.host}"
    return p


@settings(max_examples=200, deadline=None)
@given(pipelines())
def test_plans_of_every_host_agree(p: Pipeline) -> None:
    p.check(loader=lambda spec: Code("exec", argv=("x",)))
    plans = {h: plan(p, h, f"r{h}") for h in HOSTS}
    producer = {s: name for name, m in p.modules.items() for s in m.outputs.values()}
    for h, pl in plans.items():
        placed = {m for proc in pl.processes.values() for m in proc.modules}
        assert placed == {m for m in p.modules if p.host_of(m) == h}
        shm_by_stream = {sp.stream: sp for sp in pl.pipes}
        assert len(shm_by_stream) == len(pl.pipes), "one shm pipe per stream and host"
        for proc in pl.processes.values():
            for name in proc.modules:
                m = p.modules[name]
                assert p.process_of(name) == proc.name
                assert set(proc.inputs[name]) == set(m.inputs)
                assert set(proc.outputs[name]) == set(m.outputs)
                for pipe, end in proc.inputs[name].items():
                    stream = m.inputs[pipe]
                    prod = producer[stream]
                    same = p.host_of(prod) == h and p.process_of(prod) == proc.name
                    users = [c for c, cm in p.modules.items() if stream in cm.inputs.values()]
                    local = all(p.host_of(c) == p.host_of(prod)
                                and p.process_of(c) == p.process_of(prod) for c in users)
                    assert (end.shm is None) == local
                    if local:
                        assert same
                    else:
                        assert end.shm == shm_by_stream[stream].name
                        assert end.key == f"{name}.{pipe}"
                        assert end.key in shm_by_stream[stream].readers
        for b in pl.bridges:
            if b.receives:  # this host receives the stream: the producer's host sends it here
                assert p.host_of(producer[b.stream]) != h
                assert b.src == stream_endpoint(p, h, b.stream)
                sender = plans[p.host_of(producer[b.stream])]
                assert any(s.dst == b.src and s.stream == b.stream for s in sender.bridges)
                assert b.dst == shm_by_stream[b.stream].name
            else:
                assert p.host_of(producer[b.stream]) == h
                assert b.key in shm_by_stream[b.stream].readers
                far = [x for x in HOSTS if stream_endpoint(p, x, b.stream) == b.dst]
                assert far and far[0] != h
                assert any(r.src == b.dst for r in plans[far[0]].bridges)
    ports = {stream_endpoint(p, h, s) for h in HOSTS for s in p.streams}
    assert len(ports) == len(HOSTS) * len(p.streams), "no two streams share an endpoint"
