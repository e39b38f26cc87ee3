"""The house's rules as tests: techniques are siblings on one core.

* a technique package never imports another technique package;
* the core imports no technique, and nothing but an edge imports an edge (the CLI modules,
  the job-spec layer, the demo);
* there is no import circle among raypriv's modules (imports inside functions count too);
* ``raypriv --help`` imports neither torch nor Ray (nor numpy).
"""
import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "raypriv")
TECHNIQUES = {"unlearnable", "synth", "dpvae", "evaluate", "mtk"}
EDGES = {"raypriv.cli", "raypriv.demo"}


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _is_module(name: str) -> bool:
    path = os.path.join(os.path.dirname(ROOT), *name.split("."))
    return os.path.exists(path + ".py") or os.path.isdir(path)


def import_graph() -> dict[str, set[str]]:
    """``{module: raypriv modules it imports}``, from every import statement in the file."""
    graph: dict[str, set[str]] = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            deps = graph.setdefault(_module_name(path), set())
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("raypriv"):
                    for alias in node.names:
                        sub = f"{node.module}.{alias.name}"
                        deps.add(sub if _is_module(sub) else node.module)
                elif isinstance(node, ast.Import):
                    deps.update(a.name for a in node.names if a.name.startswith("raypriv"))
    return graph


def _technique(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in TECHNIQUES else None


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "raypriv.runtime.pool" in graph["raypriv.unlearnable.generator"]     # imported inside a function
    assert len(graph) > 60


def test_no_technique_imports_another():
    bad = [(m, d) for m, deps in import_graph().items() for d in deps
           if _technique(m) and _technique(d) and _technique(m) != _technique(d)]
    assert not bad, bad


def test_the_core_imports_no_technique_and_nothing_imports_an_edge():
    graph = import_graph()
    core_to_technique = [(m, d) for m, deps in graph.items() for d in deps
                         if m not in EDGES and not _technique(m) and _technique(d)]
    into_edges = [(m, d) for m, deps in graph.items() for d in deps if d in EDGES and m not in EDGES]
    assert not core_to_technique, core_to_technique
    assert not into_edges, into_edges


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (the import circles)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_strongly_connected_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_there_is_no_import_circle():
    graph = {m: {d for d in deps if d != m} for m, deps in import_graph().items()}
    assert strongly_connected(graph) == []


@pytest.mark.parametrize("argv", [["--help"], ["dpvae", "train", "--help"], ["synth", "--help"]])
def test_help_imports_neither_torch_nor_ray(argv):
    code = ("import sys\nfrom raypriv.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'ray', 'numpy') if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
    assert "usage: raypriv" in out.stdout


@pytest.mark.parametrize("package", sorted(TECHNIQUES | {"classifier"}))
def test_no_public_name_is_shadowed_by_a_submodule(package):
    """A lazily exported ``protect`` beside a module ``protect.py`` would turn into the module
    as soon as the module is imported (the import system sets the package attribute)."""
    import importlib

    pkg = importlib.import_module(f"raypriv.{package}")
    clashes = [name for name in pkg.__all__ if _is_module(f"raypriv.{package}.{name}")]
    assert not clashes, clashes
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None


def test_help_names_the_defaults_the_config_has():
    import dataclasses

    from raypriv.dpvae.config import DPVAEConfig

    out = subprocess.run([sys.executable, "-m", "raypriv.cli", "dpvae", "train", "--help"], capture_output=True,
                         text=True, timeout=120).stdout
    text = " ".join(out.split())
    defaults = {f.name: f.default for f in dataclasses.fields(DPVAEConfig)}
    assert f"default {defaults['model']!r}" in text and f"default {defaults['method']!r}" in text
    assert f"(default {defaults['epsilon']:g})" in text and f"(default {defaults['delta']:g})" in text
