"""Every ``python benchmarks/…`` command the README quotes for a figure parses as written with
that script's own argument parser (a renamed or removed flag fails here, not for a reader)."""
import importlib.util
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_benchmark_commands() -> list[list[str]]:
    """The README's inline code spans that run a benchmark script, split into arguments."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    return [shlex.split(" ".join(m.group(1).split())) for m in re.finditer(r"`(python benchmarks/[^`]+)`", readme)]


def _parser_of(script: str):
    spec = importlib.util.spec_from_file_location(f"readme_bench_{os.path.basename(script)[:-3]}",
                                                  os.path.join(ROOT, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_args_parser()


def test_the_readme_quotes_benchmark_commands_of_every_technique():
    scripts = {c[1] for c in readme_benchmark_commands()}
    assert {"benchmarks/unlearnable_effect.py", "benchmarks/synth_utility.py", "benchmarks/dpvae_utility.py",
            "benchmarks/mtk_tradeoff.py"} <= scripts, scripts


@pytest.mark.parametrize("command", readme_benchmark_commands(), ids=lambda c: " ".join(c[1:])[:80])
def test_a_readme_benchmark_command_parses_as_written(command):
    assert command[0] == "python" and os.path.exists(os.path.join(ROOT, command[1])), command
    _parser_of(command[1]).parse_args(command[2:])        # argparse exits (fails the test) on a bad flag
