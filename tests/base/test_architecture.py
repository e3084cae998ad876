"""The structure of docs/architecture.md: no import circles between xlpeft's modules (the layers themselves
are import-linter's contract in pyproject.toml, run by .ci/run), and the README's layout table names every
package."""

from __future__ import annotations

from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]


def _cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One import circle among the modules of ``graph`` (imports inside functions included), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == 1:
                return path[path.index(imported):] + [imported]
            if imported not in state and (found := visit(imported)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph.modules):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("xlpeft", cache_dir=None)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_planted_circle():
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycle(graph) == ["p.a", "p.b", "p.c", "p.a"]


def test_the_readme_layout_names_every_package_and_top_level_module():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    names = [p.name + "/" for p in (REPO / "xlpeft").iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    names += [p.name for p in (REPO / "xlpeft").glob("*.py") if p.name != "__init__.py"]
    assert [n for n in names if f"xlpeft/{n}" not in layout] == []
