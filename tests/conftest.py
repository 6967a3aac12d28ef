"""Shared fixtures: params built from the repo's params.yaml, raw dm_control rollouts in the ExORL
layout, and a local HTTP server for the download path."""

from __future__ import annotations

import copy
import io
import os
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # nothing renders

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# The flat-observation order the pipeline promises (dm_control's observation_spec order, as ExORL
# flattened it). Written out here, not read from the wrapper, so the tests check it independently.
OBS_ORDER = {
    "walker": ["orientations", "height", "velocity"],
    "cheetah": ["position", "velocity"],
    "quadruped": ["egocentric_state", "torso_velocity", "torso_upright", "imu", "force_torque"],
    "jaco": [  # ExORL's reach task: dm_control's PERFECT_FEATURES arm and hand, no target_position
        "jaco_arm/joints_pos",
        "jaco_arm/joints_torque",
        "jaco_arm/joints_vel",
        "jaco_arm/jaco_hand/joints_pos",
        "jaco_arm/jaco_hand/joints_vel",
        "jaco_arm/jaco_hand/pinch_site_pos",
        "jaco_arm/jaco_hand/pinch_site_rmat",
    ],
}
OBS_DIM = {"walker": 24, "cheetah": 17, "quadruped": 78, "jaco": 42}
# ExORL's custom tasks (custom_dmc_tasks/{cheetah,jaco}.py), written out here
CUSTOM_TASKS = {("cheetah", "run_backward"), ("jaco", "reach_top_left"), ("jaco", "reach_top_right")}
JACO_TARGETS = {"reach_top_left": (-0.09, 0.09, 0.001), "reach_top_right": (0.09, 0.09, 0.001)}


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri():
    """mlflow.set_tracking_uri also sets os.environ['MLFLOW_TRACKING_URI']: undo it after every test, or
    later subprocesses (stage CLIs, snakemake jobs) would track into an earlier test's DB."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def pytest_configure(config):
    # Minari nags about author / permalink metadata on every dataset it writes.
    config.addinivalue_line("filterwarnings", r"ignore:`(code_permalink|author|author_email)` is set to None")


# --------------------------------------------------------------------------------------------
# params
# --------------------------------------------------------------------------------------------
def repo_params_raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def set_dotted(raw: dict, key: str, value: Any) -> dict:
    """raw['a']['b']['c'] = value for key 'a.b.c' (intermediate mappings created as needed)."""
    *parents, last = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return raw


def raw_params(overrides: dict[str, Any] | None = None) -> dict:
    """A deep copy of the repo's params.yaml with dotted-key overrides applied (the periodic evaluation
    during training off unless an override turns it on)."""
    raw = copy.deepcopy(repo_params_raw())
    raw["train_cfgrl"]["eval_every"] = raw["train_awr"]["eval_every"] = 0
    for k, v in (overrides or {}).items():
        set_dotted(raw, k, v)
    return raw


def make_params(overrides: dict[str, Any] | None = None):
    from pipeline_steps.core.params import parse_params

    return parse_params(raw_params(overrides))


# --------------------------------------------------------------------------------------------
# raw dm_control (independent of pipeline_steps.envs.dmc)
# --------------------------------------------------------------------------------------------
def flat_obs(domain: str, observation) -> np.ndarray:
    return np.concatenate([np.asarray(observation[k], np.float64).reshape(-1) for k in OBS_ORDER[domain]])


def raw_env(domain: str, task: str, seed: int | None = None):
    """A dm_control env with the physics and observations of (domain, task), built without pipeline_steps:
    - a suite task: itself;
    - cheetah run_backward: the suite's cheetah run (ExORL's cheetah.xml only lengthens the ground
      plane, which is infinite for collisions, and keeps the suite's task but for the reward);
    - jaco reach_*: dm_control's stock reach-a-site task (manipulation.reach, PERFECT_FEATURES), the
      same arm, hand, workspace and initialisation, whose target site moves and is observed as
      `target_position` (neither reaches the physics state nor the ExORL layout, OBS_ORDER)."""
    if domain == "jaco":
        from dm_control import composer
        from dm_control.manipulation import reach
        from dm_control.manipulation.shared import observations

        stock = reach._reach(obs_settings=observations.PERFECT_FEATURES, use_site=True)
        return composer.Environment(stock, time_limit=10.0, random_state=seed)
    from dm_control import suite

    if (domain, task) == ("cheetah", "run_backward"):
        task = "run"
    return suite.load(domain, task, task_kwargs={"random": seed})


def raw_task_reward(domain: str, task: str, env) -> float:
    """The reward of (domain, task) in raw_env's current physics: ExORL's formula for a custom task,
    the dm_control task's own otherwise."""
    from dm_control.utils import rewards

    if (domain, task) == ("cheetah", "run_backward"):  # the suite's run reward of -speed
        speed = env.physics.named.data.sensordata["torso_subtreelinvel"][0]
        return rewards.tolerance(
            -speed, bounds=(10, float("inf")), margin=10, value_at_margin=0, sigmoid="linear"
        )
    if domain == "jaco":  # 1 within 5 cm of the fixed target, as float32
        tcp = env.physics.bind(env.task.hand.tool_center_point).xpos
        distance = np.linalg.norm(tcp - np.asarray(JACO_TARGETS[task]))
        return float(np.float32(rewards.tolerance(distance, bounds=(0, 0.05), margin=0.05)))
    return env.task.get_reward(env.physics)


def scaled_action(spec, a) -> np.ndarray:
    """An action in [-1, 1] mapped affinely onto the action spec's bounds (unchanged for [-1, 1] bounds)."""
    a = np.asarray(a, np.float64)
    low, high = spec.minimum, spec.maximum
    if np.all(low == -1.0) and np.all(high == 1.0):
        return a
    return low + (a + 1.0) * 0.5 * (high - low)


def exorl_rollout(domain: str, task: str, seed: int, steps: int = 1000) -> dict[str, np.ndarray]:
    """One episode in the ExORL npz layout: index 0 is the reset step with a dummy (zero) action;
    actions in [-1, 1] (float32, as an agent emits them), rewards those of (domain, task)."""
    env = raw_env(domain, task, seed)
    rng = np.random.default_rng(seed)
    spec = env.action_spec()
    act_dim = spec.shape[0]
    ts = env.reset()
    obs, act, rew, disc, phys = [flat_obs(domain, ts.observation)], [np.zeros(act_dim)], [0.0], [1.0], []
    phys.append(env.physics.get_state().copy())
    for _ in range(steps):
        a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        ts = env.step(scaled_action(spec, a))
        obs.append(flat_obs(domain, ts.observation))
        act.append(a)
        rew.append(raw_task_reward(domain, task, env) if (domain, task) in CUSTOM_TASKS else ts.reward)
        disc.append(ts.discount)
        phys.append(env.physics.get_state().copy())
    return {
        "observation": np.asarray(obs, np.float32),
        "action": np.asarray(act, np.float32),
        "reward": np.asarray(rew, np.float32)[:, None],
        "discount": np.asarray(disc, np.float32)[:, None],
        "physics": np.asarray(phys, np.float64),
    }


def dmc_task_rewards(domain: str, task: str, physics: np.ndarray) -> np.ndarray:
    """The (domain, task) reward of each physics state, on a fresh raw_env."""
    env = raw_env(domain, task)
    out = []
    for p in physics:
        with env.physics.reset_context():
            env.physics.set_state(p)
        out.append(raw_task_reward(domain, task, env))
    return np.asarray(out, np.float64)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def episode_name(idx: int, ep: dict[str, np.ndarray], prefix: str = "") -> str:
    return f"{prefix}buffer/episode_{idx:06d}_{len(ep['observation'])}.npz"


@pytest.fixture(scope="session")
def walker_exorl_episodes() -> list[dict[str, np.ndarray]]:
    """Two 1000-step walker-run episodes (random actions) in the ExORL layout."""
    return [exorl_rollout("walker", "run", seed) for seed in (11, 12)]


# --------------------------------------------------------------------------------------------
# local HTTP server
# --------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked responses need 1.1
    timeout = 10  # socket timeout: a stuck client cannot hold a handler thread forever

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv: FileServer = self.server.owner
        srv.requests.append(self.path)
        route = srv.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        kind, body = route
        self.close_connection = True
        if kind == "ok":
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        elif kind == "short":  # promise more bytes than are sent, then close
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 4096))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        elif kind == "chunked_cut":  # chunked transfer, connection dropped inside the second chunk
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            half = len(body) // 2
            self.wfile.write(b"%x\r\n" % half + body[:half] + b"\r\n")
            self.wfile.write(b"%x\r\n" % (len(body) - half) + body[half : half + 100])
        elif kind == "stall":  # headers, a few bytes, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[:10])
            self.wfile.flush()
            srv.release.wait(5)
        else:
            raise AssertionError(kind)
        self.wfile.flush()


class FileServer:
    """routes: URL path -> (kind, body); requests: every path requested, in order."""

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def count(self, path: str) -> int:
        return self.requests.count(path)


@pytest.fixture
def http_server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = FileServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)
        assert not srv.thread.is_alive()


# --------------------------------------------------------------------------------------------
# synthetic datasets for the training stages (no physics: random episodes of an env's shapes)
# --------------------------------------------------------------------------------------------
def write_synthetic_dataset(
    root: Path, env_name: str = "cheetah-run", episodes: int = 2, steps: int = 64, seed: int = 0
) -> int:
    """Random episodes with `env_name`'s observation / action shapes, written as the Minari dataset
    the training stages read (at `root`, e.g. <tmp>/data/dataset/<env>/minari). Returns the
    number of transitions."""
    from pipeline_steps.core.episodes import Episode, write_minari
    from pipeline_steps.envs.dmc import make_env

    env = make_env(env_name)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    rng = np.random.default_rng(seed)
    eps = [
        Episode(
            observations=rng.normal(size=(steps + 1, obs_dim)).astype(np.float32),
            actions=rng.uniform(-1, 1, size=(steps, act_dim)).astype(np.float32),
            rewards=rng.uniform(0, 1, size=steps),
            terminations=np.zeros(steps, bool),
            truncations=np.r_[np.zeros(steps - 1, bool), True],
        )
        for _ in range(episodes)
    ]
    write_minari(eps, env_name, "collect", Path(root), description="synthetic")
    return episodes * steps


def write_synthetic_labels(path: Path, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A labels.npz as the label stage writes it: advantages [n] float32, optimal [n] bool (A > 0)."""
    rng = np.random.default_rng(seed)
    adv = rng.normal(size=n).astype(np.float32)
    arrays = {"advantages": adv, "optimal": adv > 0}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


@pytest.fixture(scope="module")
def one_thread():
    """Tiny nets run fastest on one thread, and a busy machine cannot oversubscribe it."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------
# temporary copies of the repo (for dvc repro / snakemake runs that must not touch the checkout)
# --------------------------------------------------------------------------------------------
def tool_env(**extra: str) -> dict[str, str]:
    """Environment for dvc / snakemake / stage subprocesses: the venv's tools first, no progress bars."""
    import sys

    bin_dir = str(Path(sys.executable).parent)
    base = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CFGRL_TRACKING": "0", "TQDM_DISABLE": "1"}
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # each copy its own DB
    return {**inherited, **base, **extra}


def run_tool(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900, **env: str):
    import subprocess

    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(**env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def copy_repo(dst: Path, profile: str | None = None, git: bool = True) -> Path:
    """Copy the repo's tracked (and untracked, not ignored) files except tests/ and data/ to dst, with
    profiles/<profile>.yaml as params.yaml, as a fresh git repo with one commit."""
    import shutil
    import subprocess

    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:
        if f.startswith(("tests/", "data/")) or not (REPO / f).is_file():
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dst / f)
    if profile:
        shutil.copy(REPO / "profiles" / f"{profile}.yaml", dst / "params.yaml")
    if git:
        run_tool(["git", "init", "-q"], dst)
        run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], dst)
        run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], dst)
    return dst


@pytest.fixture(scope="session")
def tiny2_dvc(tmp_path_factory) -> tuple[Path, str]:
    """`make repro`'s driver (dvc repro, the env / seed branches side by side) on the tiny2 profile, with
    tracking on, run once per session: test_workflow reads it as it is, test_pipeline edits a copy."""
    import sys

    repo = copy_repo(tmp_path_factory.mktemp("dvcpar"), "tiny2")
    proc = run_tool(
        [sys.executable, "-m", "pipeline_steps.both.repro", "--jobs", "2"],
        repo,
        timeout=1200,
        CFGRL_TRACKING="1",
    )
    return repo, proc.stdout + proc.stderr
