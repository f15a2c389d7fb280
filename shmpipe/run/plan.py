"""Where everything of a pipeline goes on one host: pure (a checked Pipeline in, a Plan out).

* A stream whose producer and consumers all run in one process is a :class:`~shmpipe.LocalPipe`
  (one per consumer, the others subscribed to the first, for a fan-out).
* Otherwise each host it touches has a durable shared-memory pipe for it (``shm.prepare``),
  with one reader key per consuming module pipe (``module.pipe``), so a restarted consumer
  resumes at its unconsumed rows; every end on that host, the producer's process included,
  uses it.
* A stream consumed on another host leaves its producer's host through one bridge per
  consuming host (shm -> network, connecting, reader key ``bridge-HOST``) and arrives
  through one bridge on each consuming host (network -> shm, binding). Host ``h`` receives
  stream number ``k`` of ``[streams]`` at its endpoint's port + ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import ConfigError, Pipeline


@dataclass(frozen=True)
class End:
    """One module pipe: a LocalPipe of its process (``shm`` None) or a shm pipe's end."""

    stream: str
    layout: str
    shm: str | None = None
    key: str | None = None  # a shm input's durable reader key


@dataclass
class Process:
    """The modules of one process and their pipes."""

    name: str
    modules: list[str] = field(default_factory=list)
    inputs: dict[str, dict[str, End]] = field(default_factory=dict)  # module -> pipe -> end
    outputs: dict[str, dict[str, End]] = field(default_factory=dict)


@dataclass(frozen=True)
class ShmPipe:
    name: str
    stream: str
    layout: str
    readers: tuple[str, ...]


@dataclass(frozen=True)
class Bridge:
    """A stream crossing hosts: ``src``/``dst`` a shm pipe name or an endpoint."""

    stream: str
    layout: str
    src: str
    dst: str
    key: str | None = None  # the reader key of a shm source

    @property
    def receives(self) -> bool:
        """Whether it brings the stream in from the network (a source of this host)."""
        return "://" in self.src


@dataclass
class Plan:
    host: str | None
    processes: dict[str, Process]
    pipes: list[ShmPipe]
    bridges: list[Bridge]


def shm_name(run_id: str, stream: str) -> str:
    return f"{run_id}.{stream}"


def stream_endpoint(pipeline: Pipeline, host: str, stream: str) -> str:
    """Where ``host`` receives ``stream``: its endpoint's port plus the stream's position."""
    base = pipeline.hosts[host]
    address, _, port = base.rpartition(":")
    k = list(pipeline.streams).index(stream)
    if not port.isdigit() or int(port) + k > 65535:
        raise ConfigError(f"endpoint {base!r} leaves no port for stream {stream!r} "
                          f"(port + {k})", pipeline.source, f"hosts.{host}")
    return f"{address}:{int(port) + k}"


def plan(pipeline: Pipeline, host: str | None, run_id: str) -> Plan:
    """The processes, shm pipes and bridges of ``host`` (None: the first of [hosts], or the
    only host) for a pipeline that passed ``check``. ``run_id`` prefixes the shm names."""
    if host is None:
        host = next(iter(pipeline.hosts), None)
    mods = pipeline.modules
    on_host = {name: pipeline.host_of(name) for name in mods}
    producer: dict[str, str] = {}
    consumers: dict[str, list[tuple[str, str]]] = {s: [] for s in pipeline.streams}
    for name, m in mods.items():
        for stream in m.outputs.values():
            producer[stream] = name
        for pipe, stream in m.inputs.items():
            consumers[stream].append((name, pipe))

    processes: dict[str, Process] = {}
    for name in mods:
        if on_host[name] == host:
            proc = processes.setdefault(pipeline.process_of(name),
                                        Process(pipeline.process_of(name)))
            proc.modules.append(name)
            proc.inputs[name] = {}
            proc.outputs[name] = {}

    pipes: list[ShmPipe] = []
    bridges: list[Bridge] = []
    for stream, layout in pipeline.streams.items():
        prod = producer[stream]
        users = consumers[stream]
        local = all(on_host[c] == on_host[prod] and pipeline.process_of(c)
                    == pipeline.process_of(prod) for c, _ in users)
        if local:
            if on_host[prod] == host:
                end = End(stream, layout)
                processes[pipeline.process_of(prod)].outputs[prod][_pipe(mods[prod].outputs,
                                                                         stream)] = end
                for c, pipe in users:
                    processes[pipeline.process_of(c)].inputs[c][pipe] = end
            continue
        here = [(c, pipe) for c, pipe in users if on_host[c] == host]
        remote_hosts = sorted({on_host[c] for c, _ in users if on_host[c] != on_host[prod]},
                              key=lambda h: list(pipeline.hosts).index(h) if h else 0)
        produced_here = on_host[prod] == host
        if not produced_here and not here:
            continue
        name = shm_name(run_id, stream)
        keys = [f"{c}.{pipe}" for c, pipe in here]
        if produced_here:
            keys += [f"bridge-{h}" for h in remote_hosts]
            out = End(stream, layout, name)
            processes[pipeline.process_of(prod)].outputs[prod][_pipe(mods[prod].outputs,
                                                                     stream)] = out
            for h in remote_hosts:
                assert h is not None
                bridges.append(Bridge(stream, layout, name,
                                      stream_endpoint(pipeline, h, stream), f"bridge-{h}"))
        else:
            assert host is not None
            bridges.append(Bridge(stream, layout, stream_endpoint(pipeline, host, stream), name))
        for c, pipe in here:
            processes[pipeline.process_of(c)].inputs[c][pipe] = End(stream, layout, name,
                                                                    f"{c}.{pipe}")
        pipes.append(ShmPipe(name, stream, layout, tuple(keys)))
    return Plan(host, processes, pipes, bridges)


def _pipe(table: dict[str, str], stream: str) -> str:
    return next(pipe for pipe, s in table.items() if s == stream)
