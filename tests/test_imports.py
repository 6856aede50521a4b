"""No import circle in pipeline/: neither between modules nor between its subpackages (vocab,
core, data, generation, evaluation, pretraining, study, search, dag), so each layer reads without
the ones above it. Every import statement counts, those inside functions too (they only hide a circle)."""

from __future__ import annotations

import ast

from support.snakemake import REPO

PACKAGE = REPO / "pipeline"


def _module(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the pipeline modules it imports}, from the source (nothing is imported)."""
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, `level - 1` levels up
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}  # a name or a module
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def _layer(module: str) -> str:
    """pipeline.pretraining.loop -> pipeline.pretraining; a stage (pipeline.sample) is its own layer."""
    return ".".join(module.split(".")[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def layer_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    layers: dict[str, set[str]] = {}
    for a, targets in graph.items():
        layers.setdefault(_layer(a), set()).update(_layer(b) for b in targets
                                                   if _layer(b) != _layer(a))
    return layers


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "pipeline.core.io" in graph["pipeline.data.dataset"]  # from pipeline.core import io
    assert "pipeline.pretraining.online_probe" in graph["pipeline.pretraining.loop"]  # inside a function
    assert "pipeline.core.tensors" in graph["pipeline.evaluation.linear"]  # from M import name


def test_no_module_imports_itself_in_a_circle():
    assert find_cycle(import_graph()) is None, find_cycle(import_graph())


def test_no_subpackage_imports_itself_in_a_circle():
    layers = layer_graph(import_graph())
    assert find_cycle(layers) is None, find_cycle(layers)
