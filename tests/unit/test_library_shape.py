"""The library's shape: no import circle, no module over 400 lines, every
staging path spelled once (in rag_ingest.run), DAG files that only wire."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import PROJECT_ROOT

LIBRARY = PROJECT_ROOT / "plugins" / "rag_ingest"
MAX_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIBRARY.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """Module -> the library modules it imports, wherever the import stands
    (top level, inside a function, under TYPE_CHECKING): a lazy import is an
    edge too, since it runs the other module's top level when it is reached."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package upwards
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from package import module` imports that module.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_sees_lazy_and_package_imports() -> None:
    graph = import_graph()
    # Lazy (inside a function) and `from package import module` imports are edges.
    assert "rag_ingest.pipeline.extract" in graph["rag_ingest.airflow_glue"]
    assert "rag_ingest.quality.facts" in graph["rag_ingest.quality.gates"]
    assert "rag_ingest.config" in graph["rag_ingest.run"]


def test_the_library_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {long}"


# Names of staging files and folders: only rag_ingest.run may spell them.
_STAGING_NAMES = re.compile(
    r"""["'][^"']*\b(plan/|to_chunk\.parquet|vanished\.parquet|stale_chunks|kept\.parquet|"""
    r"""needs_vector|reused\.parquet|duplicates\.parquet|to_embed|inventory\.parquet)"""
)


def test_every_staging_path_is_spelled_only_in_the_run_layout() -> None:
    offenders = []
    for name, path in _modules().items():
        if name == "rag_ingest.run":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _STAGING_NAMES.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}")
    assert not offenders, "staging paths spelled outside rag_ingest.run:\n" + "\n".join(offenders)


def test_dag_files_only_wire() -> None:
    """A DAG file imports the package and hands Airflow what it builds: no logic."""
    for path in (PROJECT_ROOT / "dags").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            assert isinstance(node, ast.Import | ast.ImportFrom | ast.Expr | ast.Assign), (
                f"{path.name}:{node.lineno}: {type(node).__name__} in a DAG file; "
                "put logic in rag_ingest (dag_factory or airflow_glue)"
            )
            if isinstance(node, ast.ImportFrom):
                assert node.module == "__future__" or str(node.module).startswith("rag_ingest"), (
                    f"{path.name} imports {node.module}: DAG files call only the package"
                )
