"""Dataset plumbing: episodes in memory, Minari (HDF5) on disk, flat transitions for training.

On disk a dataset is a Minari datasets root (`data/dataset/<env>/minari/`) holding exactly one
dataset `cfgrl/<env>/<source>-v0`; `MINARI_DATASETS_PATH=data/dataset/<env>/minari minari list local`
shows it. Per episode: observations [T+1, O] float32, actions [T, A] float32, rewards [T] float64,
terminations / truncations [T], and `infos/physics` [T+1, P] float64 (the MuJoCo state after reset
and after every step) where the source has it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A dataset (or its source) is missing, malformed or inconsistent; the message says how."""


@dataclass
class Episode:
    observations: np.ndarray  # [T+1, O] float32
    actions: np.ndarray  # [T, A] float32
    rewards: np.ndarray  # [T] float64
    terminations: np.ndarray  # [T] bool
    truncations: np.ndarray  # [T] bool
    physics: np.ndarray | None = None  # [T+1, P] float64
    seed: int | None = None  # reset seed, where the source knows it
    infos: dict[str, np.ndarray] | None = None  # other per-state arrays [T+1, ...] (OGBench: qpos, qvel)

    def __post_init__(self):
        T = len(self.actions)
        for name, arr, n in (
            [
                ("observations", self.observations, T + 1),
                ("rewards", self.rewards, T),
                ("terminations", self.terminations, T),
                ("truncations", self.truncations, T),
            ]
            + ([("physics", self.physics, T + 1)] if self.physics is not None else [])
            + [(f"infos/{k}", v, T + 1) for k, v in (self.infos or {}).items()]
        ):
            if len(arr) != n:
                raise DatasetError(
                    f"episode arrays disagree: {name} has length {len(arr)}, expected {n} (actions has {T})"
                )
        if T == 0:
            raise DatasetError("episode with zero steps")
        for name in ("observations", "actions", "rewards"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise DatasetError(f"episode {name} contain NaN or inf")

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())

    @classmethod
    def from_steps(cls, observations, actions, rewards, physics, terminated, truncated, seed=None) -> Episode:
        """From per-step lists of an env rollout (T+1 observations / physics, T actions / rewards) and
        how it ended; only the last step carries the termination / truncation flag."""
        last = np.arange(len(actions)) == len(actions) - 1  # [T]
        return cls(
            observations=np.stack(observations),
            actions=np.stack(actions).astype(np.float32),
            rewards=np.asarray(rewards, np.float64),
            terminations=last & bool(terminated),
            truncations=last & bool(truncated),
            physics=np.stack(physics),
            seed=seed,
        )

    @classmethod
    def from_minari(cls, ep) -> Episode:
        """From a minari EpisodeData (physics taken from infos where present)."""
        infos = dict(ep.infos or {})
        physics = infos.pop("physics", None)
        return cls(
            observations=np.asarray(ep.observations, np.float32),
            actions=np.asarray(ep.actions, np.float32),
            rewards=np.asarray(ep.rewards, np.float64),
            terminations=np.asarray(ep.terminations, bool),
            truncations=np.asarray(ep.truncations, bool),
            physics=np.asarray(physics, np.float64) if physics is not None else None,
            infos={k: np.asarray(v) for k, v in infos.items()} or None,
        )


@dataclass
class Transitions:
    """Flat arrays over all episodes (the layout training reads)."""

    observations: np.ndarray  # [N, O] float32
    actions: np.ndarray  # [N, A] float32
    rewards: np.ndarray  # [N] float32
    next_observations: np.ndarray  # [N, O] float32
    masks: np.ndarray  # [N] float32, 0 where the episode terminated (never for dm_control)
    episode_index: np.ndarray  # [N] int64
    episode_returns: np.ndarray  # [n_episodes] float64

    def __len__(self) -> int:
        return len(self.actions)


def dataset_id(env_name: str, source: str) -> str:
    return f"cfgrl/{env_name}/{source}-v0"


@contextlib.contextmanager
def _minari_root(root: Path):
    """Point Minari (which reads MINARI_DATASETS_PATH at call time) at `root` for a block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())  # Minari mangles relative roots
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def episode_infos(ep: Episode) -> dict[str, np.ndarray] | None:
    """The per-state arrays an episode stores as Minari infos: physics and any other infos."""
    infos = {"physics": ep.physics.astype(np.float64)} if ep.physics is not None else {}
    return {**infos, **(ep.infos or {})} or None


def write_minari(
    episodes: list[Episode],
    env_name: str,
    source: str,
    root: Path,
    description: str,
    gym_id: str | None = None,
) -> Path:
    """Write `episodes` as one Minari dataset under `root`, atomically: all or nothing. The env is the
    pipeline's registered dm_control env of `env_name` unless `gym_id` names another (e.g. OGBench's)."""
    import minari
    from minari.data_collector import EpisodeBuffer

    from pipeline_steps.envs.dmc import env_id, make_env

    root = Path(root)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = None
    try:
        env = make_env(env_name) if gym_id is None else None
        gym_id = gym_id or env_id(env_name)
        buffers = [
            EpisodeBuffer(
                id=i,
                seed=ep.seed,
                observations=ep.observations.astype(np.float32),
                actions=ep.actions.astype(np.float32),
                rewards=ep.rewards.astype(np.float64),
                terminations=ep.terminations.astype(bool),
                truncations=ep.truncations.astype(bool),
                infos=episode_infos(ep),
            )
            for i, ep in enumerate(episodes)
        ]
        with _minari_root(tmp), warnings.catch_warnings():
            # Minari asks for contact metadata a locally made dataset does not have (a commit link would
            # change the dataset's bytes, and so its DVC hash, at every commit)
            warnings.filterwarnings(
                "ignore", r"`(code_permalink|author|author_email)` is set to None", UserWarning
            )
            minari.create_dataset_from_buffers(
                dataset_id=dataset_id(env_name, source),
                buffer=buffers,
                env=gym_id,
                eval_env=gym_id,
                algorithm_name=source,
                description=description,
                data_format="hdf5",
            )
    except BaseException:  # no half-written dataset is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if env is not None:
            env.close()
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def find_dataset_dir(root: Path) -> Path:
    """The single `<id>/data` directory under a Minari root written by `write_minari`."""
    hits = sorted(Path(root).glob("**/data/main_data.hdf5"))
    if len(hits) != 1:
        raise DatasetError(f"{root}: expected exactly one Minari dataset, found {len(hits)}")
    return hits[0].parent


def read_episodes(root: Path) -> list[Episode]:
    """Read every episode of the dataset under `root`, in order."""
    import minari

    data_dir = find_dataset_dir(root)
    try:
        # minari opens the HDF5 file lazily: a truncated file fails while iterating, not at open
        raw = list(minari.MinariDataset(data_dir).iterate_episodes())
    except Exception as err:  # h5py / json errors for a truncated or foreign file
        raise DatasetError(
            f"{data_dir}: not a readable Minari dataset ({type(err).__name__}: {err})"
        ) from err
    return [Episode.from_minari(ep) for ep in raw]


def to_transitions(episodes: list[Episode]) -> Transitions:
    """Concatenate episodes into (s, a, r, s', mask) arrays."""
    obs = np.concatenate([ep.observations[:-1] for ep in episodes]).astype(np.float32)
    next_obs = np.concatenate([ep.observations[1:] for ep in episodes]).astype(np.float32)
    return Transitions(
        observations=obs,
        actions=np.concatenate([ep.actions for ep in episodes]).astype(np.float32),
        rewards=np.concatenate([ep.rewards for ep in episodes]).astype(np.float32),
        next_observations=next_obs,
        masks=1.0 - np.concatenate([ep.terminations for ep in episodes]).astype(np.float32),
        episode_index=np.concatenate([np.full(len(ep.actions), i) for i, ep in enumerate(episodes)]),
        episode_returns=np.array([ep.ret for ep in episodes]),
    )


def load_transitions(root: Path) -> Transitions:
    return to_transitions(read_episodes(root))


def dataset_stats(episodes: list[Episode]) -> dict:
    returns = np.array([ep.ret for ep in episodes])
    return {
        "transitions": int(sum(len(ep.actions) for ep in episodes)),
        "episodes": len(episodes),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
    }
