"""OGBench data, made here or downloaded, for both halves: the goal-conditioned datasets (gc_dataset
stage) and the single-task offline-RL ones (dataset stage, paper Table 2: the same files relabelled
with a task's rewards and terminals).

- generate: OGBench's published recipes, made here with the scripted noisy oracles that ship in the
  package. pointmaze (`navigate`, `stitch`): the noisy maze oracle of oracle.py; navigate draws a new
  goal (a non-corridor cell) on every success. cube / scene / puzzle (`play`, `noisy`): OGBench's
  generate_manipspace.py, the env in data_collection mode; the oracle of the current target task
  (`info['privileged/target_task']`: cube, button, drawer or window) acts, play with the plan oracles
  (manip_noise / manip_noise_smoothing), noisy with the Markov oracles plus per-episode Gaussian
  noise (xi ~ U(0, manip_noise)) and random actions (commands.sh's p_random_action); a new target
  whenever the oracle is done; scene episodes failing OGBench's health check are made again.
  Seeded (OGBench's own generators seed nothing): the same params give byte-identical arrays.
- download: `{base_url}/<name>-v0.npz` and `<name>-v0-val.npz` (download.py), checked (OGBench's keys,
  consistent lengths, finite values).
- OGBench's file format <-> episodes (`to_ogbench`, `from_ogbench`): files read unchanged by
  `ogbench.load_dataset`.

OGBench's recipes (episodes x steps per episode, + 1/10 for validation): pointmaze medium / large /
teleport navigate 1000 x 1001, giant navigate 500 x 2001, stitch 5000 x 201; cube-single / -double,
scene, puzzle-3x3 / -4x4 play and noisy 1000 x 1001, puzzle-4x5 3000 x 1001, puzzle-4x6 5000 x 1001.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline_steps.core.episodes import DatasetError, Episode
from pipeline_steps.core.io import atomic_output
from pipeline_steps.core.params import GcDatasetParams
from pipeline_steps.datasets.download import download
from pipeline_steps.datasets.oracle import MemoSubgoal, noisy_oracle_action
from pipeline_steps.envs import names, ogbench_gc, ogbench_single

log = logging.getLogger(__name__)

OGBENCH_KEYS = ("observations", "actions", "terminals")  # what every OGBench file has
INFO_KEYS = ("qpos", "qvel", "button_states")  # per-state extras (button_states: scene / puzzle)


# --------------------------------------------------------------------------------------------
# generate: OGBench's recipes with the package's oracles, seeded
# --------------------------------------------------------------------------------------------
def maze_cells(maze_map: np.ndarray) -> tuple[list, list]:
    """All free cells, and the free cells that are not corridor cells (OGBench's goal cells)."""
    all_cells, vertex_cells = [], []
    for i in range(maze_map.shape[0]):
        for j in range(maze_map.shape[1]):
            if maze_map[i, j]:
                continue
            all_cells.append((i, j))
            vertical = maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0 and maze_map[i, j - 1] == 1
            vertical = vertical and maze_map[i, j + 1] == 1
            horizontal = maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0 and maze_map[i - 1, j] == 1
            horizontal = horizontal and maze_map[i + 1, j] == 1
            if not (vertical or horizontal):
                vertex_cells.append((i, j))
    return all_cells, vertex_cells


def cells_at_distance(maze_map: np.ndarray, start: tuple[int, int], steps: int) -> list:
    """Free cells exactly `steps` BFS moves from `start` (the stitch recipe's goal cells)."""
    dist = {start: 0}
    queue = [start]
    while queue:
        i, j = queue.pop(0)
        for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            c = (i + di, j + dj)
            if c not in dist and maze_map[c] == 0:
                dist[c] = dist[(i, j)] + 1
                queue.append(c)
    return [c for c, d in dist.items() if d == steps]


def record(observations, actions, infos, ob, action, info) -> None:
    """Append one step: the state before it (as OGBench stores rows) and the action taken."""
    observations.append(ob)
    actions.append(np.asarray(action, np.float32))
    for k in INFO_KEYS:
        if f"prev_{k}" in info:
            infos.setdefault(k, []).append(info[f"prev_{k}"])


def finish(observations, actions, infos, last_ob, last_info) -> Episode:
    """An Episode from the recorded rows plus the final state (so every row has a next state)."""
    T = len(actions)
    return Episode(
        observations=np.stack([*observations, last_ob]).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        rewards=np.zeros(T),
        terminations=np.zeros(T, bool),
        truncations=np.arange(T) == T - 1,
        infos={k: np.stack([*v, last_info[k]]) for k, v in infos.items()},
    )


def generate_maze(name: str, n_episodes: int, steps: int, noise: float, seed: int, bar) -> list[Episode]:
    """OGBench's pointmaze recipe (data_gen_scripts/generate_locomaze.py, the point oracle)."""
    _, kind = names.split_gc_name(name)
    if not name.startswith("pointmaze"):
        raise DatasetError(
            f"{name}: local generation needs OGBench's SAC expert networks (not shipped); use source download"
        )
    env = ogbench_gc.make_gc_env(name, terminate_at_goal=False, max_episode_steps=steps)
    maze = env.unwrapped
    np.random.seed(seed)  # OGBench's env (start / goal jitter, reset steps) draws from np.random
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)  # the data policy's own noise
    subgoal = MemoSubgoal(maze)
    all_cells, vertex_cells = maze_cells(maze.maze_map)
    episodes = []
    for ep_idx in range(n_episodes):
        init_ij = all_cells[rng.integers(len(all_cells))]
        if kind == "stitch":
            near = cells_at_distance(maze.maze_map, init_ij, 4)
            goal_ij = near[rng.integers(len(near))] if near else init_ij
        else:
            goal_ij = vertex_cells[rng.integers(len(vertex_cells))]
        reset_seed = seed if ep_idx == 0 else None  # one seeded stream for the whole dataset
        ob, info = env.reset(seed=reset_seed, options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij)))
        observations, actions, infos = [], [], {}
        done = False
        while not done:
            action = noisy_oracle_action(subgoal, maze.get_xy(), maze.cur_goal_xy, noise, rng)
            next_ob, _, terminated, truncated, info = env.step(action)
            record(observations, actions, infos, ob, action, info)
            done = terminated or truncated
            if info["success"] and kind == "navigate":
                maze.set_goal(vertex_cells[rng.integers(len(vertex_cells))])
            ob = next_ob
            bar.update(1)
        episodes.append(finish(observations, actions, infos, ob, info))
    env.close()
    return episodes


# OGBench's data_gen_scripts/commands.sh: the noisy datasets' --p_random_action (play: 0), and the
# script's --min_norm default (the Markov oracles' minimum action norm)
P_RANDOM_ACTION = {"cube": 0.1, "scene": 0.1, "puzzle": 0.2}
MARKOV_MIN_NORM = 0.4


def manip_oracles(env, family: str, kind: str, noise: float, smoothing: float) -> dict:
    """OGBench's oracles per target task (`info['privileged/target_task']`): plan oracles for `play`,
    Markov (closed-loop) oracles for `noisy`, as generate_manipspace.py builds them."""
    from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
    from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    if kind == "play":
        plan = dict(env=env, noise=noise, noise_smoothing=smoothing)
        if family == "cube":
            return {"cube": CubePlanOracle(**plan)}
        if family == "scene":
            return {
                "cube": CubePlanOracle(**plan),
                "button": ButtonPlanOracle(**plan),
                "drawer": DrawerPlanOracle(**plan),
                "window": WindowPlanOracle(**plan),
            }
        return {"button": ButtonPlanOracle(**plan, gripper_always_closed=True)}
    markov = dict(env=env, min_norm=MARKOV_MIN_NORM)
    if family == "cube":
        return {"cube": CubeMarkovOracle(**markov)}
    if family == "scene":
        return {
            "cube": CubeMarkovOracle(**markov, max_step=100),
            "button": ButtonMarkovOracle(**markov),
            "drawer": DrawerMarkovOracle(**markov),
            "window": WindowMarkovOracle(**markov),
        }
    return {"button": ButtonMarkovOracle(**markov, gripper_always_closed=True)}


def stack_probability(base: str) -> float:
    """The episode's cube-stacking probability for set_new_target (drawn from np.random where the
    script draws it; scene and puzzle: 0.5, no draw)."""
    if "single" in base:
        return 0.0
    for word, (lo, hi) in (
        ("double", (0.0, 0.25)),
        ("triple", (0.05, 0.35)),
        ("quadruple", (0.1, 0.5)),
        ("octuple", (0.0, 0.35)),
    ):
        if word in base:
            return np.random.uniform(lo, hi)
    return 0.5


def scene_is_healthy(qpos: np.ndarray) -> bool:
    """OGBench's scene health check: the cube stays visible unless it is in the drawer (so test-time
    goal images are unambiguous); an unhealthy episode is dropped and generated again."""
    block = qpos[:, 14:17]
    too_right = (block[:, 1] >= 0.29).any()
    too_left = ((block[:, 1] <= -0.3) & ((block[:, 2] < 0.06) | (block[:, 2] > 0.08))).any()
    return not (too_right or too_left)


def generate_manip(
    name: str, n_episodes: int, steps: int, noise: float, smoothing: float, seed: int, bar
) -> list[Episode]:
    """OGBench's manipulation recipes (data_gen_scripts/generate_manipspace.py) for cube, scene and
    puzzle, `play` and `noisy`: the env in mode='data_collection' with terminate_at_goal=False; the
    oracle of the current target task acts (noisy: Markov oracle + N(0, xi^2 [1, 1, 1, 3, 10]) with
    xi ~ U(0, noise) per episode, and a random action with probability P_RANDOM_ACTION); whenever the
    oracle is done, set_new_target draws the next target and its task's oracle takes over. scene
    episodes failing the health check are generated again, as OGBench does."""
    base, kind = names.split_gc_name(name)
    family = base.split("-")[0]
    if family not in ("cube", "scene", "puzzle") or kind not in ("play", "noisy"):
        raise DatasetError(
            f"{name}: local generation covers pointmaze and cube / scene / puzzle play and noisy; "
            "use source download"
        )
    env = ogbench_gc.make_gc_env(
        name, terminate_at_goal=False, mode="data_collection", max_episode_steps=steps
    )
    np.random.seed(seed)  # OGBench's env and oracles draw from np.random
    env.action_space.seed(seed)  # the noisy recipe's random actions
    agents = manip_oracles(env, family, kind, noise, smoothing)
    p_random = P_RANDOM_ACTION[family] if kind == "noisy" else 0.0
    episodes, reset_seed, unhealthy = [], seed, 0
    while len(episodes) < n_episodes:
        ob, info = env.reset(seed=reset_seed)
        reset_seed = None  # one seeded stream for the whole dataset
        p_stack = stack_probability(base)
        if kind == "noisy":
            xi = np.random.uniform(0, noise)
        agent = agents[info["privileged/target_task"]]
        agent.reset(ob, info)
        observations, actions, infos = [], [], {}
        done = False
        while not done:
            if np.random.rand() < p_random:  # drawn on every step, as the script does (play: never true)
                action = env.action_space.sample()
            else:
                action = np.array(agent.select_action(ob, info))
                if kind == "noisy":
                    action = action + np.random.normal(0, [xi, xi, xi, xi * 3, xi * 10], action.shape)
            action = np.clip(action, -1.0, 1.0)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if agent.done:  # a new target, and the oracle of its task
                agent_ob, agent_info = env.unwrapped.set_new_target(p_stack=p_stack)
                agent = agents[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)
            record(observations, actions, infos, ob, action, info)
            ob = next_ob
            bar.update(1)
        if family == "scene" and not scene_is_healthy(np.stack(infos["qpos"])):
            unhealthy += 1
            bar.update(-len(actions))
            continue
        episodes.append(finish(observations, actions, infos, ob, info))
    if unhealthy:
        log.info("%s: %d unhealthy episodes generated again (OGBench's scene health check)", name, unhealthy)
    env.close()
    return episodes


def generate(name: str, cfg: GcDatasetParams) -> list[Episode]:
    """episodes + episodes // 10 (at least 1) episodes of `episode_steps` steps: train, then validation."""
    g = cfg.generate
    n = g.episodes + max(1, g.episodes // 10)
    with tqdm(total=n * g.episode_steps, desc=f"generate {name}", unit="step", mininterval=2.0) as bar:
        if names.is_maze(name):
            return generate_maze(name, n, g.episode_steps, g.maze_noise, cfg.seed, bar)
        return generate_manip(name, n, g.episode_steps, g.manip_noise, g.manip_noise_smoothing, cfg.seed, bar)


# --------------------------------------------------------------------------------------------
# OGBench's file format <-> episodes
# --------------------------------------------------------------------------------------------
def to_ogbench(episodes: list[Episode]) -> dict[str, np.ndarray]:
    """OGBench's arrays: one row per recorded step (the state before it, its action), terminals 1 on
    the last row of each episode, button_states int64, the rest float32 (as OGBench's generators
    write them)."""
    out = {
        "observations": np.concatenate([ep.observations[:-1] for ep in episodes]).astype(np.float32),
        "actions": np.concatenate([ep.actions for ep in episodes]).astype(np.float32),
        "terminals": np.concatenate([np.arange(len(ep.actions)) == len(ep.actions) - 1 for ep in episodes]),
    }
    for k in episodes[0].infos or {}:
        dtype = np.int64 if k == "button_states" else np.float32
        out[k] = np.concatenate([ep.infos[k][:-1] for ep in episodes]).astype(dtype)
    return out


def from_ogbench(path: Path) -> list[Episode]:
    """Episodes of an OGBench .npz file, checked: a readable npz with OGBench's keys and qpos, arrays of
    one length, terminals ending every episode, finite values. An episode of L rows has L - 1
    transitions (the last row's action has no next state)."""
    try:
        with np.load(path) as z:
            keys = set(z.files)
            missing = [k for k in (*OGBENCH_KEYS, "qpos") if k not in keys]
            if missing:
                raise DatasetError(
                    f"{path}: not an OGBench dataset, missing keys {missing} (has {sorted(keys)})"
                )
            arrays = {k: z[k] for k in (*OGBENCH_KEYS, *INFO_KEYS) if k in keys}
    except DatasetError:
        raise
    except Exception as err:  # zipfile / pickle errors of a truncated or foreign file
        raise DatasetError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err
    n = len(arrays["observations"])
    lengths = {k: len(v) for k, v in arrays.items()}
    if n == 0 or any(v != n for v in lengths.values()):
        raise DatasetError(f"{path}: arrays of different or zero lengths {lengths}")
    terminals = arrays["terminals"].astype(bool)
    if not terminals[-1]:
        raise DatasetError(f"{path}: the last row is not terminal (truncated file?)")
    ends = np.flatnonzero(terminals) + 1
    starts = np.concatenate([[0], ends[:-1]])
    if np.any(ends - starts < 2):
        raise DatasetError(f"{path}: an episode with fewer than 2 rows")
    for k in ("observations", "actions"):
        if not np.all(np.isfinite(arrays[k])):
            raise DatasetError(f"{path}: {k} contain NaN or inf")
    infos = [k for k in INFO_KEYS if k in arrays]
    return [
        Episode(
            observations=arrays["observations"][s:e].astype(np.float32),
            actions=arrays["actions"][s : e - 1].astype(np.float32),
            rewards=np.zeros(e - 1 - s),
            terminations=np.zeros(e - 1 - s, bool),
            truncations=np.arange(e - 1 - s) == e - 2 - s,
            infos={k: arrays[k][s:e] for k in infos},
        )
        for s, e in zip(starts, ends)
    ]


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_output(path) as f:
        np.savez_compressed(f, **arrays)


def download_files(name: str, cfg: GcDatasetParams) -> tuple[list[Episode], list[Path]]:
    """Fetch and check `<name>-v0.npz` and `-val.npz`, kept in cache_dir once complete (as the ExORL path:
    a failed or cut download leaves nothing; a complete file whose content is wrong stays cached, as a
    retry would fetch the same bytes, and the error names it so it can be deleted)."""
    files = []
    for suffix in ("", "-val"):
        fname = f"{ogbench_gc.dataset_name(name)}{suffix}.npz"
        dest = download(f"{cfg.download.base_url.rstrip('/')}/{fname}", Path(cfg.download.cache_dir) / fname)
        episodes = from_ogbench(dest)
        files.append(dest)
        if not suffix:
            train = episodes
    return train, files


# --------------------------------------------------------------------------------------------
# single-task offline RL (paper Table 2): the data relabelled for one task
# --------------------------------------------------------------------------------------------
def singletask(env_name: str, cfg: GcDatasetParams) -> list[Episode]:
    """The training episodes of the env's OGBench dataset from dataset.ogbench's source (generated with
    OGBench's oracles, or downloaded), with OGBench's single-task rewards and terminals: reward[t] and
    terminations[t] (mask 0) of transition t are those of its state s_t (envs/ogbench_single.py). A success
    does not end a stored episode (the data policy moves on), so terminations can be set mid-episode."""
    name, _ = names.split_singletask_name(env_name)
    if cfg.source == "generate":
        episodes = generate(name, cfg)[: cfg.generate.episodes]  # the rest is validation
    else:
        episodes, _ = download_files(name, cfg)
    env = ogbench_single.make_env(env_name)
    for ep in tqdm(episodes, desc=f"relabel {env_name}", unit="ep", mininterval=2.0):
        ep.rewards, ep.terminations = ogbench_single.relabel(
            env_name, env, {k: v[:-1] for k, v in ep.infos.items()}
        )
    env.close()
    return episodes
