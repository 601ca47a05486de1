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
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
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
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
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


if __name__ == "__main__":
    demo_apply()
    demo_xavier_std()
    demo_normal_mean_std()
    demo_fresh_batchnorm()
    demo_still_trainable()
    demo_no_grad()
    demo_data_hides_change()
    demo_make_init()
