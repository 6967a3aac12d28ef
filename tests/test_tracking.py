"""MLflow tracking mirrors a stage's outputs, and a broken tracking store never fails the stage."""

from __future__ import annotations

import json
import sqlite3
import warnings

import pandas as pd
import pytest

from pipeline_steps.core import tracking


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A fake stage output dir in a fresh working dir, with tracking on and no inherited URI."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFGRL_TRACKING", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    out = tmp_path / "data" / "label" / "walker-run" / "seed3"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"positive_frac": 0.25, "timing": {"ms": 7.5}, "name": "x"}))
    pd.DataFrame({"step": [10, 20, 30], "critic/loss": [3.0, 2.0, 1.0]}).to_csv(
        out / "train_log.csv", index=False
    )
    (out / "labels.npz").write_bytes(b"not really npz")
    return out


def _runs(uri: str) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[tracking.EXPERIMENT])


def test_stage_run_mirrors_outputs(stage_dir, tmp_path):
    with tracking.stage_run(
        "label", {"label": {"steps": 100, "hidden": [8, 8]}}, env="walker-run", seed=3
    ) as t:
        t.mirror(stage_dir)
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = _runs(uri)
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r.status == "FINISHED"
    assert (r["tags.stage"], r["tags.env"], r["tags.seed"]) == ("label", "walker-run", "3")
    assert r["tags.dvc_exp_name"] == "exp-test" and r["tags.git_commit"]
    assert r["tags.mlflow.runName"] == "label-walker-run-seed3 [exp-test]"
    assert r["params.label.steps"] == "100" and r["params.label.hidden"] == "[8, 8]"
    assert r["metrics.positive_frac"] == 0.25 and r["metrics.timing.ms"] == 7.5
    history = mlflow.MlflowClient().get_metric_history(r.run_id, "critic/loss")
    assert [(m.step, m.value) for m in history] == [(10, 3.0), (20, 2.0), (30, 1.0)]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(r.run_id)}
    assert artifacts == {"metrics.json", "train_log.csv", "labels.npz"}
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts next to the DB, not in the cwd-dependent default
    exp = mlflow.get_experiment_by_name(tracking.EXPERIMENT)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's model-training view


def test_run_names_tell_the_algorithms_of_one_seed_apart(stage_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME")
    for algo in ("cfgrl", "flow_gcbc", "gcbc"):
        with tracking.stage_run("train_gc", {}, env="pointmaze-medium-navigate", seed=0, tags={"algo": algo}):
            pass
    names = set(_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")["tags.mlflow.runName"])
    assert names == {f"train_gc-{a}-pointmaze-medium-navigate-seed0" for a in ("cfgrl", "flow_gcbc", "gcbc")}


def test_training_rows_stream_to_the_run_while_the_stage_runs(stage_dir, tmp_path):
    """Rows logged by the training loop reach MLflow before the stage ends; mirroring train_log.csv
    afterwards adds only the rows not streamed (here: step 10, as if inherited from a killed run)."""
    import mlflow

    seen_during = []
    with tracking.stage_run("label", {"label": {"steps": 30}}, env="walker-run", seed=3) as t:
        run_id = mlflow.active_run().info.run_id
        tracking.log_step({"step": 20, "critic/loss": 2.0})
        tracking.log_step({"step": 30, "critic/loss": 1.0, "critic/q_mean": float("nan")})
        seen_during = mlflow.MlflowClient().get_metric_history(run_id, "critic/loss")
        t.mirror(stage_dir)
    assert [(m.step, m.value) for m in seen_during] == [(20, 2.0), (30, 1.0)]
    history = mlflow.MlflowClient().get_metric_history(run_id, "critic/loss")
    assert sorted((m.step, m.value) for m in history) == [(10, 3.0), (20, 2.0), (30, 1.0)]  # no duplicates
    assert mlflow.MlflowClient().get_metric_history(run_id, "critic/q_mean") == []  # non-finite: not sent
    tracking.log_step({"step": 40, "critic/loss": 0.5})  # outside a stage run: nothing, no error
    assert len(mlflow.MlflowClient().get_metric_history(run_id, "critic/loss")) == 3


def test_failing_stage_is_recorded_as_failed_and_raises(stage_dir, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.stage_run("train_cfgrl", {"x": 1}, env="walker-run", seed=0):
            raise RuntimeError("boom")
    assert _runs(f"sqlite:///{tmp_path / 'mlflow.db'}").iloc[0].status == "FAILED"


@pytest.mark.parametrize("fault", ["unwritable", "corrupt", "locked"])
def test_broken_store_warns_and_the_stage_completes(stage_dir, tmp_path, monkeypatch, fault):
    lock = None
    if fault == "unwritable":  # a path below a regular file: not creatable, even by root
        (tmp_path / "a_file").write_text("x")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a_file' / 'mlflow.db'}")
    elif fault == "corrupt":
        (tmp_path / "mlflow.db").write_bytes(b"this is not a sqlite database" * 100)
    else:
        with tracking.stage_run("dataset", {"x": 1}, env="walker-run"):
            pass  # create the DB and experiment, then lock it exclusively
        lock = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
    body_ran = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracking.stage_run("label", {"label": {"steps": 1}}, env="walker-run", seed=3) as t:
            body_ran = True
            t.mirror(stage_dir)
    if lock is not None:
        lock.rollback()
        lock.close()
    assert body_ran
    messages = [str(w.message) for w in caught if "MLflow tracking" in str(w.message)]
    assert messages, [str(w.message) for w in caught]
    # the stage's own outputs are untouched
    assert json.loads((stage_dir / "metrics.json").read_text())["positive_frac"] == 0.25


def test_tracking_off_is_a_no_op(stage_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CFGRL_TRACKING", "0")
    with tracking.stage_run("label", {"x": 1}, env="walker-run", seed=3) as t:
        t.mirror(stage_dir)
    assert not (tmp_path / "mlflow.db").exists()


def test_backfill_rebuilds_the_record_after_a_lost_db(stage_dir, tmp_path):
    """Recovery: the DB is gone (or moved aside when corrupt); backfill re-records the outputs."""
    import yaml
    from conftest import raw_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params({"envs": ["walker-run"], "seeds": [3]})))
    (stage_dir / "labels.npz").write_bytes(b"npz")  # the label stage finished (its last file exists)
    cfgrl = tmp_path / "data" / "train_cfgrl" / "walker-run" / "seed3"
    cfgrl.mkdir(parents=True)
    (cfgrl / "resume.pt").write_bytes(b"x")  # a killed run: skipped
    awr = tmp_path / "data" / "train_awr" / "walker-run" / "seed3"
    awr.mkdir(parents=True)
    (awr / "policies.pt").write_bytes(b"x")
    assert tracking.backfill(tmp_path / "params.yaml") == 2
    runs = _runs(tracking.tracking_uri())
    assert sorted(runs["tags.stage"]) == ["label", "train_awr"]
    assert (runs["tags.backfilled"] == "true").all() and (runs["tags.seed"] == "3").all()
    lab = runs[runs["tags.stage"] == "label"].iloc[0]
    assert lab["metrics.positive_frac"] == 0.25 and lab["params.label.expectile"] == "0.9"


# ------------------------------------------------------------------------------------------------
# the documented tracking server (workflow/mlflow/server.sh): MLflow's authentication app
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """workflow/mlflow/server.sh on a free localhost port, in a fresh store dir; (url, admin password)."""
    import os
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    from conftest import REPO, tool_env

    store = tmp_path_factory.mktemp("mlflow_server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    password = "correct-horse-battery"
    env = tool_env(MLFLOW_ADMIN_PASSWORD=password, PORT=str(port), STORE_DIR=str(store))
    log = open(store / "server.log", "w")
    proc = subprocess.Popen(
        [str(REPO / "workflow/mlflow/server.sh")],
        cwd=store,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
                raise AssertionError((store / "server.log").read_text()[-3000:]) from None
            time.sleep(0.5)
    yield url, password
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    import base64
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=5")
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code


def test_tracking_server_refuses_unauthenticated_clients(auth_server):
    url, password = auth_server
    assert _status(url) == 401  # no credentials
    assert _status(url, "admin", "not-the-password") == 401
    assert _status(url, "nobody", password) == 401
    assert _status(url, "admin", password) == 200


def test_stages_track_to_the_authenticated_server(auth_server, stage_dir, monkeypatch):
    """A stage with MLFLOW_TRACKING_URI and the user's credentials in the environment logs its run."""
    url, password = auth_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    with tracking.stage_run("label", {"label": {"expectile": 0.9}}, env="walker-run", seed=3) as run:
        run.mirror(stage_dir)
    runs = _runs(url)
    assert len(runs) == 1 and runs.iloc[0]["metrics.positive_frac"] == 0.25


def test_tracking_server_needs_a_long_admin_password(tmp_path):
    import subprocess

    from conftest import REPO, tool_env

    env = tool_env(MLFLOW_ADMIN_PASSWORD="short", STORE_DIR=str(tmp_path))
    proc = subprocess.run([str(REPO / "workflow/mlflow/server.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "MLFLOW_ADMIN_PASSWORD has 5 characters; use 12 or more" in proc.stderr
    assert not (tmp_path / ".mlflow_auth").exists()
