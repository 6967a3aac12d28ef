"""`params.yaml`: the single, validated source of truth for every stage.

Each section is a pydantic model with unknown keys forbidden; `load_params` fails before any work
with a `ParamsError` naming the offending key and value. Field descriptions double as the
documentation of `params.yaml` (whose comments say the same in one line each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # shimmy / numpy RandomState take seeds below 2**32 only
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class ParamsError(ValueError):
    """params.yaml failed validation; the message names every offending key and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------------------------
# dataset stage
# --------------------------------------------------------------------------------------------
class CorrelatedNoise(_Strict):
    theta: Unit = Field(0.9, description="AR(1) coefficient: a_t = theta a_{t-1} + sqrt(1-theta^2) sigma eps")
    sigma: PosFloat = Field(0.6, description="stationary std of the noise before clipping to [-1, 1]")


class SacBehaviour(_Strict):
    hidden: list[PosInt] = Field([256, 256], min_length=1, description="hidden sizes of actor and critics")
    batch_size: PosInt = Field(256, description="minibatch size of the online SAC updates")
    lr: PosFloat = Field(3e-4, description="Adam learning rate of actor, critics and temperature")
    discount: Unit = Field(0.99, description="discount gamma")
    polyak: Unit = Field(0.005, description="target-critic Polyak rate")
    random_steps: NonNegInt = Field(5000, description="first env steps with uniform random actions")
    update_every: PosInt = Field(2, description="one gradient update per this many env steps")


class CollectSource(_Strict):
    behaviour: Literal["uniform", "correlated", "sac_replay"] = Field(
        "correlated", description="behaviour policy that generates the data"
    )
    transitions: PosInt = Field(200_000, description="env steps to collect (rounded up to whole episodes)")
    correlated: CorrelatedNoise = CorrelatedNoise()
    sac: SacBehaviour = SacBehaviour()


class ExorlSource(_Strict):
    base_url: str = Field("https://dl.fbaipublicfiles.com/exorl", min_length=1, description="archive base URL")
    method: str = Field("rnd", min_length=1, description="ExORL exploration method (archive name)")
    max_episodes: NonNegInt = Field(0, description="use only the first N episodes (0 = all)")
    cache_dir: str = Field("data/downloads/exorl", min_length=1, description="where finished downloads are kept")


class MinariSource(_Strict):
    dataset_ids: dict[str, str] = Field({}, description="env name -> Minari dataset id")


class DatasetParams(_Strict):
    source: Literal["collect", "exorl", "minari"] = Field("collect", description="where the data comes from")
    seed: Seed = Field(0, description="seed of collection (behaviour policy and env resets)")
    collect: CollectSource = CollectSource()
    exorl: ExorlSource = ExorlSource()
    minari: MinariSource = MinariSource()


# --------------------------------------------------------------------------------------------
# top level
# --------------------------------------------------------------------------------------------
class Params(_Strict):
    envs: list[str] = Field(min_length=1, description="dm_control tasks as domain-task, e.g. walker-run")
    seeds: list[Seed] = Field(min_length=1, description="training / evaluation seeds")
    dataset: DatasetParams = DatasetParams()

    @field_validator("envs")
    @classmethod
    def _known_envs(cls, envs: list[str]) -> list[str]:
        from pipeline_steps.envs import check_env_name

        for name in envs:
            check_env_name(name)
        if len(set(envs)) != len(envs):
            raise ValueError(f"duplicate env in {envs}")
        return envs

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"duplicate seed in {seeds}")
        return seeds

    @model_validator(mode="after")
    def _source_complete(self) -> Params:
        if self.dataset.source == "minari":
            missing = [e for e in self.envs if e not in self.dataset.minari.dataset_ids]
            if missing:
                raise ValueError(f"dataset.source is 'minari' but dataset.minari.dataset_ids has no id for {missing}")
        return self


def _format_errors(err: ValidationError, path: str) -> str:
    lines = [f"{path}: {err.error_count()} invalid value(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key} = {value!r}: unknown key")
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            lines.append(f"  {key} = {value!r}: {e['msg']}")
    return "\n".join(lines)


def parse_params(raw: Any, path: str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_errors(err, path)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ParamsError naming every bad key and value."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, str(path))

