"""No module of spotart takes part in an import cycle, counting every import a reader sees.

Python only notices a cycle when both of its imports run at import time; one written inside a function hides it
from Python (and from a test that merely imports everything), not from someone reading the code. So the sources
are parsed with ``ast``, as ``test_training_code_does_not_import_evaluation`` (tests/evaluation/test_knn.py) does,
and every ``import`` / ``from ... import`` anywhere in a module counts: at the top, inside functions, under
``if TYPE_CHECKING``.

An import is an edge from the importing module to:

- the module it names, relative imports resolved against the importing module's package;
- for ``from spotart.pkg import name``: ``spotart.pkg.name`` when that is a module (a submodule is imported), else
  ``spotart.pkg`` (a name that the package's ``__init__`` defines or re-exports);
- the ``__init__`` of every package above that module, since importing ``spotart.data.sources`` executes
  ``spotart/data/__init__.py`` first, except the packages that hold the importing module itself: those were
  executed before it, so a package's ``__init__`` re-exporting from its submodules, and a submodule importing a
  sibling directly (``from .sources import open_source``), is not a cycle. A submodule that imports a sibling's
  name through its own package (``from spotart.data import X`` inside ``spotart/data/``) names the ``__init__``
  explicitly, and that edge counts: inside a package, import siblings directly.

The graph must have no strongly connected component of more than one module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import spotart

SPOTART = Path(spotart.__file__).parent


def module_files(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Every module below ``root`` (the folder of the top package ``package``): name -> (file, is a package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join((package, *(parts[:-1] if is_package else parts)))
        modules[name] = (path, is_package)
    return modules


def imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
                     ) -> list[str]:
    """The modules of ``known`` that one import statement names (before adding the packages above them)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    names = [f"{target}.{alias.name}" for alias in node.names]
    submodules = [name for name in names if name in known]
    return submodules + ([target] if len(submodules) < len(names) else [])


def import_graph(root: Path, package: str) -> dict[str, dict[str, str]]:
    """module -> {imported module: where (``file:line``) the first such import is}."""
    modules = module_files(root, package)
    known = set(modules)
    graph: dict[str, dict[str, str]] = {}
    for module, (path, is_package) in modules.items():
        own_packages = {module.rsplit(".", depth)[0] for depth in range(module.count(".") + 1)}
        if not is_package:
            own_packages.discard(module)
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in imported_modules(node, module, is_package, known):
                while target and target not in known:  # ``import spotart.x.y`` of a name, or not spotart at all
                    target = target.rpartition(".")[0]
                if not target:
                    continue
                executed = [target] + [target.rsplit(".", depth)[0] for depth in range(1, target.count(".") + 1)]
                for imported in executed:
                    if imported == module or (imported != target and imported in own_packages):
                        continue
                    edges.setdefault(imported, f"{path.relative_to(root.parent)}:{node.lineno}")
    return graph


def strongly_connected(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def one_cycle(graph: dict[str, dict[str, str]], component: list[str]) -> str:
    """A shortest cycle through the component's first module, each edge with the line that makes it."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier and start not in previous:
        following = []
        for node in frontier:
            for succ in sorted(graph[node]):
                if succ in members and succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    path = [start]
    while len(path) == 1 or path[-1] != start:
        path.append(previous[path[-1]])
    path.reverse()
    return "\n    ".join(f"{a} -> {b}  ({graph[a][b]})" for a, b in zip(path, path[1:]))


def cycle_report(graph: dict[str, dict[str, str]]) -> str:
    components = strongly_connected(graph)
    return "\n".join(f"import cycle among {', '.join(c)}:\n    {one_cycle(graph, c)}" for c in components)


def test_no_module_of_spotart_takes_part_in_an_import_cycle():
    graph = import_graph(SPOTART, "spotart")
    report = cycle_report(graph)
    assert not report, "\n" + report
    assert len(graph) > 50 and "spotart.data.sources" in graph["spotart.data.loader"]  # it parsed the real tree


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_cycle_through_a_function_level_import_is_reported(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "",
        "low.py": "def f():\n    from .high import g\n    return g\n",
        "high.py": "from pkg.low import f\n",
    })
    report = cycle_report(import_graph(root, "pkg"))
    assert "import cycle among pkg.high, pkg.low" in report
    assert "pkg.low -> pkg.high  (pkg/low.py:2)" in report and "pkg.high -> pkg.low  (pkg/high.py:1)" in report


def test_package_inits_count_as_the_rule_in_the_docstring_says(tmp_path):
    clean = {
        "__init__.py": "",
        "data/__init__.py": "from .loader import load\nfrom .sources import Source\n",
        "data/sources.py": "class Source: ...\n",
        "data/loader.py": "from .sources import Source\nfrom pkg.data import sources\n",
        "user.py": "from pkg.data.sources import Source\n",
    }
    graph = import_graph(write_package(tmp_path / "clean", clean), "pkg")
    assert graph["pkg.user"].keys() == {"pkg.data.sources", "pkg.data"}  # importing a submodule runs its package
    assert graph["pkg.data.loader"].keys() == {"pkg.data.sources"}  # its own package ran before it
    assert cycle_report(graph) == ""
    through_init = {**clean, "data/loader.py": "from pkg.data import Source\n"}  # a sibling's name via __init__
    report = cycle_report(import_graph(write_package(tmp_path / "cycle", through_init), "pkg"))
    assert "import cycle among pkg.data, pkg.data.loader" in report
