"""Training plumbing shared by the label / train_cfgrl / train_awr stages: seeding, minibatch
sampling, the logged training loop, atomic checkpoints. No algorithm logic lives here."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline_steps.core import tracking
from pipeline_steps.core.checkpoints import save_agent
from pipeline_steps.core.device import module_device, setup_torch
from pipeline_steps.core.io import atomic_output, clear_outputs, write_csv_atomic, write_json_atomic

log = logging.getLogger(__name__)


RESUME_FILE = "resume.pt"


class NonFiniteLossError(FloatingPointError):
    """A logged loss became NaN or inf; training stops before any checkpoint is written."""


class Sampler:
    """Uniform minibatches (with replacement) from in-memory tensors of equal length."""

    def __init__(self, tensors: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator):
        lengths = {k: len(v) for k, v in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors of different lengths: {lengths}")
        self.tensors, self.batch_size, self.generator = tensors, batch_size, generator
        self.n = next(iter(lengths.values()))

    def sample(self) -> dict[str, torch.Tensor]:
        """Indices drawn on the generator's device and gathered there: no host round trip per step."""
        idx = torch.randint(
            self.n, (self.batch_size,), generator=self.generator, device=self.generator.device
        )
        return {k: v[idx] for k, v in self.tensors.items()}


class Resume:
    """A training run's resume checkpoint (`<out_dir>/resume.pt`), written atomically every `every`
    steps and deleted once the stage's outputs are written. It holds the step, the log rows so far,
    the agent's state (weights, target nets, observation statistics), the optimiser's state and both
    RNG states (the minibatch / noise generator and torch's global one), so a killed run resumes where
    it stopped and ends with the same weights as an uninterrupted one. It also holds a fingerprint of
    the run: `identity` (stage, env, seed, config, threads), the torch version, the source of every
    pipeline_steps module loaded, and the training data. A checkpoint of a different run (other params,
    code or data) is ignored with a warning, never resumed."""

    def __init__(self, path: Path, every: int, identity: dict):
        self.path, self.every, self.identity = Path(path), every, identity
        self.fingerprint = ""

    def bind(self, data: dict[str, torch.Tensor]) -> None:
        """Fingerprint the run: identity, torch version, the pipeline code, the training tensors."""
        h = hashlib.sha256(json.dumps(self.identity, sort_keys=True, default=str).encode())
        h.update(torch.__version__.encode())
        for name in sorted(m for m in sys.modules if m.split(".")[0] == "pipeline_steps"):
            source = getattr(sys.modules[name], "__file__", None)
            if source:
                h.update(name.encode() + Path(source).read_bytes())
        for k in sorted(data):
            h.update(k.encode())
            h.update(data[k].detach().cpu().contiguous().numpy().tobytes())
        self.fingerprint = h.hexdigest()

    def restore(self, agent, gen: torch.Generator) -> tuple[int, list[dict], Window]:
        """Load the checkpoint into agent and gen if it belongs to this run: (step done, log rows, the
        open logging window). All or nothing: if any part fails to load, agent, optimiser and RNGs are
        put back as they were."""
        if not self.every or not self.path.exists():
            return 0, [], Window()
        before = (
            copy.deepcopy(agent.state_dict()),
            copy.deepcopy(agent.optimizer.state_dict()),
            gen.get_state(),
            torch.get_rng_state(),
        )
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
            if state["fingerprint"] != self.fingerprint:
                log.warning(
                    "%s: from a different run (params, code or data changed); starting over", self.path
                )
                return 0, [], Window()
            agent.load_state_dict(state["agent"])
            agent.optimizer.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            step, rows = int(state["step"]), list(state["rows"])
            window = Window.from_state(state["window"], agent)
        except Exception as err:  # noqa: BLE001 - an unreadable checkpoint costs the progress, not the run
            agent.load_state_dict(before[0])
            agent.optimizer.load_state_dict(before[1])
            gen.set_state(before[2])
            torch.set_rng_state(before[3])
            log.warning(
                "%s: unreadable resume checkpoint (%s: %s); starting over", self.path, type(err).__name__, err
            )
            return 0, [], Window()
        log.info("%s: resuming at step %d", self.path, step)
        return step, rows, window

    def save(self, step: int, rows: list[dict], agent, gen: torch.Generator, window: Window) -> None:
        """Checkpoint the run (never a non-finite one: training stops instead)."""
        check_finite_parameters(agent, f"resume checkpoint at step {step}")
        state = {
            "fingerprint": self.fingerprint,
            "step": step,
            "rows": rows,
            "agent": agent.state_dict(),
            "optimizer": agent.optimizer.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "window": window.state(),
        }
        with atomic_output(self.path) as f:
            torch.save(state, f)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class Window:
    """The running sums of the info tensors since the last log row (one stacked tensor, added on the
    device: no host sync per step), so a log row is the mean over its whole window, not one
    minibatch's snapshot."""

    def __init__(self, sums: dict[str, torch.Tensor] | None = None, n: int = 0):
        sums = dict(sums or {})
        self.keys = list(sums)
        self.total = torch.stack([v.double() for v in sums.values()]) if sums else None  # [K]
        self.n = n

    @property
    def sums(self) -> dict[str, torch.Tensor]:
        return {} if self.total is None else dict(zip(self.keys, self.total.unbind()))

    def add(self, info: dict[str, torch.Tensor]) -> None:
        step = torch.stack([v.detach() for v in info.values()]).double()  # [K]: one op, not K
        if self.total is None:
            self.keys, self.total = list(info), step
        else:
            self.total += step
        self.n += 1

    def mean_row(self) -> dict[str, float]:
        """The window's means as floats, and the window restarts."""
        row = dict(zip(self.keys, (self.total / self.n).tolist()))
        self.total, self.n = None, 0
        return row

    def state(self) -> dict:
        return {"sums": {k: v.cpu().clone() for k, v in self.sums.items()}, "n": self.n}  # a snapshot

    @classmethod
    def from_state(cls, state: dict, like: torch.nn.Module) -> Window:
        dev = module_device(like)
        return cls({k: v.to(dev) for k, v in state["sums"].items()}, int(state["n"]))


def train_loop(
    update: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    sampler: Sampler,
    steps: int,
    log_every: int,
    desc: str,
    start: int = 0,
    rows: list[dict] | None = None,
    checkpoint: Callable[[int, list[dict], Window], None] | None = None,
    checkpoint_every: int = 0,
    window: Window | None = None,
    on_row: Callable[[dict], None] | None = None,
    probe: Callable[[int], dict[str, float]] | None = None,
    probe_every: int = 0,
) -> tuple[pd.DataFrame, float]:
    """Run updates start+1 .. steps; every `log_every` steps (and at the end) record a row of the info
    tensors' means over the steps since the last row (checked for NaN/inf) and pass it to on_row (e.g.
    to stream it to MLflow); every `probe_every` steps (a multiple of log_every) and at the end, the
    row also gets probe(step)'s values (e.g. a periodic evaluation's returns); every `checkpoint_every`
    steps call checkpoint(step, rows, window). Returns (log table incl. the rows before `start`,
    seconds per update run here, the probes' time excluded)."""
    rows = list(rows or [])
    window = window or Window()
    began, probing = time.perf_counter(), 0.0
    with tqdm(total=steps, initial=start, desc=desc, unit="step", mininterval=2.0) as bar:
        for step in range(start + 1, steps + 1):
            window.add(update(sampler.sample()))
            if step == start + 1:  # the first update compiles the graphs (torch.compile): rate and ETA
                bar.reset(total=steps)  # count from the second one, or the first ETA is days
                bar.n = bar.last_print_n = step
            else:
                bar.update(1)
            if step % log_every == 0 or step == steps:
                row = window.mean_row()
                bad = {k: v for k, v in row.items() if not math.isfinite(v)}
                if bad:
                    raise NonFiniteLossError(f"{desc}: non-finite values at step {step}: {bad}")
                if probe is not None and probe_every and (step % probe_every == 0 or step == steps):
                    t0 = time.perf_counter()
                    row = {**row, **probe(step)}
                    probing += time.perf_counter() - t0
                rows.append({"step": step, **row})
                if on_row is not None:
                    on_row(rows[-1])
                loss_key = next((k for k in row if k.endswith("/loss")), None)
                if loss_key:
                    bar.set_postfix({loss_key: f"{row[loss_key]:.4g}"})
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0 and step < steps:
                checkpoint(step, rows, window)
    sec_per_update = (time.perf_counter() - began - probing) / max(1, steps - start)
    return pd.DataFrame(rows), sec_per_update


def fit(
    agent,
    data: dict[str, torch.Tensor],
    cfg,
    gen: torch.Generator,
    desc: str,
    update=None,
    resume=None,
    make_sampler=None,
    probe=None,
):
    """The agent and `data` moved to gen's device (runtime.device) once, dataset observation statistics
    (when cfg.normalize_obs), cfg.steps updates on uniform minibatches of `data` (or on what
    make_sampler(data on the device) draws, e.g. hindsight goals), resumed from `resume`'s checkpoint
    when it has one of this run, then a check that no parameter went non-finite. With a `probe` (a
    function of the step) and cfg.eval_every > 0, its values join the log rows every eval_every steps.
    Returns (log table, seconds per update)."""
    agent.to(gen.device)  # before the first optimiser step: Adam's (empty) state follows the parameters
    if getattr(cfg, "normalize_obs", False):
        agent.obs_norm.fit(data["observations"])
    start, rows, window, save = 0, [], None, None
    if resume is not None:
        resume.bind(data)
        start, rows, window = resume.restore(agent, gen)

        def save(step, rows, window):
            resume.save(step, rows, agent, gen, window)

    data = {k: v.to(gen.device) for k, v in data.items()}
    sampler = make_sampler(data) if make_sampler else Sampler(data, cfg.batch_size, gen)

    train_log, sec = train_loop(
        update or agent.update,
        sampler,
        cfg.steps,
        cfg.log_every,
        desc=desc,
        start=start,
        rows=rows,
        checkpoint=save,
        checkpoint_every=resume.every if resume is not None else 0,
        window=window,
        on_row=tracking.log_step,  # streamed to the stage's MLflow run while it trains
        probe=probe,
        probe_every=getattr(cfg, "eval_every", 0),
    )
    check_finite_parameters(agent, desc)
    return train_log, sec


def stage_resume(params, out_dir: Path, stage: str, env: str, seed: int, sections: tuple[str, ...]) -> Resume:
    """The Resume of a training stage: <out_dir>/resume.pt every runtime.checkpoint_every steps, identified
    by stage, env, seed, the compile flag, the thread count and every params section the stage reads."""
    identity = {
        "stage": stage,
        "env": env,
        "seed": seed,
        "compile": params.runtime.compile,
        "threads": params.runtime.threads,
        "device": params.runtime.device,
        **{s: getattr(params, s).model_dump() for s in sections},
    }
    return Resume(Path(out_dir) / RESUME_FILE, params.runtime.checkpoint_every, identity)


class TrainingStage:
    """One run of a training stage in out_dir, the plumbing its module need not repeat: removes an
    earlier run's outputs, seeds torch, trains with resume checkpoints (`fit`), then writes
    train_log.csv, metrics.json and, last, the checkpoint the next stage reads (`save`), and drops the
    resume checkpoint (`done`). `extra_outputs` are the stage's other files (cleared with the rest)."""

    def __init__(
        self,
        params,
        stage: str,
        env: str,
        seed: int,
        out_dir: Path,
        checkpoint: str,
        sections: tuple[str, ...],
        extra_outputs: tuple[str, ...] = (),
    ):
        self.stage, self.env, self.seed, self.out_dir = stage, env, seed, Path(out_dir)
        self.checkpoint = checkpoint
        clear_outputs(self.out_dir, (*extra_outputs, checkpoint, "train_log.csv", "metrics.json"))
        self.gen = setup_torch(seed, params.runtime)
        self.resume = stage_resume(params, self.out_dir, stage, env, seed, sections)
        self.sec_per_update = float("nan")

    @property
    def desc(self) -> str:
        return f"{self.stage} {self.env} seed{self.seed}"

    def fit(
        self, agent, data: dict[str, torch.Tensor], loop, update=None, make_sampler=None, probe=None
    ) -> pd.DataFrame:
        """`fit` with this stage's generator, progress label and resume checkpoint: the training log."""
        train_log, self.sec_per_update = fit(
            agent,
            data,
            loop,
            self.gen,
            self.desc,
            update=update,
            resume=self.resume,
            make_sampler=make_sampler,
            probe=probe,
        )
        return train_log

    def save(self, agent, kind: str, config, act_dim: int, train_log: pd.DataFrame, metrics: dict) -> dict:
        """train_log.csv, metrics.json (plus ms_per_update), then the checkpoint (what the next stage
        reads). Returns the metrics as written."""
        metrics = {**metrics, "ms_per_update": 1000 * self.sec_per_update}
        write_csv_atomic(train_log, self.out_dir / "train_log.csv")
        write_json_atomic(metrics, self.out_dir / "metrics.json")
        save_agent(self.out_dir / self.checkpoint, kind, agent, config, self.env, self.seed, act_dim)
        return metrics

    def done(self) -> None:
        """All outputs are written: the resume checkpoint is no longer needed."""
        self.resume.clear()
        log.info("%s: %.2f ms/update", self.desc, 1000 * self.sec_per_update)


def check_finite_parameters(module: torch.nn.Module, what: str) -> None:
    for name, p in module.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise NonFiniteLossError(f"{what}: parameter {name} contains NaN or inf; not saving a checkpoint")


def labelled_tensors(dataset_root: Path, labels_path: Path) -> dict[str, torch.Tensor]:
    """Dataset (s, a) with the label stage's advantages and labels, checked to line up."""
    from pipeline_steps.core.episodes import DatasetError, load_transitions

    tr = load_transitions(dataset_root)
    with np.load(labels_path) as z:
        adv, opt = z["advantages"], z["optimal"]
    if len(adv) != len(tr) or len(opt) != len(tr):
        raise DatasetError(
            f"{labels_path}: {len(adv)} labels for {len(tr)} transitions of {dataset_root}; "
            "rerun the label stage"
        )
    return {
        "observations": torch.from_numpy(tr.observations),
        "actions": torch.from_numpy(tr.actions),
        "advantages": torch.from_numpy(adv.astype(np.float32)),
        "optimal": torch.from_numpy(opt.astype(bool)),
    }


def final_metrics(train_log) -> dict:
    """The last row of a per-1/beta training log as metrics (actor/loss/inv_beta=3 -> loss_inv_beta=3)."""
    final = train_log.iloc[-1].to_dict()
    return {k.removeprefix("actor/").replace("/", "_"): v for k, v in final.items() if k != "step"}
