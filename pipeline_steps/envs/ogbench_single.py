"""OGBench single-task offline RL (paper Table 2, method.md §9): the offline-RL half on OGBench data.

An env is named as OGBench names its single-task datasets, without the version:
`<dataset>-singletask` (the env's default task) or `<dataset>-singletask-task<k>` (k = 1..5), e.g.
`pointmaze-large-navigate-singletask` -> env `pointmaze-large-singletask-v0` on the dataset
`pointmaze-large-navigate-v0`. The data are OGBench's files (params dataset.ogbench, made as the
gc_dataset stage makes them: generated here with OGBench's oracles, or downloaded), relabelled with
rewards and terminals of the env's task by OGBench's own `relabel_utils.relabel_dataset`: for a transition
(s_t, a_t, s_t+1) the reward and success are those of s_t (ogbench >= 1.2: the singletask envs use
`success_timing='pre'`, so the env's own step reward is computed on the state before the action),
reward = (number of satisfied subgoals) - (number of subgoals) (mazes: success - 1), and the
transition is terminal (mask 0) where s_t is a success. Episodes end at success
(`terminate_at_goal`) or at the time limit (pointmaze 1000, cube 200, scene 750, puzzle-3x3 500
steps); the reported metric is the success rate, `info['success']` at the episode's last step.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from pipeline_steps.envs import ogbench_gc
from pipeline_steps.envs.names import split_gc_name, split_singletask_name


def gym_id(name: str) -> str:
    """OGBench's env id, e.g. 'pointmaze-large-navigate-singletask-task2' ->
    'pointmaze-large-singletask-task2-v0'."""
    import ogbench  # noqa: F401  (registers the envs: the id is one gymnasium knows)

    dataset, task = split_singletask_name(name)
    base, _ = split_gc_name(dataset)
    return f"{base}-singletask{f'-task{task}' if task else ''}-v0"


class SingleTaskEnv(gymnasium.Wrapper):
    """float32 observations (OGBench's are float64); rewards, terminations, truncations and
    info['success'] as OGBench's env returns them."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        shape = env.observation_space.shape
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return np.asarray(obs, np.float32), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(np.clip(action, -1.0, 1.0))
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info


def make_env(name: str) -> SingleTaskEnv:
    """The OGBench single-task env of `name` (its temp maze XML removed, see ogbench_gc.py)."""
    import ogbench  # noqa: F401  (registers the envs)

    return SingleTaskEnv(ogbench_gc.drop_temp_xml(gymnasium.make(gym_id(name))))


def relabel(name: str, env: gymnasium.Env, infos: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rewards [N] and success flags [N] of N stored states (qpos [N, Q], button_states [N, B] where the
    env has buttons) for `name`'s task: OGBench's relabel_dataset (which resets `env` to set the task)."""
    from ogbench.relabel_utils import relabel_dataset

    dataset = {k: np.asarray(v) for k, v in infos.items() if k in ("qpos", "button_states")}
    relabel_dataset(gym_id(name), env.unwrapped, dataset)
    return dataset["rewards"].astype(np.float64), dataset["masks"] == 0.0
