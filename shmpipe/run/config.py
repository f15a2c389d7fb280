"""Pipeline descriptions: :class:`Pipeline` (built in Python or read from TOML) and their
checks.

The TOML shape (these keys exactly)::

    [streams]
    raw = "float32_3"                    # stream name = layout

    [hosts]                              # only for pipelines that span hosts
    a = "tcp://127.0.0.1:5601"           # where host a's runner receives its streams

    [modules.sensor]
    code = "examples.median:MedianFilter"  # "package.module:attr": a function or a module
    exec = "joule-median-filter"         #   class; or exec: a Joule executable module
    inputs = { input = "raw" }           # the module's pipe name -> stream
    outputs = { output = "filtered" }
    args = { rate = 1000 }
    process = "dsp"                      # default: a process of its own
    host = "b"                           # default: the first of [hosts]
    restart = "on-failure"               # "never" | "on-failure" | "always"

Every check runs before anything starts and raises :class:`ConfigError` naming the file, the
key and, when the key is found in the file's text, its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..layout import compute_dtype
from .module import Code, ModuleError, check_args, code_of, exec_argv, load_code, reference

RESTART = ("never", "on-failure", "always")
TOP_KEYS = ("streams", "hosts", "modules")
MODULE_KEYS = ("code", "exec", "inputs", "outputs", "args", "process", "host", "restart")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class ConfigError(ValueError):
    """A pipeline description that cannot run: says where (file, key, line) and why."""

    def __init__(self, message: str, source: str = "<pipeline>", key: str | None = None,
                 line: int | None = None) -> None:
        where = source + (f":{line}" if line else "") + (f": {key}" if key else "")
        super().__init__(f"{where}: {message}")
        self.source, self.key, self.line, self.reason = source, key, line, message


@dataclass
class Module:
    """One module of a pipeline (see the module docstring for the keys)."""

    name: str
    code: str | None = None
    exec: str | list[str] | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    process: str | None = None
    host: str | None = None
    restart: str = "on-failure"


class Pipeline:
    """Streams, hosts and modules: what ``shmpipe run`` runs.

    Build it in Python (``stream``, ``host``, ``module``) or read it with :meth:`load`;
    :meth:`check` validates it, :meth:`run` runs this host's part (see ``supervisor.py``).
    """

    def __init__(self, source: str = "<pipeline>") -> None:
        self.source = source
        self.streams: dict[str, str] = {}
        self.hosts: dict[str, str] = {}
        self.modules: dict[str, Module] = {}
        self._text: str | None = None
        self._codes: dict[str, Code] = {}

    # ------------------------------------------------------------------ building
    def stream(self, name: str, layout: str) -> Pipeline:
        """Add stream ``name`` of ``layout`` (e.g. ``"float32_3"``)."""
        self.streams[name] = layout
        return self

    def host(self, name: str, endpoint: str) -> Pipeline:
        """Add host ``name``, whose runner receives the streams it consumes at ``endpoint``
        (``tcp://address:port``; stream k of ``[streams]`` consumed there uses port + k)."""
        self.hosts[name] = endpoint
        return self

    def module(self, name: str, code: Any = None, *, exec: str | list[str] | None = None,
               inputs: Mapping[str, str] | None = None,
               outputs: Mapping[str, str] | None = None, args: Mapping[str, Any] | None = None,
               process: str | None = None, host: str | None = None,
               restart: str = "on-failure") -> Pipeline:
        """Add module ``name``: ``code`` is ``"package.module:attr"`` or the function or
        class itself (defined at the top level of an importable module), or ``exec`` a Joule
        executable module's command line."""
        if code is not None and not isinstance(code, str):
            obj, code = code, reference(code)
            self._codes[code] = code_of(obj, code)
        self.modules[name] = Module(name, code, exec, dict(inputs or {}), dict(outputs or {}),
                                    dict(args or {}), process, host, restart)
        return self

    # ------------------------------------------------------------------ reading
    @classmethod
    def load(cls, path: str) -> Pipeline:
        """Read a TOML pipeline file; ConfigError (naming the file, and the line where TOML
        gives it) if it cannot be read or parsed, or has an unknown or mistyped key."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read the file: {e.strerror}", path) from None
        return cls.loads(raw.decode("utf-8", errors="replace"), path)

    @classmethod
    def loads(cls, text: str, source: str = "<pipeline>") -> Pipeline:
        """:meth:`load` from the text of a TOML file."""
        tomllib = _tomllib()
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            line = getattr(e, "lineno", None) or _line_from_message(str(e))
            raise ConfigError(f"not valid TOML: {e}", source, line=line) from None
        p = cls(source)
        p._text = text
        p._fill(doc)
        return p

    def _fill(self, doc: dict[str, Any]) -> None:
        for key in doc:
            if key not in TOP_KEYS:
                self._fail(f"unknown key (expected one of {', '.join(TOP_KEYS)})", key)
        for part in ("streams", "hosts"):
            table = doc.get(part, {})
            if not isinstance(table, dict):
                self._fail(f"expected a table of name = text, got {_kind(table)}", part)
            for name, value in table.items():
                if not isinstance(value, str):
                    self._fail(f"expected a string, got {_kind(value)}", f"{part}.{name}")
                getattr(self, part)[name] = value
        modules = doc.get("modules", {})
        if not isinstance(modules, dict):
            self._fail(f"expected tables [modules.NAME], got {_kind(modules)}", "modules")
        for name, table in modules.items():
            where = f"modules.{name}"
            if not isinstance(table, dict):
                self._fail(f"expected a table, got {_kind(table)}", where)
            for key in table:
                if key not in MODULE_KEYS:
                    self._fail(f"unknown key (expected one of {', '.join(MODULE_KEYS)})",
                               f"{where}.{key}")
            m = Module(name)
            for key in ("inputs", "outputs", "args"):
                value = table.get(key, {})
                if not isinstance(value, dict):
                    self._fail(f"expected a table, got {_kind(value)}", f"{where}.{key}")
                if key != "args":
                    for pipe, stream in value.items():
                        if not isinstance(stream, str):
                            self._fail(f"expected a stream name, got {_kind(stream)}",
                                       f"{where}.{key}.{pipe}")
                setattr(m, key, dict(value))
            for key in ("code", "process", "host", "restart"):
                if key in table:
                    if not isinstance(table[key], str):
                        self._fail(f"expected a string, got {_kind(table[key])}",
                                   f"{where}.{key}")
                    setattr(m, key, table[key])
            if "exec" in table:
                value = table["exec"]
                if not (isinstance(value, str) or (isinstance(value, list) and all(
                        isinstance(v, str) for v in value))):
                    self._fail(f"expected a command line or an array of strings, got "
                               f"{_kind(value)}", f"{where}.exec")
                m.exec = value
            self.modules[name] = m

    # ------------------------------------------------------------------ checking
    def check(self, host: str | None = None,
              loader: Callable[[str], Code] | None = None) -> dict[str, Code]:
        """Validate everything before anything starts; return each module's Code.

        Refused, each with a ConfigError naming the file, the key and the line: a bad
        stream, host, module or process name; a bad layout; a missing, unimportable
        (with the import error) or unsuitable ``code``; an unknown stream; a stream with
        no producer, two producers or no consumer; a module pipe name the module's code
        does not use (or a pipe it uses and is not given); ``args`` a function does not take
        or a module class's parser refuses; a cycle; an unknown host (also
        for ``host``, the host this runner plays); a bad endpoint; a bad ``restart``.
        """
        load = loader or self._load
        for name, layout in self.streams.items():
            self._check_name(name, f"streams.{name}", "stream")
            try:
                compute_dtype(layout)
            except (ValueError, TypeError) as e:
                self._fail(f"bad layout {layout!r}: {e}", f"streams.{name}")
        for name, endpoint in self.hosts.items():
            self._check_name(name, f"hosts.{name}", "host")
            if not re.fullmatch(r"tcp://[^/\s]+:[0-9]{1,5}", endpoint) or not (
                    1 <= int(endpoint.rpartition(":")[2]) <= 65535):
                self._fail(f"expected tcp://ADDRESS:PORT, got {endpoint!r}", f"hosts.{name}")
        if self.hosts:
            try:
                import zmq  # noqa: F401  (streams between hosts travel on network pipes)
            except ImportError:
                self._fail("a pipeline with [hosts] needs pyzmq: pip install 'shmpipe[net]'",
                           "hosts")
        if host is not None and self.hosts and host not in self.hosts:
            self._fail(f"unknown host {host!r} (hosts: {', '.join(self.hosts)})", "hosts")
        if host is not None and not self.hosts:
            self._fail(f"--host {host!r} given but the pipeline has no [hosts]", "hosts")
        if not self.modules:
            self._fail("no modules", "modules")
        producers: dict[str, list[str]] = {s: [] for s in self.streams}
        consumers: dict[str, list[str]] = {s: [] for s in self.streams}
        codes: dict[str, Code] = {}
        for name, m in self.modules.items():
            where = f"modules.{name}"
            self._check_name(name, where, "module")
            if m.restart not in RESTART:
                self._fail(f"expected one of {', '.join(RESTART)}, got {m.restart!r}",
                           f"{where}.restart")
            if m.process is not None:
                self._check_name(m.process, f"{where}.process", "process")
            if m.host is not None and m.host not in self.hosts:
                known = ", ".join(self.hosts) or "none: the pipeline has no [hosts]"
                self._fail(f"unknown host {m.host!r} (hosts: {known})", f"{where}.host")
            for side, table, users in (("inputs", m.inputs, consumers),
                                       ("outputs", m.outputs, producers)):
                for pipe, stream in table.items():
                    if stream not in self.streams:
                        self._fail(f"unknown stream {stream!r} (streams: "
                                   f"{', '.join(self.streams) or 'none'})",
                                   f"{where}.{side}.{pipe}")
                    users[stream].append(name)
            codes[name] = self._code_of(m, load)
            self._check_pipes(m, codes[name])
            try:
                check_args(codes[name], m.args, name)
            except ModuleError as e:
                self._fail(str(e), f"{where}.args")
        for stream in self.streams:
            if not producers[stream]:
                self._fail("no module writes this stream (no producer)", f"streams.{stream}")
            if len(producers[stream]) > 1:
                self._fail(f"two producers: modules {' and '.join(producers[stream])}",
                           f"streams.{stream}")
            if not consumers[stream]:
                self._fail(f"module {producers[stream][0]!r} writes it but no module reads it "
                           "(a writer with no reader would block when the pipe is full)",
                           f"streams.{stream}")
        self._check_cycles(producers)
        self._check_processes()
        self._check_readers(producers, consumers)
        self._check_ports(producers, consumers)
        return codes

    def _check_readers(self, producers: dict[str, list[str]],
                       consumers: dict[str, list[str]]) -> None:
        """A stream's shm pipe on a host has a reader slot per consuming module pipe there,
        and on the producer's host one per other consuming host: at most MAX_READERS."""
        from ..shm import MAX_READERS

        for stream in self.streams:
            slots: dict[str | None, int] = {}
            remote = set()
            for name in set(consumers[stream]):  # (listed once per pipe reading it)
                host = self.host_of(name)
                uses = list(self.modules[name].inputs.values()).count(stream)
                slots[host] = slots.get(host, 0) + uses
                if host != self.host_of(producers[stream][0]):
                    remote.add(host)
            home = self.host_of(producers[stream][0])
            slots[home] = slots.get(home, 0) + len(remote)
            worst = max(slots.values())
            if worst > MAX_READERS:
                self._fail(f"{worst} readers on one host: a pipe has at most {MAX_READERS}",
                           f"streams.{stream}")

    def _check_ports(self, producers: dict[str, list[str]],
                     consumers: dict[str, list[str]]) -> None:
        """Host h receives stream k at its port + k: no two (host, stream) pairs that travel
        may meet on one address and port, and no port may pass 65535."""
        taken: dict[str, str] = {}
        order = list(self.streams)
        for stream in order:
            home = self.host_of(producers[stream][0])
            for host in sorted({self.host_of(c) for c in consumers[stream]} - {home},
                               key=str):
                assert host is not None
                address, _, port = self.hosts[host].rpartition(":")
                number = int(port) + order.index(stream)
                if number > 65535:
                    self._fail(f"host {host} would receive stream {stream!r} on port "
                               f"{number} (its port + {order.index(stream)}): past 65535",
                               f"hosts.{host}")
                where = f"{address}:{number}"
                if where in taken:
                    self._fail(f"host {host} would receive stream {stream!r} on {where}, where "
                               f"{taken[where]} already is (host h receives stream k of "
                               "[streams] at its port + k: space the hosts' ports apart)",
                               f"hosts.{host}")
                taken[where] = f"host {host}'s stream {stream!r}"

    def _load(self, spec: str) -> Code:
        return self._codes[spec] if spec in self._codes else load_code(spec)

    def _code_of(self, m: Module, load: Callable[[str], Code]) -> Code:
        where = f"modules.{m.name}"
        if (m.code is None) == (m.exec is None):
            self._fail("give exactly one of code and exec", where)
        try:
            if m.exec is not None:
                return Code("exec", argv=exec_argv(m.exec))
            assert m.code is not None
            return load(m.code)
        except ModuleError as e:
            self._fail(str(e), f"{where}.{'exec' if m.exec is not None else 'code'}")

    def _check_pipes(self, m: Module, code: Code) -> None:
        where = f"modules.{m.name}"
        if code.source and (m.inputs or len(m.outputs) != 1):
            self._fail("a ReaderModule has exactly one output and no inputs", where)
        uses = code.uses()
        for side, table, used in (("inputs", m.inputs, uses[0]), ("outputs", m.outputs, uses[1])):
            if used is None:
                continue
            for pipe in table:
                if pipe not in used:
                    self._fail(f"the module's code does not use {side[:-1]} {pipe!r} (it uses: "
                               f"{', '.join(sorted(used)) or 'none'})", f"{where}.{side}.{pipe}")
            missing = sorted(set(used) - set(table))
            if missing:
                self._fail(f"the module's code uses {side[:-1]} {missing[0]!r}, not given",
                           f"{where}.{side}")

    def _check_cycles(self, producers: dict[str, list[str]]) -> None:
        after: dict[str, set[str]] = {name: set() for name in self.modules}
        for name, m in self.modules.items():
            for stream in m.inputs.values():
                after[producers[stream][0]].add(name)
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(after[node]):
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
                    self._fail(f"a cycle: {' -> '.join(cycle)}", f"modules.{nxt}")
                if nxt not in state:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        for name in self.modules:
            if name not in state:
                visit(name, [name])

    def _check_processes(self) -> None:
        hosts: dict[str, str | None] = {}
        for name, m in self.modules.items():
            if m.process is None:
                continue
            if (m.process != name and m.process in self.modules
                    and self.modules[m.process].process is None):
                self._fail(f"process {m.process!r} is the name of module {m.process!r}, which "
                           "runs in a process of its own", f"modules.{name}.process")
            host = self.host_of(name)
            if hosts.setdefault(m.process, host) != host:
                self._fail(f"process {m.process!r} spans hosts {hosts[m.process]} and {host}",
                           f"modules.{name}.host")

    def _check_name(self, name: str, key: str, what: str) -> None:
        if not _NAME.match(name):
            self._fail(f"bad {what} name {name!r}: 1..32 characters of A-Z a-z 0-9 _ -, "
                       "starting with a letter or digit", key)

    def _fail(self, message: str, key: str) -> NoReturn:
        raise ConfigError(message, self.source, key, self._line_of(key))

    def _line_of(self, key: str) -> int | None:
        """The line of dotted ``key`` in the TOML text, found by its table header and its
        ``key =`` line; None when built in Python or not found."""
        if self._text is None:
            return None
        return line_of(self._text, key)

    # ------------------------------------------------------------------ running
    def run(self, host: str | None = None, *, drain: float | None = None,
            grace: float | None = None, run_id: str | None = None) -> int:
        """Run this host's part (``host``: a name of [hosts]; default the first) until every
        module is done or SIGINT/SIGTERM stops it; see ``shmpipe.run.supervisor.run``.
        Blocks; returns the exit status (0, or 1 if a module was given up). Raises
        ConfigError before anything starts if the pipeline cannot run."""
        from . import supervisor

        return supervisor.run(self, host, drain=supervisor.DRAIN if drain is None else drain,
                              grace=supervisor.STOP_TIMEOUT if grace is None else grace,
                              run_id=run_id)

    # ------------------------------------------------------------------ placement
    def host_of(self, module: str) -> str | None:
        """The host a module runs on: its ``host``, else the first of [hosts] (None for a
        pipeline without hosts)."""
        m = self.modules[module]
        if m.host is not None:
            return m.host
        return next(iter(self.hosts), None)

    def process_of(self, module: str) -> str:
        """The process a module runs in: its ``process``, else its own (named after it)."""
        return self.modules[module].process or self.modules[module].name


# ---------------------------------------------------------------------------- helpers
def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a float"}.get(type(value), type(value).__name__)


def _tomllib() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading TOML on Python 3.10 needs tomli: pip install tomli"
                              ) from None
    return tomllib


def _line_from_message(msg: str) -> int | None:
    m = re.search(r"line (\d+)", msg)
    return int(m.group(1)) if m else None


def line_of(text: str, key: str) -> int | None:
    """Best effort: the 1-based line where dotted ``key`` is defined in TOML ``text``."""
    parts = key.split(".")
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    current: list[str] = []
    best: int | None = None
    for i, line in enumerate(lines, 1):
        h = header.match(line)
        if h:
            current = [p.strip().strip('"').strip("'") for p in h.group(1).split(".")]
            if current == parts:
                return i
            if best is None and parts[:len(current)] == current:
                best = i
            continue
        rest = parts[len(current):] if parts[:len(current)] == current else None
        if not rest:
            continue
        m = re.match(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=", line)
        if not m:
            continue
        dotted = [p.strip().strip('"').strip("'") for p in m.group(1).split(".")]
        if dotted[:len(rest)] == rest:  # `a.b = ...` defines table a (and key a.b)
            return i
        if dotted == rest[:len(dotted)]:  # `a = ...`, `a.b = ...`: the key or its table
            inner = rest[len(dotted):]
            if not inner or re.search(rf"[{{,\s]{re.escape(inner[0])}\s*=", line):
                return i
            best = i
    return best
