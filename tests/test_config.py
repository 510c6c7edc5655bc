"""Unit tests for aigi.config: YAML recipes and ``a.b=value`` overrides."""
from __future__ import annotations

import copy

import pytest

from aigi.config import ConfigError, apply_overrides, load_yaml, resolve

# --------------------------------------------------------------------------- apply_overrides


def test_dotted_override_creates_nested_keys():
    out = apply_overrides({}, ["train.optim.lr=0.5", "output=runs/x"])
    assert out == {"train": {"optim": {"lr": 0.5}}, "output": "runs/x"}


def test_override_replaces_leaf_and_keeps_siblings():
    cfg = {"train": {"epochs": 50, "lr": 0.001}, "seed": 0}
    out = apply_overrides(cfg, ["train.epochs=3"])
    assert out == {"train": {"epochs": 3, "lr": 0.001}, "seed": 0}


def test_later_override_wins():
    assert apply_overrides({}, ["a.b=1", "a.b=2"]) == {"a": {"b": 2}}


@pytest.mark.parametrize(
    "raw, expected, typ",
    [
        ("5", 5, int),
        ("-3", -3, int),
        ("0.25", 0.25, float),
        ("1.0e-4", 1e-4, float),
        ("null", None, type(None)),
        ("true", True, bool),
        ("false", False, bool),
        ("hello", "hello", str),
        ("runs/exp-1", "runs/exp-1", str),
        ("'5'", "5", str),  # quoted stays a string
        ("[1, 2]", [1, 2], list),
    ],
)
def test_override_values_are_typed_as_yaml(raw, expected, typ):
    value = apply_overrides({}, [f"x.y={raw}"])["x"]["y"]
    assert type(value) is typ
    assert value == expected


def test_override_scientific_notation_without_dot_is_float():
    value = apply_overrides({}, ["train.lr=1e-4"])["train"]["lr"]
    assert isinstance(value, float)
    assert value == pytest.approx(1e-4)


def test_override_value_may_contain_equals_sign():
    assert apply_overrides({}, ["note=a=b"]) == {"note": "a=b"}


def test_empty_override_value_is_none():
    assert apply_overrides({"data": {"limit": 10}}, ["data.limit="]) == {"data": {"limit": None}}


def test_unparsable_yaml_value_is_kept_as_raw_string():
    assert apply_overrides({}, ["x=[1, 2"]) == {"x": "[1, 2"}


@pytest.mark.parametrize("bad", ["foo", "", "=5", "  =5"])
def test_malformed_override_raises(bad):
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, [bad])


def test_override_through_non_dict_raises():
    cfg = {"train": {"lr": 0.1}, "name": "x"}
    with pytest.raises(ConfigError, match="'lr' is not a section"):
        apply_overrides(cfg, ["train.lr.value=3"])
    with pytest.raises(ConfigError, match="'name' is not a section"):
        apply_overrides(cfg, ["name.first=3"])


def test_override_through_null_creates_section():
    assert apply_overrides({"params": None}, ["params.k=5"]) == {"params": {"k": 5}}


def test_input_config_is_not_mutated():
    cfg = {"train": {"lr": 0.1, "sched": {"kind": "cos"}}, "tags": ["a"]}
    before = copy.deepcopy(cfg)
    out = apply_overrides(cfg, ["train.lr=0.2", "train.sched.kind=step", "new.key=1"])
    assert cfg == before
    assert out["train"]["lr"] == 0.2 and out["train"]["sched"]["kind"] == "step"
    # The copy is deep: changing the result does not reach back into the input.
    out["tags"].append("b")
    assert cfg["tags"] == ["a"]


def test_no_overrides_returns_equal_copy():
    cfg = {"a": {"b": 1}}
    out = apply_overrides(cfg, [])
    assert out == cfg and out is not cfg and out["a"] is not cfg["a"]


# --------------------------------------------------------------------------- load_yaml / resolve


def test_load_yaml_reads_mapping(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("train:\n  epochs: 5\n  lr: 0.001\nname: probe\nlimit: null\n")
    assert load_yaml(p) == {"train": {"epochs": 5, "lr": 0.001}, "name": "probe", "limit": None}
    assert load_yaml(str(p)) == load_yaml(p)  # str paths work too


def test_load_yaml_empty_file_is_empty_dict(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    assert load_yaml(p) == {}


def test_missing_file_error_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "recipe.yaml"
    with pytest.raises(ConfigError) as exc:
        load_yaml(missing)
    assert str(missing) in str(exc.value)
    assert "not found" in str(exc.value)


def test_invalid_yaml_is_one_line_config_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  lr: [1, 2\n  epochs: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(p)
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(p) in msg
    assert "invalid YAML" in msg
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(p)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_resolve_loads_then_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("train:\n  epochs: 5\n")
    assert resolve(p) == {"train": {"epochs": 5}}
    assert resolve(p, ["train.epochs=7", "data.limit=null"]) == {"train": {"epochs": 7}, "data": {"limit": None}}
    assert load_yaml(p) == {"train": {"epochs": 5}}  # the file is untouched


def test_resolve_missing_file_raises(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve(tmp_path / "absent.yaml", ["a=1"])


def test_base_inheritance_merges_deeply(tmp_path):
    from aigi.config import load_yaml

    (tmp_path / "main.yaml").write_text("detector: ltd\nparams: {n: 5, heads: 8}\ntrain: {lr: 1e-4}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ablation.yaml").write_text("base: ../main.yaml\nparams: {n: 7}\n")
    cfg = load_yaml(tmp_path / "sub" / "ablation.yaml")
    assert cfg == {"detector": "ltd", "params": {"n": 7, "heads": 8}, "train": {"lr": 1e-4}}


def test_a_recipe_naming_another_detector_drops_its_base_params(tmp_path):
    from aigi.config import load_yaml

    (tmp_path / "main.yaml").write_text("detector: univfd-layers\nparams: {blocks: [2, 3]}\ntrain: {lr: 1e-4}\n")
    (tmp_path / "knn.yaml").write_text("base: main.yaml\ndetector: univfd-knn\nparams: {k: 3}\n")
    (tmp_path / "same.yaml").write_text("base: main.yaml\ndetector: univfd-layers\nparams: {dropout: 0.1}\n")
    assert load_yaml(tmp_path / "knn.yaml") == {"detector": "univfd-knn", "params": {"k": 3}, "train": {"lr": 1e-4}}
    assert load_yaml(tmp_path / "same.yaml")["params"] == {"blocks": [2, 3], "dropout": 0.1}


def test_base_loop_is_an_error(tmp_path):
    from aigi.config import ConfigError, load_yaml

    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_yaml(tmp_path / "a.yaml")
