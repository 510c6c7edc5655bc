"""The package layout the README promises: no import cycles, and the contract
packages never reach into the layers above them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def graphs():
    tool = _graph_tool()
    modules = tool.module_imports(ROOT / "src")
    return tool, modules, tool.package_graph(modules)


def test_no_import_cycles(graphs):
    tool, modules, packages = graphs
    assert tool.cycles(packages) == []
    assert tool.cycles(modules) == []


# package → packages it must never import (lazily or not)
FORBIDDEN = {
    "detectors": {"training", "eval", "methods", "api", "cli"},
    "eval": {"training", "methods", "api", "cli"},
    "training": {"methods", "api", "cli"},
    "features": {"detectors", "training", "eval", "methods", "api", "cli"},
    "methods": {"api", "cli"},
    "data": {"detectors", "training", "eval", "methods", "api", "cli", "features", "config"},
    "backbones": {"detectors", "training", "eval", "methods", "api", "cli", "features", "config"},
}


def test_layers_point_one_way(graphs):
    _, _, packages = graphs
    bad = {pkg: sorted(packages.get(pkg, set()) & banned) for pkg, banned in FORBIDDEN.items()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_cli_reaches_aigi_only_through_the_api(graphs):
    _, modules, _ = graphs
    allowed = {"aigi", "aigi.api", "aigi.errors",
               "aigi.eval.runner", "aigi.eval.robustness", "aigi.data.check"}  # the last three: table formatting
    assert modules["aigi.cli"] - allowed == set()


def test_each_method_lives_in_its_own_folder():
    methods = ROOT / "src" / "aigi" / "methods"
    for name in ("ltd", "mole", "dgs", "featdistill"):
        assert (methods / name / "model.py").is_file()
    assert (methods / "univfd.py").is_file()
    from aigi.registry import DETECTORS, TRAINERS

    for name in DETECTORS.names():
        cls = DETECTORS.get(name)
        assert cls.__module__.startswith(("aigi.methods.", "aigi.detectors.ensemble", "tests.", "test_"))
        if name != "ensemble":
            TRAINERS.get(cls.trainer)  # every detector's trainer resolves
