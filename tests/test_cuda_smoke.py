"""GPU claims that several chapters rely on (moving, saving, loading across devices).

All marked `cuda`: skipped with a reason on CPU (conftest.py), run by `make gpu-check`.
Written for any recent torch 2.x with a CUDA device.
"""
import pickle

import pytest
import torch
from torch import nn

pytestmark = pytest.mark.cuda

GPU0 = torch.device("cuda", 0)


class TinyNet(nn.Module):  # at module level: a whole-model pickle must find its class again
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 2)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x):
        return self.head(self.features(x)) * self.scale


def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


def devices(tensors) -> set:
    return {t.device for t in tensors}


def test_tensor_cuda_returns_a_moved_copy_and_leaves_the_original():
    t = torch.arange(3.0)
    moved = t.cuda()
    assert t.device.type == "cpu" and moved.device == GPU0
    assert t.to("cuda") is not t
    assert moved.to("cuda:0") is moved  # already there: no copy
    assert torch.equal(moved.cpu(), t)


def test_cuda_means_the_current_device_but_is_not_equal_to_cuda0():
    assert torch.tensor(1.0, device="cuda").device == torch.device("cuda", torch.cuda.current_device())
    assert torch.device("cuda") != GPU0  # compare t.device with an index, or use .type


def test_module_to_and_cuda_move_in_place_and_return_the_module():
    net = tiny_net()
    assert net.cuda() is net
    assert devices([*net.parameters(), *net.buffers()]) == {GPU0}
    assert net.to("cpu") is net
    assert devices([*net.parameters(), *net.buffers()]) == {torch.device("cpu")}


def test_inputs_must_live_on_the_models_device():
    net = tiny_net().to(GPU0)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        net(torch.rand(3, 4))
    assert net(torch.rand(3, 4, device=GPU0)).device == GPU0


def test_state_dict_saved_on_cuda0_loads_on_cpu_and_back(tmp_path):
    net = tiny_net().to(GPU0)
    x = torch.rand(5, 4)
    on_gpu = net(x.to(GPU0)).cpu()
    path = tmp_path / "state.pt"
    torch.save(net.state_dict(), path)

    # the file remembers where each tensor was
    assert devices(torch.load(path, weights_only=True).values()) == {GPU0}
    on_cpu = torch.load(path, map_location="cpu", weights_only=True)
    assert devices(on_cpu.values()) == {torch.device("cpu")}
    cpu_net = TinyNet()
    cpu_net.load_state_dict(on_cpu)
    torch.testing.assert_close(cpu_net(x), on_gpu, rtol=1e-4, atol=1e-5)

    # and back to the GPU
    gpu_net = TinyNet().to(GPU0)
    gpu_net.load_state_dict(torch.load(path, map_location="cuda:0", weights_only=True))
    torch.testing.assert_close(gpu_net(x.to(GPU0)).cpu(), on_gpu)


def test_load_state_dict_copies_into_the_models_own_device(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(tiny_net().to(GPU0).state_dict(), path)
    cpu_net = TinyNet()
    cpu_net.load_state_dict(torch.load(path, weights_only=True))  # CUDA tensors in, model stays on CPU
    assert devices(cpu_net.parameters()) == {torch.device("cpu")}
    assert torch.equal(cpu_net.head.weight, tiny_net().head.weight)


def test_whole_model_pickle_carries_its_device(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(tiny_net().to(GPU0), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # a pickled module is not plain weights
    loaded = torch.load(path, weights_only=False)  # only for files you trust
    assert isinstance(loaded, TinyNet)
    assert devices([*loaded.parameters(), *loaded.buffers()]) == {GPU0}
    on_cpu = torch.load(path, weights_only=False, map_location="cpu")
    assert devices([*on_cpu.parameters(), *on_cpu.buffers()]) == {torch.device("cpu")}


def test_optimizer_state_follows_the_parameters_device(tmp_path):
    net = tiny_net().to(GPU0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.rand(8, 4, device=GPU0)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": net.state_dict(), "optim": opt.state_dict()}, path)

    ckpt = torch.load(path, weights_only=True)  # no map_location: the moments come back on cuda:0
    assert devices(s["exp_avg"] for s in ckpt["optim"]["state"].values()) == {GPU0}
    cpu_net = TinyNet()
    cpu_net.load_state_dict(ckpt["model"])
    cpu_opt = torch.optim.Adam(cpu_net.parameters(), lr=0.01)
    cpu_opt.load_state_dict(ckpt["optim"])  # casts the state to each parameter's device
    moments = [s[k] for s in cpu_opt.state.values() for k in ("exp_avg", "exp_avg_sq")]
    assert len(moments) == 2 * len(list(cpu_net.parameters()))
    assert devices(moments) == {torch.device("cpu")}
