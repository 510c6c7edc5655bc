"""Print aigi's import graph between packages, and any import cycle.

    python scripts/import_graph.py [SRC_DIR]       # default: src/ next to this script

Every ``import`` counts, module-level or inside a function (a lazy import still
couples two packages). A package is the first name under ``aigi`` (``detectors``,
``training``, ``methods``…; top-level modules such as ``api`` count as their own).
Registry entries (``"aigi.methods.ltd.model:LTDDetector"``) are strings, not imports.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def module_imports(src: Path, package: str = "aigi") -> dict[str, set[str]]:
    """Module → the aigi modules it imports (resolved, relative imports included)."""
    graph: dict[str, set[str]] = {}
    root = src / package
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_init else parts)
        here = parts[:-1] if is_init else parts[:-1]  # the package a relative import starts from
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == package}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != package:
                    continue
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}  # `from . import api` imports a module
        graph[name] = found
    return {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for m, targets in modules.items():
        out[package_of(m)] |= {package_of(t) for t in targets if package_of(t) != package_of(m)}
        out.setdefault(package_of(m), set())
    return dict(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    modules = module_imports(src)
    packages = package_graph(modules)
    for pkg in sorted(packages):
        print(f"{pkg:<10} -> {', '.join(sorted(packages[pkg])) or '-'}")
    found = {"package": cycles(packages), "module": cycles(modules)}
    for kind, comps in found.items():
        for comp in comps:
            print(f"{kind} cycle: {' <-> '.join(comp)}")
    if not any(found.values()):
        print("no import cycles")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
