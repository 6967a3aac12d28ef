"""`params.yaml`: the single, validated source of truth for every stage.

Each section is a pydantic model with unknown keys forbidden; `load_params` fails before any work
with a `ParamsError` naming the offending key and value. Field descriptions double as the
documentation of `params.yaml` (whose comments say the same in one line each).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline_steps.envs.names import (
    can_generate,
    check_env_name,
    check_gc_env_name,
    closest,
    is_singletask,
    split_singletask_name,
)

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
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
    theta: Unit = Field(description="AR(1) coefficient: a_t = theta a_{t-1} + sqrt(1-theta^2) sigma eps")
    sigma: PosFloat = Field(description="stationary std of the noise before clipping to [-1, 1]")


class SacBehaviour(_Strict):
    hidden: list[PosInt] = Field(min_length=1, description="hidden sizes of actor and critics")
    batch_size: PosInt = Field(description="minibatch size of the online SAC updates")
    lr: PosFloat = Field(description="Adam learning rate of actor, critics and temperature")
    discount: Unit = Field(description="discount gamma")
    polyak: Unit = Field(description="target-critic Polyak rate")
    random_steps: NonNegInt = Field(description="first env steps with uniform random actions")
    update_every: PosInt = Field(description="one gradient update per this many env steps")
    expert_episodes: NonNegInt = Field(
        description="episodes of the final actor (mean action + noise) appended after the online run"
    )
    expert_noise: NonNegFloat = Field(description="std of the Gaussian noise on those episodes' actions")


class CollectSource(_Strict):
    behaviour: Literal["uniform", "correlated", "sac_replay"] = Field(
        description="behaviour policy that generates the data"
    )
    transitions: PosInt = Field(description="env steps to collect (rounded up to whole episodes)")
    correlated: CorrelatedNoise
    sac: SacBehaviour


class ExorlSource(_Strict):
    base_url: str = Field(min_length=1, description="archive base URL")
    method: str = Field(min_length=1, description="ExORL exploration method (archive name)")
    max_episodes: NonNegInt = Field(description="use only the first N episodes (0 = all)")
    cache_dir: str = Field(min_length=1, description="where finished downloads are kept")


class MinariSource(_Strict):
    dataset_ids: dict[str, str] = Field(description="env name -> Minari dataset id")


# OGBench data (gc_dataset's sources; also dataset.ogbench, the data of OGBench single-task envs)
class GcGenerate(_Strict):
    episodes: PosInt = Field(description="training episodes to generate (plus episodes // 10 for validation)")
    episode_steps: Annotated[int, Field(ge=2)] = Field(description="env steps per generated episode")
    maze_noise: PosFloat = Field(description="pointmaze: std of the Gaussian noise on the oracle direction")
    manip_noise: PosFloat = Field(description="cube / scene / puzzle: noise of OGBench's oracles")
    manip_noise_smoothing: Unit = Field(
        description="cube / scene / puzzle: noise smoothing of OGBench's plan oracles"
    )


class GcDownload(_Strict):
    base_url: str = Field(
        min_length=1, description="base URL of the OGBench files ({base_url}/<name>-v0.npz)"
    )
    cache_dir: str = Field(min_length=1, description="where finished downloads are kept")


class GcDatasetParams(_Strict):
    source: Literal["generate", "download"] = Field(
        description="generate locally or download OGBench's files"
    )
    seed: Seed = Field(description="seed of local generation (OGBench's env, oracle and noise)")
    generate: GcGenerate
    download: GcDownload


class DatasetParams(_Strict):
    source: Literal["collect", "exorl", "minari"] = Field(description="where the data comes from")
    seed: Seed = Field(description="seed of collection (behaviour policy and env resets)")
    collect: CollectSource
    exorl: ExorlSource
    minari: MinariSource
    ogbench: GcDatasetParams = Field(
        description="OGBench single-task envs (<dataset>-singletask): their OGBench data, as gc_dataset's"
    )


# --------------------------------------------------------------------------------------------
# label stage (IQL critic -> advantages -> optimality labels), method.md §2
# --------------------------------------------------------------------------------------------
class LabelParams(_Strict):
    steps: PosInt = Field(description="IQL critic + value gradient steps")
    batch_size: PosInt = Field(description="minibatch size")
    hidden: list[PosInt] = Field(min_length=1, description="hidden sizes of Q and V MLPs")
    layer_norm: bool = Field(description="LayerNorm after every hidden layer (ExORL code: on)")
    n_q: PosInt = Field(description="Q ensemble size; targets use the min over the ensemble")
    lr: PosFloat = Field(description="Adam learning rate of Q and V")
    discount: Unit = Field(description="discount gamma")
    expectile: Unit = Field(description="expectile of the value regression (IQL tau)")
    polyak: Unit = Field(description="target-critic Polyak rate")
    normalize_obs: bool = Field(description="normalise observations by dataset mean/std (ExORL code: off)")
    threshold: float = Field(
        allow_inf_nan=False,
        description="label o = 1 where A > threshold; with threshold_type quantile, the quantile level of A",
    )
    threshold_type: Literal["value", "quantile"] = Field(
        description="value: threshold is on A itself; quantile: o = 1 above the threshold-quantile of A"
    )
    threshold_inclusive: bool = Field(
        description="use A >= threshold (paper) instead of A > threshold (code)"
    )
    advantage_critic: Literal["target", "online"] = Field(description="Q used for A = min_i Q_i - V")
    log_every: PosInt = Field(description="log losses every N steps")

    @model_validator(mode="after")
    def _quantile_level(self) -> LabelParams:
        if self.threshold_type == "quantile" and not 0 < self.threshold < 1:
            raise ValueError(
                f"label.threshold = {self.threshold!r}: with threshold_type 'quantile' it is a quantile "
                "level and must lie strictly between 0 and 1"
            )
        return self


# --------------------------------------------------------------------------------------------
# train_cfgrl stage, method.md §3
# --------------------------------------------------------------------------------------------
class _PeriodicEval(_Strict):
    """A cheap evaluation during training: eval_episodes episodes (evaluation episodes 0.., the final
    evaluation's start states) every eval_every steps, logged beside the losses (0 = off)."""

    eval_every: NonNegInt = Field(description="evaluate the policy every N steps during training (0 = off)")
    eval_episodes: PosInt = Field(description="episodes per setting of that periodic evaluation")

    @model_validator(mode="after")
    def _eval_on_log_rows(self):
        if self.eval_every and self.eval_every % self.log_every:
            raise ValueError(f"eval_every {self.eval_every} must be a multiple of log_every {self.log_every}")
        return self


class CfgrlParams(_PeriodicEval):
    steps: PosInt = Field(description="flow-matching gradient steps")
    batch_size: PosInt = Field(description="minibatch size")
    hidden: list[PosInt] = Field(min_length=1, description="hidden sizes of the velocity MLP")
    layer_norm: bool = Field(description="LayerNorm in the velocity MLP")
    lr: PosFloat = Field(description="Adam learning rate")
    label_scheme: Literal["binary_weighted", "ternary_dropout"] = Field(
        description="binary_weighted (ExORL code) or ternary_dropout (paper / OGBench)"
    )
    uncond_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        description="binary_weighted: weight of the unconditional flow loss"
    )
    label_dropout: Unit = Field(description="ternary_dropout: probability of replacing the label by null")
    time_sampling: Literal["grid", "uniform"] = Field(description="t on the 1/flow_steps grid or U[0,1]")
    flow_steps: PosInt = Field(description="Euler steps of the sampler (and the training time grid)")
    time_emb_dim: PosInt = Field(description="sinusoidal time-embedding size")
    label_emb_dim: PosInt = Field(description="learned optimality-label embedding size")
    normalize_obs: bool = Field(description="normalise observations by dataset mean/std (ExORL code: off)")
    log_every: PosInt = Field(description="log losses every N steps")
    eval_ws: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        min_length=1, description="w values of the periodic evaluation during training"
    )

    @field_validator("time_emb_dim")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"time_emb_dim must be even (sin and cos halves), got {v}")
        return v


# --------------------------------------------------------------------------------------------
# train_awr stage, method.md §4
# --------------------------------------------------------------------------------------------
class AwrParams(_PeriodicEval):
    steps: PosInt = Field(description="gradient steps (all 1/beta trained side by side)")
    batch_size: PosInt = Field(description="minibatch size")
    hidden: list[PosInt] = Field(min_length=1, description="hidden sizes of the policy MLP")
    layer_norm: bool = Field(description="LayerNorm in the policy MLP")
    lr: PosFloat = Field(description="Adam learning rate")
    inv_betas: list[PosFloat] = Field(min_length=1, description="1/beta values")
    max_weight: PosFloat = Field(description="clip of the AWR weight exp(A / beta)")
    mean_clip: PosFloat = Field(description="Gaussian mean clipped to [-mean_clip, mean_clip]")
    log_std_min: float = Field(allow_inf_nan=False, description="lower clip of the learnable log-std")
    log_std_max: float = Field(allow_inf_nan=False, description="upper clip of the learnable log-std")
    normalize_obs: bool = Field(description="normalise observations by dataset mean/std (ExORL code: off)")
    log_every: PosInt = Field(description="log losses every N steps")

    @model_validator(mode="after")
    def _order(self) -> AwrParams:
        if self.log_std_min >= self.log_std_max:
            raise ValueError(f"log_std_min {self.log_std_min} must be below log_std_max {self.log_std_max}")
        if len(set(self.inv_betas)) != len(self.inv_betas):
            raise ValueError(f"duplicate value in inv_betas {self.inv_betas}")
        return self


# --------------------------------------------------------------------------------------------
# train_awf stage: advantage-weighted flow matching (the velocity net of train_cfgrl, AWR's weights)
# --------------------------------------------------------------------------------------------
class AwfParams(_Strict):
    steps: PosInt = Field(description="gradient steps (all 1/beta trained side by side)")
    batch_size: PosInt = Field(description="minibatch size")
    inv_betas: list[PosFloat] = Field(min_length=1, description="1/beta values")
    max_weight: PosFloat = Field(description="clip of the weight exp(A / beta)")
    log_every: PosInt = Field(description="log losses every N steps")

    @field_validator("inv_betas")
    @classmethod
    def _unique_inv_betas(cls, v: list[float]) -> list[float]:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate value in inv_betas {v}")
        return v


# --------------------------------------------------------------------------------------------
# train_fql stage and evaluate_extraction: policy extraction from flow BC on the label critic, method.md §10
# --------------------------------------------------------------------------------------------
def _unique(name: str, v: list) -> list:
    if len(set(v)) != len(v):
        raise ValueError(f"duplicate value in {name} {v}")
    return v


class FqlParams(_Strict):
    steps: PosInt = Field(description="gradient steps (all alphas trained side by side)")
    batch_size: PosInt = Field(description="minibatch size")
    hidden: list[PosInt] = Field(min_length=1, description="hidden sizes of the one-step policy MLP mu(s, z)")
    layer_norm: bool = Field(description="LayerNorm in the one-step policy MLP")
    lr: PosFloat = Field(description="Adam learning rate")
    alphas: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        min_length=1, description="distillation weights alpha, one one-step policy each"
    )
    flow_steps: PosInt = Field(description="Euler steps of the flow-BC teacher a_T(s, z)")
    normalize_q: bool = Field(description="scale the Q term by lambda = 1 / mean|Q| (FQL's normalize_q_loss)")
    normalize_obs: bool = Field(description="normalise mu's observations by dataset mean/std")
    log_every: PosInt = Field(description="log losses every N steps")

    @field_validator("alphas")
    @classmethod
    def _unique_alphas(cls, v: list[float]) -> list[float]:
        return _unique("alphas", v)


class ExtractionParams(_Strict):
    candidates: list[PosInt] = Field(
        min_length=1, description="N of argmax_i Q(s, a_i) over N flow-BC candidates (IFQL / IDQL)"
    )
    resample_candidates: list[PosInt] = Field(
        description="N of resampling with softmax(alpha A(s, a_i)) over N candidates (empty: none)"
    )
    resample_alphas: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        description="alpha values of that resampling"
    )
    flow_steps: PosInt = Field(description="Euler steps of each candidate")

    @field_validator("candidates", "resample_candidates", "resample_alphas")
    @classmethod
    def _unique_values(cls, v: list, info) -> list:
        return _unique(info.field_name, v)


# --------------------------------------------------------------------------------------------
# evaluate stage
# --------------------------------------------------------------------------------------------
class EvaluateParams(_Strict):
    guidance_ws: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        min_length=1, description="guidance weights w to evaluate (w = 0 is flow BC)"
    )
    episodes: PosInt = Field(description="evaluation episodes per setting (w or 1/beta)")
    max_steps: NonNegInt = Field(
        description="cut evaluation episodes at this many steps (0 = the env's own limit: 1000 on dm_control)"
    )
    drift_states: PosInt = Field(
        description="dataset states on which the drift of pi_w from flow BC is measured"
    )
    timing_repeats: PosInt = Field(description="repeats of the per-action wall-clock measurement")

    @field_validator("guidance_ws")
    @classmethod
    def _unique_ws(cls, ws: list[float]) -> list[float]:
        if len(set(ws)) != len(ws):
            raise ValueError(f"duplicate value in guidance_ws {ws}")
        return ws


class RenderParams(_Strict):
    enabled: bool = Field(
        description="render one episode per policy (skipped, with the reason, if MuJoCo cannot)"
    )
    frames: PosInt = Field(description="frames per episode in the strip, evenly spaced in time")
    width: PosInt = Field(description="frame width in pixels")
    height: PosInt = Field(description="frame height in pixels")
    camera: NonNegInt = Field(description="MuJoCo camera id (dm_control's 0 follows the walker / cheetah)")


class RuntimeParams(_Strict):
    device: Literal["cpu", "cuda", "auto"] = Field(
        description="where networks, minibatches and flow noise live (auto: cuda if torch sees a GPU); "
        "the physics of data collection and evaluation always runs on the CPU"
    )
    threads: NonNegInt = Field(description="torch threads per stage process (0 = torch default: all cores)")
    compile: bool = Field(description="torch.compile the update steps (falls back to eager on failure)")
    checkpoint_every: NonNegInt = Field(
        description="training stages save a resume checkpoint every N steps (0 = never)"
    )


# --------------------------------------------------------------------------------------------
# goal-conditioned half (OGBench): gc_dataset, train_gc, gc_evaluate, method.md §8
# --------------------------------------------------------------------------------------------
HIER_ALGOS = ("hcfgrl", "flow_hgcbc", "hgcbc")  # hierarchical: a subgoal level above an action level
GC_ALGOS = ("cfgrl", "flow_gcbc", "gcbc", *HIER_ALGOS)  # the train_gc policies (dvc.yaml's train_gc matrix)


class TrainGcParams(_Strict):
    steps: PosInt = Field(description="gradient steps of each goal-conditioned policy")
    batch_size: PosInt = Field(description="minibatch size")
    hidden: list[PosInt] = Field(min_length=1, description="hidden sizes of the MLPs (GELU, no LayerNorm)")
    lr: PosFloat = Field(description="Adam learning rate")
    goal_dropout: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = Field(
        description="CFGRL: probability that a training goal is replaced by the learned null goal"
    )
    flow_steps: PosInt = Field(description="Euler steps of the flow sampler")
    subgoal_steps: PosInt = Field(
        description="hierarchical policies: the subgoal lies this many steps ahead (clipped at the goal)"
    )
    log_every: PosInt = Field(description="log losses every N steps")


class GcEvaluateParams(_Strict):
    guidance_ws: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        min_length=1, description="guidance weights w of CFGRL (0 = flow BC, 1 = flow GCBC's target)"
    )
    episodes: PosInt = Field(description="episodes per evaluation task and setting")
    tasks: list[Annotated[int, Field(ge=1, le=5)]] = Field(min_length=1, description="OGBench task ids (1-5)")
    max_steps: NonNegInt = Field(description="cut episodes at this many steps (0 = the env's own limit)")
    data_policy: bool = Field(description="also evaluate the noisy data policy (mazes): the ceiling")
    trajectory_ws: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        min_length=1,
        description="w values whose paths are plotted, episode 0 of every task (each one of guidance_ws)",
    )
    level_ws: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        min_length=1,
        description="HCFGRL: (w_high, w_low) over level_ws x level_ws beside the joint sweep w_high = w_low",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GcEvaluateParams:
        for name in ("guidance_ws", "tasks", "trajectory_ws", "level_ws"):
            v = getattr(self, name)
            if len(set(v)) != len(v):
                raise ValueError(f"gc_evaluate.{name} = {v}: duplicate value")
        missing = [w for w in self.trajectory_ws if w not in self.guidance_ws]
        if missing:
            raise ValueError(
                f"gc_evaluate.trajectory_ws {missing} not in gc_evaluate.guidance_ws {self.guidance_ws}"
            )
        return self


# --------------------------------------------------------------------------------------------
# top level
# --------------------------------------------------------------------------------------------
class Params(_Strict):
    envs: list[str] = Field(min_length=1, description="dm_control tasks as domain-task, e.g. walker-run")
    gc_envs: list[str] = Field(
        min_length=1,  # dvc.yaml's aggregate reads both halves
        description="goal-conditioned OGBench envs as <env>-<dataset type>, e.g. pointmaze-medium-navigate",
    )
    seeds: list[Seed] = Field(min_length=1, description="training / evaluation seeds of the offline-RL half")
    gc_seeds: list[Seed] = Field(
        min_length=1, description="training / evaluation seeds of the goal-conditioned half"
    )
    dataset: DatasetParams
    label: LabelParams
    train_cfgrl: CfgrlParams
    train_awr: AwrParams
    train_awf: AwfParams
    train_fql: FqlParams
    extraction: ExtractionParams
    evaluate: EvaluateParams
    render: RenderParams
    gc_dataset: GcDatasetParams
    train_gc: TrainGcParams
    gc_evaluate: GcEvaluateParams
    runtime: RuntimeParams

    @field_validator("envs")
    @classmethod
    def _known_envs(cls, envs: list[str]) -> list[str]:
        for name in envs:
            check_env_name(name)
        if len(set(envs)) != len(envs):
            raise ValueError(f"duplicate env in {envs}")
        return envs

    @field_validator("gc_envs")
    @classmethod
    def _known_gc_envs(cls, envs: list[str]) -> list[str]:
        for name in envs:
            check_gc_env_name(name)
        if len(set(envs)) != len(envs):
            raise ValueError(f"duplicate env in {envs}")
        return envs

    @field_validator("seeds", "gc_seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"duplicate seed in {seeds}")
        return seeds

    @model_validator(mode="after")
    def _flow_steps_on_the_grid(self) -> Params:
        """FQL's teacher and the rejection candidates integrate train_cfgrl's flow: with t on its grid
        {j/n}, their step times i/k are on it only when k divides n."""
        net = self.train_cfgrl
        if net.time_sampling == "grid":
            for key, k in (("train_fql.flow_steps", self.train_fql.flow_steps),
                           ("extraction.flow_steps", self.extraction.flow_steps)):  # fmt: skip
                if net.flow_steps % k:
                    raise ValueError(
                        f"{key} {k} must divide train_cfgrl.flow_steps {net.flow_steps} (time_sampling "
                        "grid: the network saw only t = j / flow_steps)"
                    )
        return self

    @model_validator(mode="after")
    def _source_complete(self) -> Params:
        singletask = [e for e in self.envs if is_singletask(e)]  # their data: dataset.ogbench
        if self.dataset.source == "minari":
            missing = [
                e for e in self.envs if e not in self.dataset.minari.dataset_ids and e not in singletask
            ]
            if missing:
                raise ValueError(
                    f"dataset.source is 'minari' but dataset.minari.dataset_ids has no id for {missing}"
                )
        if self.dataset.ogbench.source == "generate":
            missing = [e for e in singletask if not can_generate(split_singletask_name(e)[0])]
            if missing:
                raise ValueError(
                    f"dataset.ogbench.source is 'generate' but the data of {missing} cannot be made here (it "
                    "needs OGBench's expert networks or oracles the pipeline does not run): use source "
                    "'download'"
                )
        if self.gc_dataset.source == "generate":
            missing = [e for e in self.gc_envs if not can_generate(e)]
            if missing:
                raise ValueError(
                    f"gc_dataset.source is 'generate' but {missing} cannot be made here (their data needs "
                    "OGBench's expert networks or oracles the pipeline does not run): use source 'download'"
                )
        return self


def _keys_beside(loc: tuple) -> list[str]:
    """The valid keys of the section that holds loc's last key (e.g. loc dataset.colect -> dataset's)."""
    model = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        model = field.annotation if field else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


# what PyYAML (YAML 1.1) reads as a string though a user meant a number: an exponent without a dot
_NUMBER_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _format_errors(err: ValidationError, path: str) -> str:
    lines = [f"{path}: {err.error_count()} invalid value(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(
                f"  {key} = {value!r}: unknown key; {closest(str(e['loc'][-1]), _keys_beside(e['loc']))}"
            )
        elif isinstance(value, str) and _NUMBER_TEXT.match(value):
            number = float(value)
            example = f"{int(number)}" if number.is_integer() else f"{number!r}"
            lines.append(
                f"  {key} = {value!r}: {e['msg']} (YAML reads a number with an exponent but no dot as text: "
                f"write {example})"
            )
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        elif not e["loc"]:  # a check across sections: its message names the keys
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
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
