"""runtime.device: resolution (auto picks the CPU where torch sees no GPU), checkpoints written on a
GPU load on a CPU-only machine, restored agents land on the requested device, and minibatches and
noise are drawn where the generator lives. (That `device: cpu` changes no number is what the
determinism and byte-identity tests elsewhere check; the GPU itself is measured by
benchmarks/gpu_check.py, not here.)"""

from __future__ import annotations

import pytest
import torch
from conftest import make_params

from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.core import checkpoints, device, training
from pipeline_steps.core.params import ParamsError


def test_auto_picks_the_cpu_without_a_gpu_and_cuda_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.resolve_device("auto") == torch.device("cpu")
    assert device.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="runtime.device = 'cuda'"):
        device.resolve_device("cuda")  # never a silent fallback to the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.resolve_device("auto") == torch.device("cuda")
    assert device.resolve_device("cuda") == torch.device("cuda")


def test_auto_is_the_cpu_on_this_machine():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    p = make_params({"runtime.device": "auto"})
    assert device.setup_torch(0, p.runtime).device == torch.device("cpu")


def test_unknown_device_is_a_params_error_naming_it():
    with pytest.raises(ParamsError, match=r"runtime\.device.*tpu"):
        make_params({"runtime.device": "tpu"})


def test_default_params_train_on_the_cpu_with_the_old_random_streams():
    """device: cpu draws the same minibatch indices and flow noise as the device-free code did."""
    p = make_params()
    assert p.runtime.device == "cpu"
    gen = device.setup_torch(3, p.runtime)
    data = {"x": torch.arange(100.0)}
    got = training.Sampler(data, 8, gen).sample()["x"]
    want = torch.arange(100.0)[torch.randint(100, (8,), generator=torch.Generator().manual_seed(3))]
    assert torch.equal(got, want)
    agent = CFGRL(3, 2, p.train_cfgrl)
    x0 = []
    agent.gradient_step = lambda batch, x_0, t, drop: x0.append(x_0) or {}
    agent.update({"actions": torch.zeros(4, 2)}, torch.Generator().manual_seed(5))
    assert torch.equal(x0[0], torch.randn(4, 2, generator=torch.Generator().manual_seed(5)))


def _as_if_saved_on_a_gpu(monkeypatch):
    """torch.save tags every storage 'cuda:0', as it does for tensors that live on a GPU."""
    registry = list(torch.serialization._package_registry)
    monkeypatch.setattr(
        torch.serialization, "_package_registry", [(-1, lambda s: "cuda:0", lambda o, loc: None), *registry]
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_checkpoint_written_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    p = make_params({"train_cfgrl.hidden": [8]})
    torch.manual_seed(0)
    agent = CFGRL(3, 2, p.train_cfgrl)
    with monkeypatch.context() as m:
        _as_if_saved_on_a_gpu(m)
        checkpoints.save_agent(tmp_path / "policy.pt", "cfgrl", agent, p.train_cfgrl, "cheetah-run", 0, 2)
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really is tagged for a GPU
        torch.load(tmp_path / "policy.pt", weights_only=False)
    restored = CFGRL.from_checkpoint(tmp_path / "policy.pt")
    for k, v in agent.state_dict().items():
        assert torch.equal(restored.state_dict()[k], v), k
    assert device.module_device(restored) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_resume_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path, monkeypatch):
    p = make_params({"train_cfgrl.hidden": [8]})
    torch.manual_seed(0)
    agent, gen = CFGRL(3, 2, p.train_cfgrl), torch.Generator().manual_seed(1)
    batch = {
        "observations": torch.randn(16, 3),
        "actions": torch.rand(16, 2),
        "optimal": torch.rand(16) > 0.5,
    }
    agent.update(batch, gen)  # Adam has state now
    resume = training.Resume(tmp_path / "resume.pt", 1, {"stage": "t"})
    resume.bind(batch)
    with monkeypatch.context() as m:
        _as_if_saved_on_a_gpu(m)
        resume.save(7, [{"step": 7}], agent, gen, training.Window({"x": torch.tensor(1.5)}, 2))
    torch.manual_seed(0)
    fresh, gen2 = CFGRL(3, 2, p.train_cfgrl), torch.Generator().manual_seed(99)
    step, rows, window = resume.restore(fresh, gen2)
    assert (step, rows, window.n, window.sums) == (7, [{"step": 7}], 2, {"x": torch.tensor(1.5)})
    assert torch.equal(gen2.get_state(), gen.get_state())
    for k, v in agent.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_restored_agent_lands_on_the_requested_device(tmp_path):
    p = make_params({"train_cfgrl.hidden": [8]})
    agent = CFGRL(3, 2, p.train_cfgrl)
    checkpoints.save_agent(tmp_path / "policy.pt", "cfgrl", agent, p.train_cfgrl, "cheetah-run", 0, 2)
    on_meta = CFGRL.from_checkpoint(tmp_path / "policy.pt", device="meta")  # a device besides the cpu
    assert {t.device.type for t in on_meta.state_dict().values()} == {"meta"}
    ckpt = torch.load(tmp_path / "policy.pt", weights_only=False)
    assert {t.device.type for t in ckpt["state_dict"].values()} == {"cpu"}  # saved device-free


def test_fit_moves_agent_and_data_to_the_generator_device_and_leaves_inputs_alone():
    p = make_params({"train_cfgrl.hidden": [8], "train_cfgrl.steps": 3, "train_cfgrl.log_every": 1})
    agent = CFGRL(3, 2, p.train_cfgrl)
    data = {"observations": torch.randn(32, 3), "actions": torch.rand(32, 2), "optimal": torch.rand(32) > 0.5}
    seen = []

    def make_sampler(on_device):
        seen.append({k: v.device for k, v in on_device.items()})
        return training.Sampler(on_device, 4, gen)

    gen = torch.Generator().manual_seed(0)
    log, _ = training.fit(agent, data, p.train_cfgrl, gen, "t", make_sampler=make_sampler)
    assert len(log) == 3 and seen == [{k: torch.device("cpu") for k in data}]
    assert device.module_device(agent) == gen.device
