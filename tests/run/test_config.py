"""Pipeline files and their checks: every bad config is refused before anything starts,
naming the file, the key and the line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import shmpipe
from shmpipe.run import ConfigError, Pipeline

GOOD = """\
[streams]
raw = "float32_2"
filtered = "float32_2"

[modules.source]
code = "runmods:counter"
outputs = { output = "raw" }
args = { n = 100 }

[modules.filter]
code = "runmods:passthrough"
inputs = { input = "raw" }
outputs = { output = "filtered" }

[modules.sink]
code = "runmods:collect"
inputs = { input = "filtered" }
args = { path = "/nonexistent" }
"""


def refused(toml: Callable[[str], str], text: str, host: str | None = None) -> ConfigError:
    path = toml(text)
    with pytest.raises(ConfigError) as info:
        Pipeline.load(path).check(host)
    assert str(info.value).startswith(path), info.value
    return info.value


def test_a_good_file_passes_and_names_its_codes(toml: Callable[[str], str]) -> None:
    codes = Pipeline.load(toml(GOOD)).check()
    assert {n: c.kind for n, c in codes.items()} == {
        "source": "function", "filter": "function", "sink": "function"}


@pytest.mark.parametrize(("old", "new", "key", "line", "reason"), [
    ('code = "runmods:passthrough"', 'code = "runmods:nothing"', "modules.filter.code", 11,
     "runmods has no attribute 'nothing'"),
    ('code = "runmods:passthrough"', 'code = "no_such_package.mod:f"', "modules.filter.code",
     11, "cannot import no_such_package.mod: ModuleNotFoundError: No module named"),
    ('code = "runmods:passthrough"', 'code = "runmods"', "modules.filter.code", 11,
     'expected "package.module:attribute"'),
    ('code = "runmods:passthrough"', 'code = "runmods:rows"', "modules.filter.code", 11,
     "is not an async function nor a module class"),
    ('inputs = { input = "raw" }', 'inputs = { input = "rawx" }', "modules.filter.inputs.input",
     12, "unknown stream 'rawx'"),
    ('args = { n = 100 }', 'args = { n = 100 }\nprocces = "x"', "modules.source.procces", 9,
     "unknown key"),
    ('[streams]', '[stream]', "stream", 1, "unknown key"),
    ('outputs = { output = "filtered" }', 'outputs = { output = "raw" }', "streams.raw", 2,
     "two producers: modules source and filter"),
    ('filtered = "float32_2"', 'filtered = "float32_2"\nghost = "float32_2"', "streams.ghost", 4,
     "no module writes this stream"),
    ('inputs = { input = "filtered" }', 'inputs = { input = "raw" }', "streams.filtered", 3,
     "no module reads it"),
    ('inputs = { input = "raw" }', 'inputs = { inp = "raw" }', "modules.filter.inputs.inp", 12,
     "the module's code does not use input 'inp' (it uses: input)"),
    ('raw = "float32_2"', 'raw = "float32_two"', "streams.raw", 2, "bad layout 'float32_two'"),
    ('args = { n = 100 }', 'args = { n = 100 }\nrestart = "sometimes"', "modules.source.restart",
     9, "expected one of never, on-failure, always"),
    ('args = { n = 100 }', 'args = { n = 100 }\nhost = "b"', "modules.source.host", 9,
     "unknown host 'b'"),
    ('args = { n = 100 }', 'args = { n = 100 }\nexec = "x"', "modules.source", 5,
     "give exactly one of code and exec"),
    ('[modules.sink]', '[modules."bad name"]', "modules.bad name", 15, "bad module name"),
])
def test_each_bad_config_is_refused_naming_file_key_and_line(
        toml: Callable[[str], str], old: str, new: str, key: str, line: int | None,
        reason: str) -> None:
    assert old in GOOD
    e = refused(toml, GOOD.replace(old, new, 1))
    assert e.key == key
    assert e.line == line
    assert reason in e.reason, e.reason


def test_args_the_code_cannot_take_are_refused(toml: Callable[[str], str]) -> None:
    e = refused(toml, GOOD.replace("args = { n = 100 }", "args = { n = 100, rate = 5 }"))
    assert e.key == "modules.source.args" and e.line == 8
    assert "got an unexpected keyword argument 'rate'" in e.reason
    e = refused(toml, GOOD.replace('code = "runmods:passthrough"', 'code = "runmods:Doubler"')
                .replace('outputs = { output = "filtered" }',
                         'outputs = { output = "filtered" }\nargs = { factor = "x" }'))
    assert e.key == "modules.filter.args"
    assert "argument --factor: invalid float value: 'x'" in e.reason, e.reason


def test_a_cycle_is_refused(toml: Callable[[str], str]) -> None:
    text = GOOD.replace('inputs = { input = "raw" }', 'inputs = { input = "loop" }').replace(
        '[streams]', '[streams]\nloop = "float32_2"') + """
[modules.back]
code = "runmods:passthrough"
inputs = { input = "raw" }
outputs = { output = "loop" }
"""
    text = text.replace('args = { n = 100 }', '')
    text = text.replace('code = "runmods:counter"\noutputs = { output = "raw" }',
                        'code = "runmods:passthrough"\ninputs = { input = "filtered" }\n'
                        'outputs = { output = "raw" }')
    text = text.replace('[modules.sink]\ncode = "runmods:collect"\ninputs = { input = "filtered" }',
                        '[modules.sink]\ncode = "runmods:collect"\ninputs = { input = "loop" }')
    e = refused(toml, text)
    assert "a cycle:" in e.reason and "->" in e.reason, e.reason


def test_invalid_toml_gives_the_line(toml: Callable[[str], str]) -> None:
    path = toml(GOOD.replace('raw = "float32_2"', 'raw = float32_2'))
    with pytest.raises(ConfigError) as info:
        Pipeline.load(path)
    assert info.value.line == 2 and "not valid TOML" in str(info.value)


def test_a_missing_file_is_refused_with_why(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: No such file"):
        Pipeline.load(f"{tmp_path}/nope.toml")


def test_hosts_are_checked(toml: Callable[[str], str]) -> None:
    hosts = '[hosts]\na = "tcp://127.0.0.1:5601"\nb = "udp://x"\n'
    e = refused(toml, hosts + GOOD)
    assert e.key == "hosts.b" and e.line == 3 and "expected tcp://ADDRESS:PORT" in e.reason
    e = refused(toml, '[hosts]\na = "tcp://127.0.0.1:5601"\n' + GOOD, host="c")
    assert "unknown host 'c'" in e.reason
    e = refused(toml, GOOD, host="a")
    assert "no [hosts]" in e.reason


def test_a_module_pipe_the_code_uses_but_is_not_given(toml: Callable[[str], str]) -> None:
    e = refused(toml, GOOD.replace('outputs = { output = "filtered" }',
                                   'outputs = { out = "filtered" }'))
    assert e.key == "modules.filter.outputs.out"
    assert "does not use output 'out' (it uses: output)" in e.reason


def test_a_reader_class_must_have_one_output_and_no_input(toml: Callable[[str], str]) -> None:
    e = refused(toml, GOOD.replace('code = "runmods:passthrough"', 'code = "runmods:Ticker"'))
    assert e.key == "modules.filter" and "one output and no inputs" in e.reason


def test_python_pipelines_take_functions_and_refuse_unimportable_ones() -> None:
    import runmods

    p = shmpipe.Pipeline().stream("raw", "float32_2")
    p.module("source", runmods.counter, outputs={"output": "raw"})
    p.module("sink", runmods.Doubler, inputs={"input": "raw"}, outputs={})
    with pytest.raises(ConfigError, match=r"modules\.sink\.outputs: the module's code uses"):
        p.check()

    async def local(inputs: dict, outputs: dict) -> None:
        pass

    with pytest.raises(shmpipe.run.ModuleError, match="cannot be imported by another process"):
        p.module("x", local)


def test_a_one_host_pipeline_is_checked_without_importing_zmq(toml: Callable[[str], str]) -> None:
    import subprocess
    import sys

    from runtools import HERE

    path = toml(GOOD)
    code = ("import sys, shmpipe; shmpipe.Pipeline.load(sys.argv[1]).check(); "
            "assert 'zmq' not in sys.modules, 'zmq imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                         cwd=HERE, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize(("value", "kind"), [("5", "an integer"), ("{ prog = 1 }", "a table"),
                                             ('["prog", 1]', "an array")])
def test_exec_must_be_a_command_line_or_words(toml: Callable[[str], str], value: str,
                                              kind: str) -> None:
    text = GOOD.replace('code = "runmods:passthrough"', f"exec = {value}")
    e = refused(toml, text)
    assert e.key == "modules.filter.exec" and e.line == 11
    assert e.reason == f"expected a command line or an array of strings, got {kind}"


TWO_HOSTS = """\
[hosts]
a = "tcp://127.0.0.1:PORT_A"
b = "tcp://127.0.0.1:PORT_B"
""" + GOOD.replace('outputs = { output = "filtered" }',
                   'outputs = { output = "filtered" }\nhost = "b"')


def two_hosts(a: int, b: int) -> str:
    return TWO_HOSTS.replace("PORT_A", str(a)).replace("PORT_B", str(b))


def test_hosts_whose_stream_ports_meet_are_refused(toml: Callable[[str], str]) -> None:
    pytest.importorskip("zmq", reason="pipelines with [hosts] need pyzmq: pip install -e '.[net]'")
    # b receives raw (stream 0) at 5601; a receives filtered (stream 1) at 5600 + 1
    e = refused(toml, two_hosts(5600, 5601))
    assert e.key == "hosts.a" and e.line == 2
    assert "would receive stream 'filtered' on tcp://127.0.0.1:5601, where host b's stream " \
           "'raw' already is" in e.reason
    Pipeline.load(toml(two_hosts(5600, 5700))).check()  # apart: fine
    e = refused(toml, two_hosts(65535, 5700))
    assert "on port 65536 (its port + 1): past 65535" in e.reason


def test_more_readers_than_a_pipe_has_slots_are_refused(toml: Callable[[str], str]) -> None:
    sinks = "".join(f"""
[modules.sink{k}]
code = "runmods:collect"
inputs = {{ input = "filtered" }}
args = {{ path = "/nonexistent" }}
""" for k in range(64))
    e = refused(toml, GOOD + sinks)
    assert e.key == "streams.filtered" and e.reason == (
        "65 readers on one host: a pipe has at most 64")


def test_dotted_keys_get_their_line() -> None:
    from shmpipe.run.config import line_of

    text = ('modules.s.code = "x:y"\nmodules.s.restart = "sometimes"\n[streams]\n'
            '[modules.t]\ncode = "x:y"\noutputs.output = "nope"\ninputs = { a = "raw" }\n')
    assert line_of(text, "modules.s.restart") == 2
    assert line_of(text, "modules.t.outputs.output") == 6
    assert line_of(text, "modules.t.outputs") == 6
    assert line_of(text, "modules.t.inputs.a") == 7
    assert line_of(text, "modules.t.code") == 5
    assert line_of(text, "modules.t") == 4
