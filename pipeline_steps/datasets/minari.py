"""Any Minari dataset id (params `dataset.minari`), via `minari.load_dataset(id, download=True)`, checked
to fit the env (flat observations, actions in [-1, 1])."""

from __future__ import annotations

import numpy as np

from pipeline_steps.core.episodes import DatasetError, Episode
from pipeline_steps.core.params import MinariSource
from pipeline_steps.envs.dmc import make_env


def from_minari(env_name: str, cfg: MinariSource) -> list[Episode]:
    import minari

    dataset_id = cfg.dataset_ids[env_name]
    ds = minari.load_dataset(dataset_id, download=True)
    env = make_env(env_name)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    obs_space, act_space = ds.observation_space, ds.action_space
    if getattr(obs_space, "shape", None) != (obs_dim,) or getattr(act_space, "shape", None) != (act_dim,):
        raise DatasetError(
            f"Minari dataset {dataset_id!r} has observation space {obs_space} and action space {act_space}; "
            f"{env_name} needs flat observations ({obs_dim},) and actions ({act_dim},)"
        )
    episodes = []
    for ep in ds.iterate_episodes():
        episode = Episode.from_minari(ep)
        if np.abs(episode.actions).max() > 1.0 + 1e-6:
            raise DatasetError(f"Minari dataset {dataset_id!r} episode {ep.id}: actions outside [-1, 1]")
        episodes.append(episode)
    return episodes
