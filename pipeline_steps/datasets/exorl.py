"""ExORL data (params `dataset.exorl`): download `{base_url}/{domain}/{method}.zip`, read its
`buffer/episode_*.npz`, and relabel rewards for the task from the stored physics states (method.md §5)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline_steps.core.episodes import DatasetError, Episode
from pipeline_steps.core.params import ExorlSource
from pipeline_steps.datasets.download import download
from pipeline_steps.envs.dmc import FlatDmControl, make_env
from pipeline_steps.envs.names import split_env_name

EXORL_KEYS = ("observation", "action", "reward", "discount", "physics")
_EPISODE_RE = re.compile(r"(?:^|/)buffer/episode_(\d+)_(\d+)\.npz$")


def relabel_rewards(env: FlatDmControl, physics: np.ndarray) -> np.ndarray:
    """Task reward of every physics state [T+1, P] -> [T+1] (method.md §5)."""
    n_state = env.physics.get_state().shape[0]
    if physics.ndim != 2 or physics.shape[1] != n_state:
        raise DatasetError(f"physics states have shape {physics.shape}, env expects [T, {n_state}]")
    rewards = np.empty(len(physics))
    for i, p in enumerate(physics):
        with env.physics.reset_context():
            env.physics.set_state(p)
        rewards[i] = env.task.get_reward(env.physics)
    return rewards


def read_exorl_zip(archive: Path, env_name: str, max_episodes: int = 0) -> list[Episode]:
    """Episodes of an ExORL archive with rewards relabelled for `env_name`'s task."""
    env = make_env(env_name)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    with zipfile.ZipFile(archive) as z:
        members = sorted(
            ((int(m.group(1)), name) for name in z.namelist() if (m := _EPISODE_RE.search(name))),
        )
        if not members:
            raise DatasetError(f"{archive}: no buffer/episode_*.npz files")
        if max_episodes:
            members = members[:max_episodes]
        episodes = []
        for _, name in tqdm(members, desc=f"relabel {env_name}", unit="ep"):
            with np.load(io.BytesIO(z.read(name))) as npz:
                missing = [k for k in EXORL_KEYS if k not in npz.files]
                if missing:
                    raise DatasetError(f"{archive}:{name}: missing keys {missing} (has {npz.files})")
                ep = {k: npz[k] for k in EXORL_KEYS}
            lengths = {k: len(v) for k, v in ep.items()}
            if len(set(lengths.values())) != 1:
                raise DatasetError(f"{archive}:{name}: arrays of different lengths {lengths}")
            if ep["observation"].shape[1:] != (obs_dim,) or ep["action"].shape[1:] != (act_dim,):
                raise DatasetError(
                    f"{archive}:{name}: observation {ep['observation'].shape} / action {ep['action'].shape} "
                    f"do not fit {env_name} (obs {obs_dim}, action {act_dim})"
                )
            # index 0 is a dummy step: transitions are (obs[i], action[i+1], reward(physics[i+1]), obs[i+1])
            rewards = relabel_rewards(env, ep["physics"].astype(np.float64))[1:]
            T = len(rewards)
            episodes.append(
                Episode(
                    observations=ep["observation"].astype(np.float32),
                    actions=ep["action"][1:].astype(np.float32),
                    rewards=rewards,
                    terminations=np.zeros(T, bool),
                    truncations=np.arange(T) == T - 1,
                    physics=ep["physics"].astype(np.float64),
                )
            )
    env.close()
    return episodes


def exorl(env_name: str, cfg: ExorlSource) -> list[Episode]:
    domain, _ = split_env_name(env_name)
    url = f"{cfg.base_url.rstrip('/')}/{domain}/{cfg.method}.zip"
    archive = download(url, Path(cfg.cache_dir) / domain / f"{cfg.method}.zip")
    return read_exorl_zip(archive, env_name, cfg.max_episodes)
