"""Chapter `init`: initialising Conv (xavier), Linear (normal) and BatchNorm
(ones/zeros) through `model.apply`, without `.data`.

Run it as `python -m snippets.init`.
Sections marked `--8<-- [start:name]` are shown, in this order, on the pages
docs/{zh,en}/init.md; the page runs them as one program.
"""
# --8<-- [start:imports]
import math

import torch
from torch import nn

# --8<-- [end:imports]


# --8<-- [start:init_weights]
def init_weights(m: nn.Module) -> None:
    """Initialise one module; use as model.apply(init_weights)."""
    if isinstance(m, nn.Conv2d):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0.3)  # the notes' choice; 0 is the usual one
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, mean=0.0, std=0.1)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                        nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)):
        m.reset_parameters()  # weight 1, bias 0 if affine; BatchNorm: running stats too
# --8<-- [end:init_weights]


# --8<-- [start:make_net]
def make_net() -> nn.Sequential:
    """A small CNN for 1x8x8 images with each kind of layer init_weights handles."""
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )
# --8<-- [end:make_net]


def demo_apply() -> nn.Sequential:
    # --8<-- [start:demo_apply]
    torch.manual_seed(0)
    net = make_net()
    net.apply(init_weights)  # init_weights on every submodule, then on net
    conv, bn, fc = net[0], net[1], net[4]
    print("conv bias:", conv.bias.detach().unique())
    print(f"fc weight: mean {fc.weight.mean():.3f}, std {fc.weight.std():.3f}")
    print("bn weight/bias:", bn.weight.unique().tolist(), bn.bias.unique().tolist())
    # --8<-- [end:demo_apply]
    return net


def demo_xavier_std() -> tuple[float, float]:
    # --8<-- [start:demo_xavier_std]
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, kernel_size=3)
    nn.init.xavier_normal_(conv.weight)
    fan_in, fan_out = 64 * 3 * 3, 128 * 3 * 3  # in/out channels times kernel area
    wanted = math.sqrt(2 / (fan_in + fan_out))
    print(f"xavier std wanted {wanted:.4f}, got {conv.weight.std():.4f}")
    # --8<-- [end:demo_xavier_std]
    return wanted, conv.weight.std().item()


def demo_normal_mean_std() -> None:
    # --8<-- [start:demo_normal_mean_std]
    torch.manual_seed(0)
    w = torch.empty(256, 512)
    nn.init.normal_(w, 0.1)  # the notes: 0.1 is the MEAN, std stays 1
    print(f"normal_(w, 0.1):       mean {w.mean():.2f}, std {w.std():.2f}")
    nn.init.normal_(w, mean=0.0, std=0.1)  # what was meant
    print(f"normal_(w, std=0.1):   mean {w.mean():.2f}, std {w.std():.2f}")
    # --8<-- [end:demo_normal_mean_std]


def demo_notes_zeros_() -> None:
    # --8<-- [start:demo_notes_zeros_]
    bn = nn.BatchNorm2d(8)
    bn.bias.data.zeros_()  # the notes' line
    # --8<-- [end:demo_notes_zeros_]


def demo_fresh_batchnorm() -> None:
    # --8<-- [start:demo_fresh_batchnorm]
    bn = nn.BatchNorm2d(3)  # a new BatchNorm is already 1 / 0
    print(bn.weight.tolist(), bn.bias.tolist())
    print(hasattr(torch.Tensor, "zeros_"), hasattr(torch.Tensor, "zero_"))
    # --8<-- [end:demo_fresh_batchnorm]


def demo_reset_batchnorm() -> None:
    # --8<-- [start:demo_reset_batchnorm]
    torch.manual_seed(0)
    used = nn.BatchNorm2d(3)
    nn.init.normal_(used.weight)  # as training would have changed it
    used(torch.randn(8, 3, 4, 4) + 5)  # the running mean moves towards 5
    plain = nn.BatchNorm2d(3, affine=False)  # no weight, no bias
    plain(torch.randn(8, 3, 4, 4) + 5)
    mean, batches = used.running_mean[0], used.num_batches_tracked
    print(f"before: running mean {mean:.2f}, batches {batches}")
    for bn in (used, plain):
        init_weights(bn)
        print(bn.weight if bn.weight is None else bn.weight.tolist(),
              bn.running_mean.tolist(), bn.running_var.tolist(),
              bn.num_batches_tracked.item())
    # --8<-- [end:demo_reset_batchnorm]


def demo_leaf_in_place() -> None:
    # --8<-- [start:demo_leaf_in_place]
    w = nn.Parameter(torch.empty(3))
    w.normal_()  # an in-place change that autograd would record
    # --8<-- [end:demo_leaf_in_place]


def demo_no_grad() -> None:
    # --8<-- [start:demo_no_grad]
    w = nn.Parameter(torch.empty(3))
    nn.init.normal_(w)  # fine: nn.init works under torch.no_grad()
    with torch.no_grad():
        w.normal_()  # the same thing by hand
    print(w.is_leaf, w.requires_grad, w.grad_fn)
    # --8<-- [end:demo_no_grad]


def demo_still_trainable() -> None:
    # --8<-- [start:demo_still_trainable]
    torch.manual_seed(0)
    net = make_net().apply(init_weights)  # apply returns the model
    print(all(p.is_leaf and p.requires_grad for p in net.parameters()))
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    print(all(p.grad is not None for p in net.parameters()))
    # --8<-- [end:demo_still_trainable]


def demo_data_hides_change() -> torch.Tensor:
    # --8<-- [start:demo_data_hides_change]
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = a.sigmoid()  # backward needs out: sigmoid' = out * (1 - out)
    out.data.zero_()  # change out behind autograd's back
    out.sum().backward()
    print(a.grad)  # wrong, and no error
    s = torch.sigmoid(a.detach())
    print(s * (1 - s))  # the right gradient
    # --8<-- [end:demo_data_hides_change]
    return a.grad


def demo_detach_catches_change() -> None:
    # --8<-- [start:demo_detach_catches_change]
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = a.sigmoid()
    out.detach().zero_()  # the same change through detach()
    out.sum().backward()  # autograd notices
    # --8<-- [end:demo_detach_catches_change]


# --8<-- [start:make_init]
def make_init(conv_bias: float = 0.0, linear_std: float = 0.01):
    """An init function like init_weights with your own conv bias and Linear std."""
    for name, value in (("conv_bias", conv_bias), ("linear_std", linear_std)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise TypeError(f"{name} must be a finite number, got {value!r}")
    if linear_std <= 0:
        raise ValueError(
            f"linear_std is a standard deviation and must be > 0, got {linear_std}; "
            "to set the mean, write nn.init.normal_(w, mean=..., std=...) yourself"
        )

    def init(m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, conv_bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        else:
            init_weights(m)  # normalisation layers: reset_parameters(), as above
    return init
# --8<-- [end:make_init]


def demo_make_init() -> nn.Sequential:
    # --8<-- [start:demo_make_init]
    torch.manual_seed(0)
    net = make_net().apply(make_init(conv_bias=0.0, linear_std=0.01))
    print(net[0].bias.unique().tolist(), f"{net[4].weight.std():.3f}")
    # --8<-- [end:demo_make_init]
    return net


def demo_make_init_bad() -> None:
    # --8<-- [start:demo_make_init_bad]
    make_init(linear_std=-0.1)
    # --8<-- [end:demo_make_init_bad]


def demo_calculate_gain() -> dict[str, float]:
    # --8<-- [start:demo_calculate_gain]
    gains = {
        "linear": nn.init.calculate_gain("linear"),  # also conv, sigmoid: 1
        "tanh": nn.init.calculate_gain("tanh"),  # 5/3
        "relu": nn.init.calculate_gain("relu"),  # sqrt(2)
        "leaky_relu 0.2": nn.init.calculate_gain("leaky_relu", 0.2),
        "leaky_relu sqrt(5)": nn.init.calculate_gain("leaky_relu", math.sqrt(5)),
    }
    for name, gain in gains.items():
        print(f"{name:20} gain {gain:.4f}")
    # --8<-- [end:demo_calculate_gain]
    return gains


def demo_xavier_gain() -> tuple[float, float]:
    # --8<-- [start:demo_xavier_gain]
    torch.manual_seed(0)
    w = torch.empty(1000, 500)  # Linear(500, 1000): fan_in 500, fan_out 1000
    gain = nn.init.calculate_gain("tanh")
    nn.init.xavier_uniform_(w, gain=gain)  # for a layer followed by tanh
    bound = gain * math.sqrt(6 / (500 + 1000))  # uniform on [-bound, bound]
    print(f"bound {bound:.4f}, largest |w| {w.abs().max():.4f}")
    wanted = gain * math.sqrt(2 / (500 + 1000))  # std of that uniform
    print(f"std wanted {wanted:.4f}, got {w.std():.4f}")
    # --8<-- [end:demo_xavier_gain]
    return wanted, w.std().item()


def demo_kaiming() -> list[tuple[float, float]]:
    # --8<-- [start:demo_kaiming]
    torch.manual_seed(0)
    w = torch.empty(128, 64, 3, 3)  # Conv2d(64, 128, 3)
    fan_in, fan_out = 64 * 3 * 3, 128 * 3 * 3
    gain = math.sqrt(2)  # calculate_gain("relu")
    results = []
    for mode, fan in [("fan_in", fan_in), ("fan_out", fan_out)]:
        nn.init.kaiming_normal_(w, mode=mode, nonlinearity="relu")
        results.append((gain / math.sqrt(fan), w.std().item()))
        print(f"kaiming_normal_  {mode:7}: std wanted {results[-1][0]:.4f}, "
              f"got {results[-1][1]:.4f}")
    nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu")
    results.append((gain / math.sqrt(fan_in), w.std().item()))
    print(f"kaiming_uniform_ fan_in : std wanted {results[-1][0]:.4f}, "
          f"got {results[-1][1]:.4f}, bound {gain * math.sqrt(3 / fan_in):.4f}")
    # --8<-- [end:demo_kaiming]
    return results


def demo_default_init() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_default_init]
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 32, kernel_size=3)  # fan_in = 16 * 3 * 3 = 144
    torch.manual_seed(0)
    w = torch.empty(32, 16, 3, 3)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # what Conv2d did
    print(torch.equal(conv.weight, w))
    bound = 1 / math.sqrt(144)
    print(f"bound {bound:.4f}, largest |weight| {conv.weight.abs().max():.4f}, "
          f"largest |bias| {conv.bias.abs().max():.4f}")
    # --8<-- [end:demo_default_init]
    return conv.weight.detach(), w


# --8<-- [start:train_steps]
def train_steps(net: nn.Module, steps: int = 20, lr: float = 0.1) -> float:
    """Train net for a few SGD steps on fixed random data (4 inputs, 3 outputs)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 4, generator=gen), torch.randn(64, 3, generator=gen)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.mse_loss(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()
# --8<-- [end:train_steps]


def demo_symmetry() -> nn.Sequential:
    # --8<-- [start:demo_symmetry]
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    for p in net.parameters():
        nn.init.constant_(p, 0.5)  # every weight the same
    loss = train_steps(net, steps=50)
    W1 = net[0].weight  # (8, 4): one row per hidden unit
    print(f"loss {loss:.4f}, weights changed: {not torch.all(W1 == 0.5).item()}")
    print("distinct hidden units:", W1.unique(dim=0).shape[0])
    print(W1[:3].detach())
    # --8<-- [end:demo_symmetry]
    return net


def demo_zero_grads() -> tuple[dict[str, float], dict[str, float]]:
    # --8<-- [start:demo_zero_grads]
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    for p in net.parameters():
        nn.init.zeros_(p)
    gen = torch.Generator().manual_seed(1)
    X, y = torch.randn(64, 4, generator=gen), torch.randn(64, 3, generator=gen)
    nn.functional.mse_loss(net(X), y).backward()
    grads = {name: round(p.grad.abs().sum().item(), 4)
             for name, p in net.named_parameters()}
    print("gradients:", grads)
    # --8<-- [end:demo_zero_grads]
    # --8<-- [start:demo_zero_training]
    train_steps(net, steps=50)
    sizes = {name: round(p.abs().sum().item(), 4) for name, p in net.named_parameters()}
    print("after training:", sizes)
    # --8<-- [end:demo_zero_training]
    return grads, sizes


# --8<-- [start:exercise_deep_relu]
def output_std(init=None, depth: int = 20, width: int = 256) -> float:
    """Std of what `depth` Linear+ReLU layers, set up by `init`, make of N(0, 1)."""
    torch.manual_seed(0)
    net = nn.Sequential(*[layer for _ in range(depth)
                          for layer in (nn.Linear(width, width), nn.ReLU())])
    if init is not None:
        net.apply(init)
    with torch.no_grad():
        return net(torch.randn(512, width)).std().item()


def zero_bias(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.zeros_(m.bias)  # the default weights, without the biases


def kaiming_relu(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        nn.init.zeros_(m.bias)
# --8<-- [end:exercise_deep_relu]


def exercise_deep_relu() -> dict[str, float]:
    # --8<-- [start:exercise_deep_relu_check]
    for name, init in [("default", None), ("default, zero biases", zero_bias),
                       ("kaiming_normal_", kaiming_relu)]:
        print(f"{name:21} output std {output_std(init):.3g}")
    # --8<-- [end:exercise_deep_relu_check]
    return {name: output_std(init) for name, init in
            [("default", None), ("zero_bias", zero_bias), ("kaiming", kaiming_relu)]}


# --8<-- [start:exercise_break_symmetry]
def unit_spread(layer: nn.Linear) -> float:
    """How far a layer's units (the rows of its weight) are from their mean."""
    W = layer.weight.detach()
    return (W - W.mean(dim=0)).norm().item()
# --8<-- [end:exercise_break_symmetry]


def exercise_break_symmetry() -> None:
    # --8<-- [start:exercise_break_symmetry_check]
    torch.manual_seed(0)
    for noise in (0.0, 0.01):
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(0.5).add_(noise * torch.randn_like(p))  # equal, plus noise
        before = unit_spread(net[0])
        loss = train_steps(net, steps=200)
        after = unit_spread(net[0])
        print(f"noise {noise}: spread {before:.3f} -> {after:.3f}, loss {loss:.4f}")
    # --8<-- [end:exercise_break_symmetry_check]


if __name__ == "__main__":
    demo_apply()
    demo_xavier_std()
    demo_normal_mean_std()
    demo_fresh_batchnorm()
    demo_reset_batchnorm()
    demo_still_trainable()
    demo_no_grad()
    demo_data_hides_change()
    demo_make_init()
    for demo in (demo_calculate_gain, demo_xavier_gain, demo_kaiming, demo_default_init,
                 demo_symmetry, demo_zero_grads, exercise_deep_relu,
                 exercise_break_symmetry):
        demo()
