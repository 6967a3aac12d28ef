"""The noisy maze oracle that makes OGBench's pointmaze data (OGBench's data_gen_scripts/
generate_locomaze.py, the point oracle), in one place: the dataset generator acts with it, and the
goal-conditioned evaluation runs it as the "data policy" ceiling, so the ceiling is the data's policy.

The action is the unit direction from the agent's xy to the oracle subgoal (`get_oracle_subgoal`, a BFS
over maze cells, memoised per (cell, goal cell): the same arrays, several times faster) plus
N(0, noise^2) per dim, clipped to [-1, 1].
"""

from __future__ import annotations

import numpy as np


class MemoSubgoal:
    """env.get_oracle_subgoal(xy, goal_xy), which runs a Python BFS on every call, memoised: its result
    depends on the cells of xy and goal_xy only."""

    def __init__(self, maze_env):
        self.env, self.cache = maze_env, {}

    def __call__(self, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
        key = (self.env.xy_to_ij(xy), self.env.xy_to_ij(goal_xy))
        if key not in self.cache:
            self.cache[key] = self.env.get_oracle_subgoal(xy, goal_xy)[0]
        return self.cache[key]


def noisy_oracle_action(
    subgoal: MemoSubgoal, xy: np.ndarray, goal_xy: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """The oracle's action [2] at xy towards goal_xy: unit direction to the subgoal plus N(0, noise^2)."""
    direction = subgoal(xy, goal_xy) - xy
    direction = direction / (np.linalg.norm(direction) + 1e-6)
    return np.clip(direction + rng.normal(0.0, noise, 2), -1.0, 1.0)
