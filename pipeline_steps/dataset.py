"""Stage `dataset`: build the offline dataset of one env as a Minari (HDF5) dataset.

Sources (params `dataset.source`):
- `collect`: roll out a behaviour policy in the env (offline, seeded, byte-for-byte reproducible).
- `exorl`:   download `{base_url}/{domain}/{method}.zip`, read `buffer/episode_*.npz`, and relabel
             rewards for the task from the stored physics states (method.md §5).
- `minari`:  any Minari dataset id, via `minari.load_dataset(id, download=True)`.
An OGBench single-task env (`<dataset>-singletask[-task<k>]`, ogbench_tasks.py) takes its data from
params `dataset.ogbench` instead (OGBench's files, generated with its oracles or downloaded, as the
gc_dataset stage makes them), relabelled with OGBench's single-task rewards and terminals.

Outputs: `data/dataset/<env>/minari/` (the dataset) and `data/dataset/<env>/stats.json` (DVC metrics).
"""

from __future__ import annotations

import http.client
import io
import logging
import re
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline_steps import ogbench_tasks, paths, stage
from pipeline_steps.config import CollectSource, ExorlSource, GcDatasetParams, MinariSource, Params
from pipeline_steps.data import (
    DatasetError,
    Episode,
    dataset_stats,
    remove_tree,
    write_json_atomic,
    write_minari,
)
from pipeline_steps.envs import FlatDmControl, episode_seed, make_env, split_env_name

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# collect: behaviour policies rolled out in the env
# --------------------------------------------------------------------------------------------
def rollout(env: FlatDmControl, policy, seed: int) -> Episode:
    """One episode; `policy(obs) -> action` in [-1, 1]. Records the physics state of every step."""
    obs, info = env.reset(seed=seed)
    observations, actions, rewards, physics = [obs], [], [], [info["physics"]]
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(policy(obs), np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        physics.append(info["physics"])
    return Episode.from_steps(observations, actions, rewards, physics, terminated, truncated, seed)


def uniform_policy(action_dim: int, rng: np.random.Generator):
    return lambda obs: rng.uniform(-1.0, 1.0, action_dim)


def correlated_policy(action_dim: int, rng: np.random.Generator, theta: float, sigma: float):
    """AR(1) noise with stationary std sigma: a_t = theta a_{t-1} + sqrt(1 - theta^2) sigma eps_t."""
    state = rng.normal(0.0, sigma, action_dim)

    def policy(obs):
        nonlocal state
        state = theta * state + np.sqrt(1.0 - theta**2) * sigma * rng.normal(size=action_dim)
        return np.clip(state, -1.0, 1.0)

    return policy


def collect(env_name: str, cfg: CollectSource, seed: int) -> list[Episode]:
    """Roll out the configured behaviour until at least `cfg.transitions` steps are collected."""
    if cfg.behaviour == "sac_replay":
        from pipeline_steps.algorithms.sac import collect_replay

        return collect_replay(env_name, cfg, seed)
    env = make_env(env_name)
    action_dim = env.action_space.shape[0]
    episodes, steps = [], 0
    with tqdm(total=cfg.transitions, desc=f"collect {env_name} ({cfg.behaviour})", unit="step") as bar:
        while steps < cfg.transitions:
            i = len(episodes)
            rng = np.random.default_rng([seed, i])
            if cfg.behaviour == "uniform":
                policy = uniform_policy(action_dim, rng)
            else:
                policy = correlated_policy(action_dim, rng, cfg.correlated.theta, cfg.correlated.sigma)
            ep = rollout(env, policy, episode_seed(seed, i))
            episodes.append(ep)
            steps += len(ep.actions)
            bar.update(len(ep.actions))
            bar.set_postfix(ret=f"{ep.ret:.1f}")
    env.close()
    return episodes


# --------------------------------------------------------------------------------------------
# exorl: download, read buffer/episode_*.npz, relabel rewards from physics
# --------------------------------------------------------------------------------------------
EXORL_KEYS = ("observation", "action", "reward", "discount", "physics")
_EPISODE_RE = re.compile(r"(?:^|/)buffer/episode_(\d+)_(\d+)\.npz$")


def download(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` unless already there; the file appears only once complete and a valid zip."""
    dest = Path(dest)
    if dest.exists():
        log.info("using finished download %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
            expected = resp.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            got = 0
            with tqdm(total=expected, desc=f"download {url}", unit="B", unit_scale=True) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and got != expected:
            raise DatasetError(f"download of {url} truncated: got {got} of {expected} bytes")
        if not zipfile.is_zipfile(part):
            raise DatasetError(f"download of {url} is not a zip archive ({got} bytes)")
        try:
            with zipfile.ZipFile(part) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # testzip only catches bad CRCs
            raise DatasetError(f"download of {url} is a corrupt zip: {err}") from None
        if bad is not None:
            raise DatasetError(f"download of {url} is a corrupt zip: member {bad} fails its CRC")
    except urllib.error.HTTPError as err:
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
    except (
        urllib.error.URLError,
        OSError,
        EOFError,
        http.client.HTTPException,
    ) as err:  # e.g. IncompleteRead
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} interrupted or unreachable: {err}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


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


# --------------------------------------------------------------------------------------------
# minari: any dataset id
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# OGBench single-task envs: OGBench data (dataset.ogbench), relabelled for the env's task
# --------------------------------------------------------------------------------------------
def ogbench_singletask(env_name: str, cfg: GcDatasetParams) -> list[Episode]:
    """The training episodes of the env's OGBench dataset from dataset.ogbench's source (generated with
    OGBench's oracles, or downloaded), with OGBench's single-task rewards and terminals: reward[t] and
    terminations[t] (mask 0) of transition t are those of its state s_t (ogbench_tasks.py). A success
    does not end a stored episode (the data policy moves on), so terminations can be set mid-episode."""
    from pipeline_steps import gc_dataset

    name, _ = ogbench_tasks.split_name(env_name)
    if cfg.source == "generate":
        episodes = gc_dataset.generate(name, cfg)[: cfg.generate.episodes]  # the rest is validation
    else:
        episodes, _ = gc_dataset.download(name, cfg)
    env = ogbench_tasks.make_env(env_name)
    for ep in tqdm(episodes, desc=f"relabel {env_name}", unit="ep", mininterval=2.0):
        ep.rewards, ep.terminations = ogbench_tasks.relabel(
            env_name, env, {k: v[:-1] for k, v in ep.infos.items()}
        )
    env.close()
    return episodes


# --------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------
def build_episodes(params: Params, env_name: str) -> list[Episode]:
    """The episodes of `env_name` from params.dataset's source (OGBench single-task envs: from
    dataset.ogbench's, OGBench's files made or fetched as gc_dataset does)."""
    if ogbench_tasks.is_singletask(env_name):
        return ogbench_singletask(env_name, params.dataset.ogbench)
    cfg = params.dataset
    if cfg.source == "collect":
        return collect(env_name, cfg.collect, cfg.seed)
    if cfg.source == "exorl":
        return exorl(env_name, cfg.exorl)
    return from_minari(env_name, cfg.minari)


def run(params: Params, env_name: str, out_dir: Path) -> dict:
    """Build the dataset of `env_name` into `out_dir/minari` and return (and write) its statistics."""
    out_dir = Path(out_dir)
    # remove the previous outputs first (as DVC does): a run that dies leaves no older dataset behind;
    # the dataset is renamed away in one step, so a kill mid-delete leaves no half dataset at `minari`
    (out_dir / "stats.json").unlink(missing_ok=True)
    remove_tree(out_dir / "minari")
    start = time.perf_counter()
    episodes = build_episodes(params, env_name)
    seconds = time.perf_counter() - start
    stats = dataset_stats(episodes)
    singletask = ogbench_tasks.is_singletask(env_name)
    if singletask:  # fraction of transitions from a success state (mask 0)
        stats["terminal_frac"] = float(np.mean(np.concatenate([ep.terminations for ep in episodes])))
    stats["build_seconds"] = seconds  # wall time of collection / download + relabelling
    stats["steps_per_second"] = stats["transitions"] / seconds
    source = f"ogbench-{params.dataset.ogbench.source}" if singletask else params.dataset.source
    detail = params.dataset.collect.behaviour if source == "collect" else ""
    write_json_atomic(stats, out_dir / "stats.json")
    # last: the dataset is what the next stages read (written to a temp dir and renamed)
    write_minari(
        episodes,
        env_name,
        source,
        out_dir / "minari",
        description=f"{env_name} {source} {detail}",
        gym_id=ogbench_tasks.gym_id(env_name) if singletask else None,
    )
    log.info("%s: %s", env_name, stats)
    return stats


def main(
    env: str = stage.ENV,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/dataset/<env>"),
):
    """Build the offline dataset of one env."""
    p = stage.load(params, env)
    out_dir = out or paths.dataset_dir(env)
    stage.tracked("dataset", p, out_dir, lambda: run(p, env, out_dir), env=env)


if __name__ == "__main__":
    stage.cli(main)
