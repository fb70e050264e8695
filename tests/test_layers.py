"""The package's shape: no import cycles, no upward imports, no ``sys.path`` tricks.

Imports are read from the source with ``ast`` (module-level and function-level alike; ``if TYPE_CHECKING:``
blocks are annotations, not imports, and are left out), so a lazy import inside a function counts as much as
one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "library" / "interestrec"

# Lower number = lower layer; a module may import only modules of its own layer or below. The longest
# matching prefix decides; a package's ``stage`` module (its orchestration wrapper) sits with the orchestration.
LAYERS: dict[str, int] = {
    "interestrec": 0,  # the root package itself
    "interestrec.errors": 0,
    "interestrec.ids": 0,
    "interestrec.artifacts": 0,
    "interestrec.layout": 0,  # every artifact path, named once (imports nothing from the package)
    "interestrec.tracking": 1,  # MLflow experiment tracking (its config and the logging calls)
    "interestrec.data": 1,
    "interestrec.encode": 2,
    "interestrec.adapt": 3,
    "interestrec.cluster": 3,
    "interestrec.dynamics": 3,
    # the evaluation's interface and protocol (what a model fits on and how it is ranked), used by training
    "interestrec.evaluate.base": 4,
    "interestrec.evaluate.config": 4,
    "interestrec.evaluate.data": 4,
    "interestrec.evaluate.metrics": 4,
    "interestrec.evaluate.protocol": 4,
    "interestrec.graph": 5,
    "interestrec.recommend": 6,
    "interestrec.evaluate": 7,  # the table's rows, the judge, the cold-start protocols
    "interestrec.serving": 8,
    "interestrec.report": 8,
    "interestrec.publish": 8,
    "interestrec.serving_check": 8,
    "interestrec.config": 8,
    "interestrec.stages": 8,
    "interestrec.runner": 9,  # the command line: runs the stages, renders, serves
    "interestrec.cli": 9,
    "interestrec.api": 9,  # the Python entry points: run stages, load the published recommender
}
ORCHESTRATION = 8


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str) -> dict[str, int]:
    """Modules of the package that ``name`` imports → first line number."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            m = _resolve(t) if t.startswith("interestrec") else None
            if m and m != name:
                out.setdefault(m, node.lineno)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name: str) -> int:
    if name.split(".")[-1] == "stage":
        return ORCHESTRATION
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[best]


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
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

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_the_import_reader_sees_function_level_and_relative_imports(tmp_path):
    assert "interestrec.artifacts" in GRAPH["interestrec.ids"]  # imported inside IdMap.from_parquet
    assert "interestrec.recommend.fused" not in GRAPH["interestrec.recommend.topk"]  # TYPE_CHECKING only
    assert len(MODULES) > 80 and all(GRAPH[m] for m in ("interestrec.stages", "interestrec.evaluate.stage"))


def test_no_import_cycles():
    assert cycles() == []


def test_no_upward_imports():
    upward = [f"{m} (layer {layer(m)}) imports {dep} (layer {layer(dep)}) at line {line}"
              for m, deps in sorted(GRAPH.items()) for dep, line in sorted(deps.items()) if layer(dep) > layer(m)]
    assert upward == []


@pytest.mark.parametrize(("low", "high"), [("interestrec.recommend", "interestrec.evaluate.models"),
                                           ("interestrec.adapt", "interestrec.evaluate"),
                                           ("interestrec.data", "interestrec.stages"),
                                           ("interestrec.graph", "interestrec.evaluate.models")])
def test_named_boundaries(low, high):
    offenders = [(m, d) for m, deps in GRAPH.items() if (m == low or m.startswith(low + "."))
                 and layer(m) < ORCHESTRATION for d in deps if d == high or d.startswith(high + ".")]
    assert offenders == []


MAX_LINES = 300  # one job per module: a longer one is split along a seam


def test_every_module_is_at_most_300_lines():
    repo = PKG.parents[1]
    files = [p for d in ("library", "jobs", "serving") for p in sorted((repo / d).rglob("*.py"))]
    long = [f"{p.relative_to(repo)}: {n} lines" for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert len(files) > 100 and long == []


def test_the_library_never_edits_sys_path():
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and ast.unparse(node.value) == "sys":
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_every_exception_class_derives_from_interestrec_error():
    import importlib
    import inspect

    from interestrec.errors import InterestrecError

    plain = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        if not classes:
            continue
        mod = importlib.import_module(name)
        for cls_name in classes:
            cls = getattr(mod, cls_name)
            if (inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name
                    and not issubclass(cls, InterestrecError) and not cls_name.startswith("_")):
                plain.append(f"{name}.{cls_name}")
    assert sorted(plain) == []  # serving.http.BodyTooLarge is an HTTPException and an InterestrecError


# ----------------------------------------------------------------------------------------------- the tests' own shape
TESTS = Path(__file__).resolve().parent
TEST_MODULES = {p.stem for p in TESTS.glob("test_*.py")}


def imports_of_test_modules(path: Path) -> list[tuple[str, int]]:
    """(test module, line) for every import of a ``tests/test_*.py`` module in ``path`` (any nesting level)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        out += [(n, node.lineno) for n in names if n.split(".")[0] in TEST_MODULES or n.split(".")[0].startswith("test_")]
    return out


def test_the_test_import_scan_sees_top_and_function_level_imports(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("import os\nfrom fixtures.artifacts import make_artifacts\nfrom test_recommend import TOPICS\n\n"
                     "def test_x():\n    import test_graph\n    from test_adapt import _cfg\n")
    assert imports_of_test_modules(probe) == [("test_recommend", 3), ("test_graph", 6), ("test_adapt", 7)]
    assert len(TEST_MODULES) > 50 and "test_recommend" in TEST_MODULES


def test_no_test_module_imports_another():
    """Shared helpers and fixtures live in ``tests/fixtures/``; a test module never imports another test module
    (nor does the conftest or a fixtures module)."""
    scanned = [*sorted(TESTS.glob("test_*.py")), TESTS / "conftest.py", *sorted((TESTS / "fixtures").glob("*.py"))]
    offenders = [f"{p.relative_to(TESTS)}:{line} imports {name}" for p in scanned for name, line in imports_of_test_modules(p)]
    assert offenders == [], "move the shared code to tests/fixtures/"


def test_shared_test_helpers_live_in_fixtures():
    """Next to the test modules only ``conftest.py``; the tests' one ``free_port`` is ``fixtures.ports``'."""
    assert sorted(p.name for p in TESTS.glob("*.py") if not p.name.startswith("test_")) == ["conftest.py"]
    assert (TESTS / "fixtures" / "__init__.py").exists()
    defs = [str(p.relative_to(TESTS)) for p in sorted(TESTS.rglob("*.py")) for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "free_port"]
    assert defs == ["fixtures/ports.py"]
