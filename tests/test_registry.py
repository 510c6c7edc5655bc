"""Unit tests for aigi.registry: name -> implementation tables."""
from __future__ import annotations

import collections
import sys

import pytest

from aigi.registry import DETECTORS, Registry, RegistryError


def test_decorator_registers_and_returns_the_class_unchanged():
    reg = Registry("widget")

    @reg.register("round")
    class Round:
        pass

    assert Round.__name__ == "Round"  # decorator did not replace the class
    assert reg.get("round") is Round
    assert "round" in reg and "square" not in reg


def test_direct_registration_returns_the_object():
    reg = Registry("widget")

    def build():
        return 1

    assert reg.register("build", build) is build
    assert reg.get("build") is build


def test_lazy_string_resolves_on_get():
    reg = Registry("thing")
    reg.register("od", "collections:OrderedDict")
    assert reg.get("od") is collections.OrderedDict
    assert reg.get("od") is collections.OrderedDict  # cached, same object again


def test_lazy_string_is_not_imported_until_first_get(tmp_path, monkeypatch):
    mod = "aigi_test_lazy_registry_target"
    (tmp_path / f"{mod}.py").write_text("class Target:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, mod, raising=False)

    reg = Registry("thing")
    reg.register("t", f"{mod}:Target")
    assert mod not in sys.modules  # registering did not import
    assert reg.names() == ["t"]  # nor did listing
    target = reg.get("t")
    assert mod in sys.modules
    assert target is sys.modules[mod].Target
    monkeypatch.delitem(sys.modules, mod)


def test_lazy_string_to_missing_module_fails_only_on_get():
    reg = Registry("thing")
    reg.register("ghost", "aigi_no_such_module_for_tests:Nothing")  # must not raise
    with pytest.raises(ModuleNotFoundError):
        reg.get("ghost")


def test_unknown_name_error_lists_known_names():
    reg = Registry("detector")
    reg.register("beta", object())
    reg.register("alpha", "collections:OrderedDict")
    with pytest.raises(RegistryError) as exc:
        reg.get("gamma")
    msg = str(exc.value)
    assert "gamma" in msg and "detector" in msg
    assert "known: alpha, beta" in msg  # sorted list of what exists
    assert isinstance(exc.value, KeyError)
    assert not msg.startswith("'") and not msg.startswith('"')  # plain text, not KeyError's repr


def test_unknown_name_in_empty_registry_says_none():
    with pytest.raises(RegistryError, match=r"known: none"):
        Registry("backbone").get("x")


def test_duplicate_name_with_different_object_raises():
    reg = Registry("detector")

    @reg.register("dup")
    class First:
        pass

    with pytest.raises(RegistryError, match="'dup' is already registered"):

        @reg.register("dup")
        class Second:
            pass

    with pytest.raises(RegistryError):
        reg.register("dup", "collections:OrderedDict")
    assert reg.get("dup") is First  # the original entry survives


def test_re_registering_the_same_object_is_allowed():
    reg = Registry("detector")
    obj = object()
    reg.register("same", obj)
    reg.register("same", obj)
    assert reg.get("same") is obj
    assert reg.names() == ["same"]


def test_re_registering_an_equal_lazy_string_is_allowed():
    reg = Registry("detector")
    reg.register("od", "collections:OrderedDict")
    built = ":".join(["collections", "OrderedDict"])  # equal, but a distinct str object
    reg.register("od", built)
    assert reg.get("od") is collections.OrderedDict


def test_names_sorted_and_iteration_follows_names():
    reg = Registry("widget")
    for name in ["zeta", "alpha", "Mu", "beta"]:
        reg.register(name, object())
    assert reg.names() == ["Mu", "alpha", "beta", "zeta"]
    assert list(reg) == reg.names()


def test_registry_error_str_is_plain_text():
    assert str(RegistryError("unknown thing 'x'")) == "unknown thing 'x'"
    assert str(RegistryError()) == ""


@pytest.mark.parametrize("key", ["univfd", "univfd-knn", "univfd-layers"])
def test_builtin_detectors_resolve_to_classes_named_like_their_key(key):
    assert key in DETECTORS.names()
    cls = DETECTORS.get(key)
    assert isinstance(cls, type)
    assert cls.name == key


def test_builtin_detectors_are_distinct_classes():
    assert DETECTORS.get("univfd") is not DETECTORS.get("univfd-knn")
