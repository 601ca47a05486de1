"""Each claim of the init chapter, asserted: statistics of the initialised weights,
autograd still sees every parameter, and the notes' three mistakes (E12, E13, E14)."""
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from snippets import init as ini

ROOT = Path(__file__).resolve().parents[1]

# The notes' function, verbatim (Task1 §5), tabs and all.
NOTES_INITIALIZE_WEIGHTS = """\
def initialize_weights(self):
\tfor m in self.modules():
\t\t# 判断是否属于Conv2d
\t\tif isinstance(m, nn.Conv2d):
\t\t\ttorch.nn.init.xavier_normal_(m.weight.data)
\t\t\t# 判断是否有偏置
\t\t\tif m.bias is not None:
\t\t\t\ttorch.nn.init.constant_(m.bias.data,0.3)
\t\telif isinstance(m, nn.Linear):
\t\t\ttorch.nn.init.normal_(m.weight.data, 0.1)
\t\t\tif m.bias is not None:
\t\t\t\ttorch.nn.init.zeros_(m.bias.data)
\t\telif isinstance(m, nn.BatchNorm2d):
\t\t\tm.weight.data.fill_(1) \t\t \n\t\t\tm.bias.data.zeros_()\t
"""


def notes_initialize_weights():
    namespace = {"nn": nn, "torch": torch}
    exec(NOTES_INITIALIZE_WEIGHTS, namespace)
    return namespace["initialize_weights"]


@pytest.fixture(scope="module")
def big_layers():
    """Layers large enough that sample statistics are within a few percent of the targets."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 128, kernel_size=3), nn.BatchNorm2d(128), nn.Flatten(),
                        nn.Linear(1000, 1000))
    with torch.no_grad():  # make BN differ from its defaults, so re-initialising is visible
        net[1].weight.fill_(5.0)
        net[1].bias.fill_(-2.0)
    return net.apply(ini.init_weights)


def test_conv_weight_is_xavier_normal(big_layers):
    w = big_layers[0].weight
    fan_in, fan_out = 64 * 9, 128 * 9
    wanted = math.sqrt(2 / (fan_in + fan_out))
    assert w.std().item() == pytest.approx(wanted, rel=0.03)
    assert abs(w.mean().item()) < 0.05 * wanted


def test_conv_bias_is_0_3(big_layers):
    assert torch.equal(big_layers[0].bias, torch.full((128,), 0.3))


def test_conv_without_bias_is_fine():
    conv = nn.Conv2d(3, 4, 3, bias=False)
    ini.init_weights(conv)
    assert conv.bias is None


def test_linear_weight_has_mean_0_std_0_1(big_layers):
    w = big_layers[3].weight
    assert abs(w.mean().item()) < 0.001
    assert w.std().item() == pytest.approx(0.1, rel=0.01)


def test_linear_bias_is_zero(big_layers):
    assert torch.equal(big_layers[3].bias, torch.zeros(1000))


def test_batchnorm_is_ones_and_zeros(big_layers):
    bn = big_layers[1]
    assert torch.equal(bn.weight, torch.ones(128)) and torch.equal(bn.bias, torch.zeros(128))


def test_a_fresh_batchnorm_is_already_ones_and_zeros():
    bn = nn.BatchNorm2d(3)
    assert bn.weight.tolist() == [1.0, 1.0, 1.0] and bn.bias.tolist() == [0.0, 0.0, 0.0]


def _used(bn: nn.Module) -> nn.Module:
    """A normalisation layer as training leaves it: weight changed, running statistics moved."""
    if getattr(bn, "weight", None) is not None:
        with torch.no_grad():
            bn.weight.mul_(3.0).add_(0.5)
            bn.bias.add_(2.0)
    bn.train()
    shape = {nn.BatchNorm1d: (8, 3), nn.BatchNorm2d: (8, 3, 4, 4), nn.BatchNorm3d: (8, 3, 2, 2, 2)}.get(type(bn), (8, 3, 4))
    bn(torch.randn(shape) + 5)
    return bn


@pytest.mark.parametrize("make", [lambda: nn.BatchNorm1d(3), lambda: nn.BatchNorm2d(3), lambda: nn.BatchNorm3d(3),
                                  lambda: nn.BatchNorm2d(3, affine=False),
                                  lambda: nn.BatchNorm2d(3, track_running_stats=False),
                                  lambda: nn.GroupNorm(1, 3), lambda: nn.LayerNorm(4),
                                  lambda: nn.LayerNorm(4, elementwise_affine=False)])
def test_init_weights_resets_every_normalisation_layer_to_new(make):
    """affine=False (no weight) and running statistics that changed are both handled."""
    torch.manual_seed(0)
    fresh, used = make(), _used(make())
    if getattr(used, "running_mean", None) is not None:
        assert not torch.equal(used.running_mean, fresh.running_mean) and used.num_batches_tracked == 1
    ini.init_weights(used)
    assert all(torch.equal(a, b) for a, b in zip(used.state_dict().values(), fresh.state_dict().values()))
    assert used.state_dict().keys() == fresh.state_dict().keys()


def test_the_notes_ones_and_zeros_fail_on_affine_false_and_keep_running_statistics():
    """What init_weights did before it used reset_parameters()."""
    plain = nn.BatchNorm2d(3, affine=False)
    assert plain.weight is None
    with pytest.raises(AttributeError):
        nn.init.ones_(plain.weight)
    torch.manual_seed(0)
    used = _used(nn.BatchNorm2d(3))
    nn.init.ones_(used.weight)
    nn.init.zeros_(used.bias)
    assert used.running_mean.abs().min() > 0.4 and used.num_batches_tracked == 1   # the old data's statistics stay


def test_demo_reset_batchnorm_prints_what_the_page_shows(capsys):
    ini.demo_reset_batchnorm()
    assert capsys.readouterr().out.splitlines() == [
        "before: running mean 0.48, batches 1",
        "[1.0, 1.0, 1.0] [0.0, 0.0, 0.0] [1.0, 1.0, 1.0] 0",
        "None [0.0, 0.0, 0.0] [1.0, 1.0, 1.0] 0"]


def test_default_init_of_linear_is_uniform_within_1_over_sqrt_fan_in():
    torch.manual_seed(0)
    fc = nn.Linear(400, 50)
    bound = 1 / math.sqrt(400)
    assert fc.weight.abs().max().item() <= bound and fc.bias.abs().max().item() <= bound
    assert fc.weight.abs().max().item() > 0.95 * bound  # uniform: values reach the bound


def test_apply_visits_every_submodule_and_returns_the_model():
    seen = []
    net = ini.make_net()
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear", "Sequential"]  # children first


def test_init_is_reproducible_with_a_seed():
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        nets.append(ini.make_net().apply(ini.init_weights))
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)


def test_autograd_still_sees_every_parameter():
    torch.manual_seed(0)
    net = ini.make_net().apply(ini.init_weights)
    params = list(net.parameters())
    assert len(params) == 6
    assert all(p.is_leaf and p.requires_grad and p.grad_fn is None for p in params)
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in params)
    assert all(p.grad.abs().sum() > 0 for p in params)  # a step would change every parameter


def test_demo_apply_prints_what_the_page_shows(capsys):
    ini.demo_apply()
    assert capsys.readouterr().out.splitlines() == [
        "conv bias: tensor([0.3000])", "fc weight: mean -0.000, std 0.099", "bn weight/bias: [1.0] [0.0]"]


# ---------------------------------------------------------------- the notes' mistakes

def test_notes_E12_zeros_underscore_is_not_a_tensor_method():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(AttributeError, match=r"^'Tensor' object has no attribute 'zeros_'$"):
        notes_initialize_weights()(model)
    assert not hasattr(torch.Tensor, "zeros_") and hasattr(torch.Tensor, "zero_")
    assert hasattr(nn.init, "zeros_")  # the nn.init function does exist


def test_notes_E12_without_batchnorm_the_notes_function_runs():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    notes_initialize_weights()(model)  # only the BatchNorm branch is broken
    assert torch.equal(model[0].bias, torch.full((2,), 0.3))


def test_notes_E13_second_argument_of_normal_is_the_mean():
    torch.manual_seed(0)
    w = torch.empty(256, 512)
    nn.init.normal_(w, 0.1)
    assert w.mean().item() == pytest.approx(0.1, abs=0.01)
    assert w.std().item() == pytest.approx(1.0, rel=0.01)
    nn.init.normal_(w, mean=0.0, std=0.1)
    assert abs(w.mean().item()) < 0.001 and w.std().item() == pytest.approx(0.1, rel=0.01)


def test_notes_E13_the_notes_linear_weights_are_ten_times_too_spread():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 1000))
    notes_initialize_weights()(model)
    assert model[0].weight.std().item() == pytest.approx(1.0, rel=0.01)
    assert model[0].weight.mean().item() == pytest.approx(0.1, abs=0.01)


def test_notes_E13_std_1_spreads_a_512_input_layer_23_times():
    torch.manual_seed(0)
    fc = nn.Linear(512, 256)
    x = torch.randn(1024, 512)
    nn.init.normal_(fc.weight, 0.1)  # the notes' call
    nn.init.zeros_(fc.bias)
    with torch.no_grad():
        assert fc(x).std().item() == pytest.approx(math.sqrt(512), rel=0.1)
        nn.init.normal_(fc.weight, mean=0.0, std=0.1)
        assert fc(x).std().item() == pytest.approx(0.1 * math.sqrt(512), rel=0.1)


def test_notes_E14_data_hides_an_in_place_change_from_autograd():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = a.sigmoid()
    out.data.zero_()
    out.sum().backward()  # no error ...
    assert torch.equal(a.grad, torch.zeros(3))  # ... and a wrong gradient
    right = torch.sigmoid(a.detach()) * (1 - torch.sigmoid(a.detach()))
    assert torch.all(right > 0.04)


def test_demo_data_hides_change_shows_the_wrong_gradient(capsys):
    assert torch.equal(ini.demo_data_hides_change(), torch.zeros(3))
    assert capsys.readouterr().out.splitlines()[0] == "tensor([0., 0., 0.])"


def test_notes_E14_detach_makes_the_same_change_an_error():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = a.sigmoid()
    out.detach().zero_()
    with pytest.raises(RuntimeError, match=r"^one of the variables needed for gradient computation has been "
                                           r"modified by an inplace operation: \[torch.FloatTensor \[3\]\], "
                                           r"which is output 0 of Sigmoid"):
        out.sum().backward()


def test_notes_E14_nn_init_needs_no_data_because_it_runs_under_no_grad():
    w = nn.Parameter(torch.empty(3))
    with pytest.raises(RuntimeError, match=r"^a leaf Variable that requires grad is being used in an "
                                           r"in-place operation\.$"):
        w.normal_()
    nn.init.normal_(w)
    nn.init.xavier_normal_(nn.Parameter(torch.empty(4, 3)))
    assert w.is_leaf and w.requires_grad and w.grad_fn is None


# ---------------------------------------------------------------- make_init

def test_make_init_applies_the_given_values():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(1000, 1000))
    net.apply(ini.make_init(conv_bias=0.5, linear_std=0.02))
    assert torch.equal(net[0].bias, torch.full((4,), 0.5))
    assert net[2].weight.std().item() == pytest.approx(0.02, rel=0.01)


def test_make_init_defaults_are_bias_0_std_0_01():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(1000, 1000))
    net.apply(ini.make_init())
    assert torch.equal(net[0].bias, torch.zeros(4))
    assert net[2].weight.std().item() == pytest.approx(0.01, rel=0.01)


@pytest.mark.parametrize("make", [lambda: nn.BatchNorm1d(3), lambda: nn.BatchNorm2d(3),
                                  lambda: nn.BatchNorm2d(3, affine=False), lambda: nn.GroupNorm(1, 3)])
def test_make_init_resets_normalisation_layers_like_init_weights(make):
    """The factory's functions once set BatchNorm2d's weight and bias only: affine=False failed,
    other BatchNorms were skipped, and the running statistics of the old data stayed."""
    torch.manual_seed(0)
    fresh, used = make(), _used(make())
    ini.make_init()(used)
    assert all(torch.equal(a, b) for a, b in zip(used.state_dict().values(), fresh.state_dict().values()))
    assert used.state_dict().keys() == fresh.state_dict().keys()


@pytest.mark.parametrize("std", [0, -0.1])
def test_make_init_rejects_a_std_that_is_not_positive(std):
    with pytest.raises(ValueError, match=rf"linear_std is a standard deviation and must be > 0, got {std}; "
                                         r"to set the mean, write nn.init.normal_\(w, mean=..., std=...\)"):
        ini.make_init(linear_std=std)


@pytest.mark.parametrize("kwargs, shown", [({"linear_std": "0.1"}, "'0.1'"), ({"conv_bias": float("nan")}, "nan"),
                                           ({"linear_std": float("inf")}, "inf"), ({"conv_bias": True}, "True"),
                                           ({"conv_bias": None}, "None")])
def test_make_init_rejects_values_that_are_not_finite_numbers(kwargs, shown):
    name = next(iter(kwargs))
    with pytest.raises(TypeError, match=rf"^{name} must be a finite number, got {shown}$"):
        ini.make_init(**kwargs)


# ---------------------------------------------------------------- issue 13: gains, Kaiming, defaults, symmetry

def test_calculate_gain_values():
    gains = ini.demo_calculate_gain()
    assert gains["linear"] == 1.0 == nn.init.calculate_gain("conv2d") == nn.init.calculate_gain("sigmoid")
    assert gains["tanh"] == pytest.approx(5 / 3)
    assert gains["relu"] == pytest.approx(math.sqrt(2))
    assert gains["leaky_relu 0.2"] == pytest.approx(math.sqrt(2 / (1 + 0.2 ** 2)))
    assert gains["leaky_relu sqrt(5)"] == pytest.approx(math.sqrt(1 / 3))


@pytest.mark.parametrize("kind", ["normal", "uniform"])
@pytest.mark.parametrize("gain", [1.0, 5 / 3, math.sqrt(2)])
def test_xavier_gain_scales_the_std_and_the_bound(kind, gain):
    torch.manual_seed(0)
    w = torch.empty(1000, 500)
    getattr(nn.init, f"xavier_{kind}_")(w, gain=gain)
    assert w.std().item() == pytest.approx(gain * math.sqrt(2 / 1500), rel=0.01)
    if kind == "uniform":
        bound = gain * math.sqrt(6 / 1500)
        assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound


def test_demo_xavier_gain_std_matches():
    wanted, got = ini.demo_xavier_gain()
    assert got == pytest.approx(wanted, rel=0.01)


@pytest.mark.parametrize("kind", ["normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity, a", [("relu", 0), ("leaky_relu", 0.2), ("tanh", 0), ("linear", 0)])
def test_kaiming_std_is_gain_over_sqrt_fan(kind, mode, nonlinearity, a):
    torch.manual_seed(0)
    w = torch.empty(128, 64, 3, 3)  # fan_in 576, fan_out 1152
    getattr(nn.init, f"kaiming_{kind}_")(w, a=a, mode=mode, nonlinearity=nonlinearity)
    fan = 64 * 9 if mode == "fan_in" else 128 * 9
    std = nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    assert w.std().item() == pytest.approx(std, rel=0.01)
    assert abs(w.mean().item()) < 0.02 * std
    if kind == "uniform":
        assert w.abs().max().item() <= std * math.sqrt(3) * (1 + 1e-6)


def test_kaiming_defaults_are_fan_in_and_gain_sqrt_2():
    torch.manual_seed(0)
    a, b = torch.empty(128, 64, 3, 3), torch.empty(128, 64, 3, 3)
    nn.init.kaiming_normal_(a)
    torch.manual_seed(0)
    nn.init.kaiming_normal_(b, mode="fan_in", nonlinearity="relu")
    assert torch.equal(a, b)
    assert a.std().item() == pytest.approx(math.sqrt(2) / math.sqrt(576), rel=0.01)


def test_demo_kaiming_measured_std_within_a_tenth_of_a_percent():
    """Both pages: 'within a tenth of a percent' / '不到千分之一'."""
    results = ini.demo_kaiming()
    assert len(results) == 3
    for wanted, got in results:
        assert got == pytest.approx(wanted, rel=0.001)
    texts = {lang: (ROOT / "docs" / lang / "init.md").read_text(encoding="utf-8") for lang in ("en", "zh")}
    assert "within a tenth of a percent" in texts["en"] and "不到千分之一" in texts["zh"]
    assert results[0][0] / results[1][0] == pytest.approx(math.sqrt(2))  # fan_out = 2 fan_in


def test_demo_default_init_reproduces_the_conv_weights_exactly():
    layer_w, by_hand = ini.demo_default_init()
    assert torch.equal(layer_w, by_hand)


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Conv2d(16, 32, 3), 144), (lambda: nn.Conv2d(3, 8, 5), 75),
    (lambda: nn.Linear(400, 50), 400), (lambda: nn.Linear(10, 300), 10)])
def test_default_weight_and_bias_lie_within_1_over_sqrt_fan_in(make, fan_in):
    torch.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    assert layer.weight.abs().max().item() <= bound and layer.bias.abs().max().item() <= bound
    assert layer.weight.abs().max().item() > 0.95 * bound  # uniform: values reach the bound


@pytest.mark.parametrize("make, shape", [(lambda: nn.Linear(400, 50), (50, 400)),
                                         (lambda: nn.Conv2d(16, 32, 3), (32, 16, 3, 3))])
def test_default_init_is_kaiming_uniform_a_sqrt_5(make, shape):
    torch.manual_seed(3)
    layer = make()
    torch.manual_seed(3)
    w = torch.empty(shape)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    assert torch.equal(layer.weight, w)


def test_default_std_is_sqrt_6_times_smaller_than_kaiming_relu():
    torch.manual_seed(0)
    fc = nn.Linear(1000, 1000)
    assert fc.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 1000), rel=0.01)
    assert (math.sqrt(2) / math.sqrt(1000)) / (1 / math.sqrt(3000)) == pytest.approx(math.sqrt(6))


@pytest.fixture(scope="module")
def symmetric_net():
    return ini.demo_symmetry()


def test_constant_init_hidden_units_stay_identical_after_training(symmetric_net):
    W1, b1, W2 = symmetric_net[0].weight, symmetric_net[0].bias, symmetric_net[2].weight
    assert not torch.all(W1 == 0.5)  # training did change the weights
    assert W1.unique(dim=0).shape[0] == 1  # ... but all 8 rows are equal
    assert torch.all(b1 == b1[0]) and W2.unique(dim=1).shape[1] == 1  # columns of layer 2 too


def test_constant_init_symmetry_holds_up_to_rounding_with_adam_and_tanh():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    for p in net.parameters():
        nn.init.constant_(p, -0.3)
    X, y = torch.randn(32, 4), torch.randn(32, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(20):
        loss = nn.functional.mse_loss(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    W1 = net[0].weight
    assert (W1 - W1[0]).abs().max().item() < 1e-6  # the page: differences in the last bits only
    assert not torch.all(W1 == -0.3)


def test_random_init_hidden_units_differ_after_training():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    ini.train_steps(net, steps=5)
    assert net[0].weight.unique(dim=0).shape[0] == 8


def test_zero_init_relu_mlp_first_layer_gets_no_gradient_and_never_learns():
    grads, sizes = ini.demo_zero_grads()
    assert grads["0.weight"] == grads["0.bias"] == grads["2.weight"] == 0.0
    assert grads["2.bias"] > 0  # only the output bias
    assert sizes["0.weight"] == sizes["0.bias"] == sizes["2.weight"] == 0.0 and sizes["2.bias"] > 0


def test_relu_gradient_at_zero_is_zero():
    x = torch.zeros(3, requires_grad=True)
    torch.relu(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros(3))


def test_zero_init_network_output_moves_towards_the_mean_of_the_targets():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    for p in net.parameters():
        nn.init.zeros_(p)
    ini.train_steps(net, steps=50)
    gen = torch.Generator().manual_seed(0)  # train_steps' data
    X, y = torch.randn(64, 4, generator=gen), torch.randn(64, 3, generator=gen)
    out = net(X)
    assert torch.equal(out, out[:1].expand_as(out))  # the same output for every input
    assert torch.allclose(out[0], y.mean(0), atol=0.05 * y.mean(0).abs().max().item() + 1e-3)
    assert (out[0] - y.mean(0)).abs().max() < y.mean(0).abs().max()  # closer than the start (0)


def test_zero_biases_are_fine_when_weights_are_random():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    nn.init.zeros_(net[0].bias)
    nn.init.zeros_(net[2].bias)
    ini.train_steps(net, steps=5)
    assert net[0].weight.unique(dim=0).shape[0] == 8


@pytest.mark.parametrize("steps", [0, -1, 2.5, True, "3"])
def test_train_steps_rejects_a_bad_step_count(steps):
    with pytest.raises(ValueError, match=rf"steps must be a positive integer, got {steps!r}"):
        ini.train_steps(nn.Linear(4, 3), steps=steps)


# --- exercises -------------------------------------------------------------------------------------
def test_exercise_deep_relu_default_loses_the_input_and_kaiming_keeps_its_scale():
    default, no_bias, kaiming = (ini.output_std(init) for init in (None, ini.zero_bias, ini.kaiming_relu))
    assert no_bias < 1e-6                      # the mean square shrinks about 6 times per layer
    assert 0.01 < default < 0.05               # what is left comes from the biases ...
    assert 0.3 < kaiming < 1.5                 # Kaiming keeps the input's order of magnitude
    torch.manual_seed(0)
    net = nn.Sequential(*[layer for _ in range(20) for layer in (nn.Linear(256, 256), nn.ReLU())])
    with torch.no_grad():
        out = net(torch.randn(512, 256))
    assert out.std(dim=0).max() < 1e-5 * out.std()  # ... and is the same for every input


def test_exercise_deep_relu_kaiming_relu_touches_only_linear_layers():
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.BatchNorm1d(32))
    bn = {k: v.clone() for k, v in net[2].state_dict().items()}
    net.apply(ini.kaiming_relu)
    assert torch.all(net[0].bias == 0)
    assert abs(net[0].weight.std().item() - math.sqrt(2 / 64)) < 0.02
    assert all(torch.equal(bn[k], v) for k, v in net[2].state_dict().items())


def test_exercise_break_symmetry_noise_lets_units_drift_apart_and_train_better():
    results = {}
    torch.manual_seed(0)
    for noise in (0.0, 0.01):
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(0.5).add_(noise * torch.randn_like(p))
        before = ini.unit_spread(net[0])
        loss = ini.train_steps(net, steps=200)
        results[noise] = (before, ini.unit_spread(net[0]), loss, net[0].weight.unique(dim=0).shape[0])
    assert results[0.0][0] == 0 and results[0.0][1] < 1e-6 and results[0.0][3] == 1
    before, after, loss, distinct = results[0.01]
    assert distinct == 8 and after > 5 * before and loss < results[0.0][2]
    assert (round(before, 3), round(after, 3), round(loss, 4)) == (0.056, 0.374, 0.9989)  # as the page shows
