"""params.yaml loading and validation: bad values fail early with a message naming key and value."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO, raw_params, repo_params_raw
from pydantic import ValidationError

from pipeline_steps.core.params import Params, ParamsError, load_params, parse_params


def _assert_subset(raw, loaded, where="params"):
    """Every value written in params.yaml arrives unchanged in the loaded model."""
    if isinstance(raw, dict):
        assert isinstance(loaded, dict), where
        for k, v in raw.items():
            assert k in loaded, f"{where}.{k} missing after load"
            _assert_subset(v, loaded[k], f"{where}.{k}")
    else:
        assert loaded == raw and type(loaded) is type(raw), f"{where}: {raw!r} loaded as {loaded!r}"


def _keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k != "dataset_ids":  # dataset_ids is a free-form mapping
            out |= _keys(v, prefix + k + ".")
    return out


def test_repo_params_load_with_the_values_written_in_the_file():
    p = load_params(REPO / "params.yaml")
    assert isinstance(p, Params)
    _assert_subset(repo_params_raw(), p.model_dump())


def test_repo_params_document_every_field():
    """params.yaml is the single source of truth: no model field is left to a hidden default."""
    dumped = load_params(REPO / "params.yaml").model_dump()
    assert _keys(dumped) == _keys(repo_params_raw())


@pytest.mark.parametrize("key", ["envs", "seeds", "dataset.collect.transitions", "dataset.exorl.cache_dir"])
def test_missing_key_is_rejected_naming_it(key):
    raw = raw_params()
    *parents, last = key.split(".")
    node = raw
    for p in parents:
        node = node[p]
    del node[last]
    with pytest.raises(ParamsError, match=rf"(?m)^  {re.escape(key)}: required key is missing$"):
        parse_params(raw)


# (dotted key, bad value, substrings the message must contain)
BAD_VALUES = [
    ("envz", ["walker-run"], ["envz", "unknown key", "['walker-run']", "closest: envs"]),
    (
        "dataset.colect",
        {"transitions": 10},
        ["dataset.colect", "unknown key", "{'transitions': 10}", "closest: collect"],
    ),
    (
        "dataset.collect.correlated.thetta",
        0.5,
        ["dataset.collect.correlated.thetta", "unknown key", "0.5", "closest: theta"],
    ),
    ("train_cfgrl.step", 10, ["train_cfgrl.step", "unknown key", "closest: steps"]),
    ("dataset.collect.transitions", "2.5e4", ["dataset.collect.transitions", "'2.5e4'", "write 25000"]),
    ("dataset.collect.transitions", "many", ["dataset.collect.transitions", "'many'", "valid integer"]),
    ("dataset.collect.transitions", 1000.0, ["dataset.collect.transitions", "1000.0"]),
    ("dataset.collect.transitions", True, ["dataset.collect.transitions", "True"]),  # no bool -> int
    ("dataset.collect.transitions", -5, ["dataset.collect.transitions", "-5", "greater than 0"]),
    ("dataset.collect.transitions", 0, ["dataset.collect.transitions", "= 0", "greater than 0"]),
    ("dataset.collect.sac.random_steps", -1, ["dataset.collect.sac.random_steps", "-1"]),
    ("dataset.collect.sac.lr", "3e-4", ["dataset.collect.sac.lr", "'3e-4'", "valid number"]),
    ("dataset.collect.sac.lr", 0.0, ["dataset.collect.sac.lr", "0.0"]),
    ("dataset.collect.sac.hidden", [], ["dataset.collect.sac.hidden", "[]"]),
    ("dataset.collect.correlated.theta", 1.5, ["dataset.collect.correlated.theta", "1.5"]),
    ("dataset.collect.correlated.sigma", float("nan"), ["dataset.collect.correlated.sigma", "nan"]),
    ("envs", ["walker-fly"], ["envs", "'walker-fly'", "unknown env"]),
    ("envs", ["walker-rn"], ["envs", "'walker-rn'", "closest: walker-run"]),  # a typo: the names it meant
    ("gc_envs", ["pointmaze-medum-navigate"], ["gc_envs", "closest: pointmaze-medium-navigate"]),
    ("envs", ["walkerrun"], ["envs", "'walkerrun'", "domain-task"]),
    ("envs", ["walker-"], ["envs", "'walker-'", "domain-task"]),
    ("envs", ["walker-run", "walker-run"], ["envs", "duplicate", "walker-run"]),
    ("envs", [], ["envs", "[]", "at least 1"]),
    ("envs", "walker-run", ["envs", "'walker-run'", "valid list"]),
    ("seeds", [], ["seeds", "[]", "at least 1"]),
    ("seeds", [0, 0], ["seeds", "duplicate", "[0, 0]"]),
    ("gc_seeds", [3, 3], ["gc_seeds", "duplicate", "[3, 3]"]),
    ("gc_seeds", [], ["gc_seeds", "at least 1"]),
    ("seeds", [0, 2**32], ["seeds.1", "4294967296", "less than 4294967296"]),
    ("seeds", [-1], ["seeds.0", "-1"]),
    ("dataset.seed", 2**32, ["dataset.seed", "4294967296", "less than 4294967296"]),
    ("dataset.source", "s3", ["dataset.source", "'s3'", "'collect', 'exorl' or 'minari'"]),
    ("dataset.collect.behaviour", "expert", ["dataset.collect.behaviour", "'expert'", "'uniform'"]),
    ("dataset.exorl.max_episodes", -2, ["dataset.exorl.max_episodes", "-2"]),
    ("dataset.exorl.base_url", "", ["dataset.exorl.base_url", "''"]),
    ("dataset.minari.dataset_ids", {"walker-run": 5}, ["dataset.minari.dataset_ids.walker-run", "= 5"]),
    ("dataset", 5, ["dataset = 5", "dictionary"]),
]


@pytest.mark.parametrize(
    ("key", "value", "expected"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES]
)
def test_bad_value_is_rejected_naming_key_and_value(key, value, expected):
    with pytest.raises(ParamsError) as exc:
        parse_params(raw_params({key: value}))
    msg = str(exc.value)
    for s in expected:
        assert s in msg, f"{s!r} not in message:\n{msg}"
    assert "1 invalid value(s)" in msg  # exactly the one bad value is reported, nothing collateral


def test_every_bad_value_is_reported_at_once():
    raw = raw_params({"dataset.source": "s3", "dataset.collect.transitions": -5, "dataset.colect": 1})
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    msg = str(exc.value)
    assert "3 invalid value(s)" in msg
    for s in ["dataset.source = 's3'", "dataset.collect.transitions = -5", "dataset.colect = 1: unknown key"]:
        assert s in msg, msg


def test_minari_source_needs_an_id_for_every_env():
    raw = raw_params(
        {
            "envs": ["walker-run", "cheetah-run"],
            "dataset.source": "minari",
            "dataset.minari.dataset_ids": {"walker-run": "cfgrl/walker-run/expert-v0"},
        }
    )
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    msg = str(exc.value)
    assert "dataset.minari.dataset_ids" in msg and "['cheetah-run']" in msg, msg
    # with the missing id supplied the same params are valid
    raw["dataset"]["minari"]["dataset_ids"]["cheetah-run"] = "cfgrl/cheetah-run/expert-v0"
    assert parse_params(raw).dataset.minari.dataset_ids["cheetah-run"] == "cfgrl/cheetah-run/expert-v0"


def test_ids_for_envs_not_used_do_not_matter_for_other_sources():
    p = parse_params(raw_params({"dataset.source": "collect", "dataset.minari.dataset_ids": {}}))
    assert p.dataset.source == "collect"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- walker-run\n- cheetah-run\n", "expected a mapping at the top level, got list"),
        ("just a string\n", "expected a mapping at the top level, got str"),
        ("", "expected a mapping at the top level, got NoneType"),
        ("envs: [walker-run\nseeds: [0]\n", "not valid YAML"),
        ("envs: [walker-run]\n  seeds: : [0]\n", "not valid YAML"),
    ],
    ids=["list", "string", "empty", "unclosed-bracket", "bad-indent"],
)
def test_bad_file_is_rejected(tmp_path, text, expected):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as exc:
        load_params(path)
    assert expected in str(exc.value)
    assert str(path) in str(exc.value)


def test_missing_file_is_rejected(tmp_path):
    path = tmp_path / "nope" / "params.yaml"
    with pytest.raises(ParamsError, match="file not found") as exc:
        load_params(path)
    assert str(path) in str(exc.value)


def test_yaml_pitfall_exponent_without_dot_is_an_error_not_a_string(tmp_path):
    """PyYAML reads `3e-4` as the string '3e-4'; strict validation must refuse it, naming the key."""
    raw = raw_params()
    text = yaml.safe_dump(raw).replace("lr: 0.0003", "lr: 3e-4")
    assert "lr: 3e-4" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=r"dataset\.collect\.sac\.lr = '3e-4'.*write 0\.0003"):
        load_params(path)


def test_params_are_immutable():
    p = load_params(REPO / "params.yaml")
    with pytest.raises(ValidationError, match="frozen"):
        p.dataset.seed = 5
    assert p.dataset.seed == repo_params_raw()["dataset"]["seed"]


def test_profiles_are_generated_from_params_yaml():
    """profiles/*.yaml are params.yaml with a few keys changed; a stale profile fails here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_profiles", REPO / "profiles" / "make_profiles.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in mod.PROFILES:
        path = REPO / "profiles" / f"{name}.yaml"
        assert path.read_text() == mod.render(name), f"{path} is stale: run profiles/make_profiles.py"
        load_params(path)


def _dvc_set(path, override: str) -> list[tuple[str, str]]:
    """Apply one `dvc exp run -S` override to a copy of `path` the way DVC does (dvc.utils.hydra), and
    return the changed lines as (old, new) pairs of a line diff."""
    import difflib
    import shutil

    from dvc.utils.hydra import apply_overrides

    before = path.read_text().splitlines()
    shutil.copy(path, path.with_suffix(".orig"))
    apply_overrides(path, [override])
    after = path.read_text().splitlines()
    changed = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes():
        if tag != "equal":
            changed.append(("\n".join(before[i1:i2]), "\n".join(after[j1:j2])))
    return changed


@pytest.mark.parametrize("name", ["params.yaml", *sorted(p.name for p in (REPO / "profiles").glob("*.yaml"))])
def test_params_files_are_written_in_the_style_dvc_writes_back(tmp_path, name):
    """`dvc exp run -S` rewrites the whole file in its own style: params.yaml and every profile are that
    style already, so setting a key to its own value changes nothing."""
    src = REPO / name if name == "params.yaml" else REPO / "profiles" / name
    path = tmp_path / "params.yaml"
    path.write_text(src.read_text())
    threads = yaml.safe_load(src.read_text())["runtime"]["threads"]
    assert _dvc_set(path, f"runtime.threads={threads}") == []


def test_dvc_set_param_changes_only_the_edited_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    assert _dvc_set(path, "label.expectile=0.8") == [
        ("  expectile: 0.9        # expectile of the value regression (IQL's tau)",
         "  expectile: 0.8        # expectile of the value regression (IQL's tau)")
    ]  # fmt: skip
    ws = yaml.safe_load(path.read_text())["evaluate"]["guidance_ws"]
    new = [2.0 if w == 1.5 else w for w in ws]
    assert _dvc_set(path, f"evaluate.guidance_ws=[{','.join(map(str, new))}]") == [("  - 1.5", "  - 2.0")]
    assert load_params(path).evaluate.guidance_ws == new
