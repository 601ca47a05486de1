"""Chapter `layers`: hand-written 2-D cross-correlation, convolution and pooling,
next to PyTorch's built-ins, a vectorised version and a speed comparison.

Run it as `python -m snippets.layers` (or `python snippets/layers.py`).
Sections marked `--8<-- [start:name]` are shown, in this order, on the pages
docs/{zh,en}/layers.md; the page runs them as one program.
"""
# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from torch import nn

# --8<-- [end:imports]


# --8<-- [start:corr2d]
def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation of one (H, W) input with one (h, w) kernel, stride 1."""
    if not isinstance(K, torch.Tensor) or K.dim() != 2:
        shape = getattr(K, "shape", K)
        raise ValueError(f"corr2d expects a 2-D (h, w) kernel, got {shape}")
    h, w = K.shape
    _check_2d(X, (h, w), "corr2d")
    X, K = X.float(), K.float()
    Y = torch.zeros(X.shape[0] - h + 1, X.shape[1] - w + 1)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y
# --8<-- [end:corr2d]


# --8<-- [start:check_2d]
def _check_2d(X: torch.Tensor, window: tuple, what: str) -> None:
    """Reject input that the loop versions would silently get wrong."""
    if not isinstance(X, torch.Tensor) or X.dim() != 2:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(
            f"{what} expects a 2-D (H, W) tensor, got shape {shape}; for (C, H, W) "
            "or (N, C, H, W) input use the built-in F.conv2d / F.max_pool2d"
        )
    h, w = window
    if h < 1 or w < 1 or h > X.shape[0] or w > X.shape[1]:
        raise ValueError(
            f"{what}: window {h}x{w} does not fit in input "
            f"{X.shape[0]}x{X.shape[1]}; use a smaller kernel or pad the input first"
        )
# --8<-- [end:check_2d]


# --8<-- [start:conv2d_module]
class Conv2D(nn.Module):
    """One-channel 2-D convolution layer on corr2d: a learnable kernel and bias."""

    def __init__(self, kernel_size: int | tuple[int, int]):
        super().__init__()  # same as super(Conv2D, self).__init__() in Python 3
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.randn(kernel_size))
        self.bias = nn.Parameter(torch.randn(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return corr2d(x, self.weight) + self.bias
# --8<-- [end:conv2d_module]


# --8<-- [start:out_size]
def conv_out_size(n: int, k: int, padding: int = 0, stride: int = 1,
                  dilation: int = 1) -> int:
    """Output length along one axis: floor((n + 2p - d(k - 1) - 1) / s) + 1."""
    span = dilation * (k - 1) + 1  # inputs one dilated kernel covers
    if span > n + 2 * padding:
        raise ValueError(f"kernel {k} with dilation {dilation} spans {span}, "
                         f"more than the padded input {n + 2 * padding}")
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1
# --8<-- [end:out_size]


# --8<-- [start:comp_conv2d]
def comp_conv2d(conv2d: nn.Conv2d, X: torch.Tensor) -> torch.Tensor:
    """Run a 1-in/1-out nn.Conv2d on a 2-D tensor; drop the batch and channel dims."""
    X = X.reshape((1, 1) + X.shape)  # (1, 1) + torch.Size concatenates: (1, 1, H, W)
    Y = conv2d(X)
    return Y.reshape(Y.shape[2:])
# --8<-- [end:comp_conv2d]


# --8<-- [start:pool2d]
def pool2d(X: torch.Tensor, pool_size: tuple[int, int], mode: str = "max",
           stride: int = 1) -> torch.Tensor:
    """Max or average pooling of a 2-D tensor; stride 1 by default, as in the notes."""
    if mode not in ("max", "avg"):
        raise ValueError(f"unknown pool mode {mode!r}; use 'max' or 'avg'")
    if mode == "avg" and not X.is_floating_point():
        raise TypeError(f"avg pooling needs a floating-point tensor, got {X.dtype}; "
                        "call X.float() first")
    p_h, p_w = pool_size
    _check_2d(X, (p_h, p_w), "pool2d")
    s = stride  # a short name for the slices below
    Y = torch.zeros((X.shape[0] - p_h) // s + 1, (X.shape[1] - p_w) // s + 1,
                    dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i * s:i * s + p_h, j * s:j * s + p_w]
            Y[i, j] = window.max() if mode == "max" else window.mean()
    return Y
# --8<-- [end:pool2d]


# --8<-- [start:unfold]
def corr2d_unfold(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The same cross-correlation without Python loops: view every window at once."""
    h, w = K.shape
    _check_2d(X, (h, w), "corr2d_unfold")
    windows = X.float().unfold(0, h, 1).unfold(1, w, 1)  # (H-h+1, W-w+1, h, w), a view
    return (windows * K.float()).sum(dim=(-1, -2))
# --8<-- [end:unfold]


# --8<-- [start:max_pool_unfold]
def max_pool2d_unfold(X: torch.Tensor, pool_size: tuple[int, int],
                      stride: int = 1) -> torch.Tensor:
    """Max pooling with unfold: the maximum of each window, stride 1 by default."""
    p_h, p_w = pool_size
    _check_2d(X, (p_h, p_w), "max_pool2d_unfold")
    return X.unfold(0, p_h, stride).unfold(1, p_w, stride).amax(dim=(-1, -2))
# --8<-- [end:max_pool_unfold]


def demo_corr2d() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_corr2d]
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    Y = corr2d(X, K)
    print(Y)
    # --8<-- [end:demo_corr2d]
    # --8<-- [start:demo_f_conv2d]
    unbatched = F.conv2d(X[None], K[None, None])  # (C, H, W) -> (out, H', W')
    batched = F.conv2d(X[None, None], K[None, None])  # (N, C, H, W) -> (N, out, H', W')
    print(unbatched.shape, batched.shape)
    print(torch.equal(unbatched[0], Y), torch.equal(batched[0, 0], Y))
    # --8<-- [end:demo_f_conv2d]
    return Y, unbatched, batched


def demo_learn_edge() -> torch.Tensor:
    # --8<-- [start:demo_learn_edge]
    torch.manual_seed(0)
    X = torch.ones(6, 8)
    X[:, 2:6] = 0  # a dark stripe: edges at columns 2 and 6
    Y = corr2d(X, torch.tensor([[1.0, -1.0]]))  # the edge map we want to learn
    layer = Conv2D(kernel_size=(1, 2))
    opt = torch.optim.SGD(layer.parameters(), lr=0.01)
    for _ in range(200):
        loss = ((layer(X) - Y) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    kernel = layer.weight.detach().round(decimals=2).tolist()
    print(f"loss {loss.item():.6f}, kernel {kernel}")
    # --8<-- [end:demo_learn_edge]
    return layer.weight.detach()


def demo_out_size() -> list[tuple[int, int]]:
    # --8<-- [start:demo_out_size]
    torch.manual_seed(0)
    X = torch.rand(8, 8)
    configs = [  # (kernel, padding, stride, dilation)
        (3, 1, 1, 1), (3, 0, 1, 1), (5, 2, 2, 1),
        (3, 1, 1, 2), (3, 2, 1, 2), (3, 1, 2, 3),
    ]
    sizes = []
    for k, p, s, d in configs:
        conv = nn.Conv2d(1, 1, kernel_size=k, padding=p, stride=s, dilation=d)
        shape = tuple(comp_conv2d(conv, X).shape)
        rule = conv_out_size(8, k, p, s, d)
        print(f"k={k} padding={p} stride={s} dilation={d}: {shape}, rule says {rule}")
        sizes.append((shape[0], rule))
    # --8<-- [end:demo_out_size]
    return sizes


def demo_builtins() -> None:
    # --8<-- [start:demo_builtins]
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)  # (N, C, H, W)
    conv = nn.Conv2d(in_channels=3, out_channels=4, kernel_size=3, padding=1)
    y_module = conv(x)  # module: owns weight and bias
    y_function = F.conv2d(x, conv.weight, conv.bias, padding=1)  # you pass them
    print(y_module.shape, torch.allclose(y_module, y_function))
    pool = nn.MaxPool2d(kernel_size=2)  # both forms exist for pooling too
    print(pool(y_module).shape, torch.equal(pool(y_module), F.max_pool2d(y_module, 2)))
    # --8<-- [end:demo_builtins]


# --8<-- [start:param_count]
def conv2d_param_count(c_in: int, c_out: int, k: int, groups: int = 1,
                       bias: bool = True) -> int:
    """Parameters of nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)."""
    for name, value in (("c_in", c_in), ("c_out", c_out), ("k", k), ("groups", groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both c_in={c_in} and "
                         f"c_out={c_out}; each group maps c_in/groups to c_out/groups")
    weights = c_out * (c_in // groups) * k * k  # each kernel sees c_in/groups channels
    return weights + (c_out if bias else 0)
# --8<-- [end:param_count]


def demo_multi_channel() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_multi_channel]
    torch.manual_seed(0)
    x = torch.rand(3, 5, 5)  # (C_in, H, W): 3 input channels
    conv = nn.Conv2d(in_channels=3, out_channels=2, kernel_size=3)
    print(conv.weight.shape)  # (C_out, C_in, k, k)
    w, b = conv.weight.detach(), conv.bias.detach()
    by_hand = torch.stack([  # output channel o: sum over ALL input channels c
        sum(corr2d(x[c], w[o, c]) for c in range(3)) + b[o] for o in range(2)
    ])
    print(by_hand.shape, torch.allclose(conv(x), by_hand, atol=1e-6))
    # --8<-- [end:demo_multi_channel]
    return conv(x).detach(), by_hand


def demo_param_count() -> list[tuple[int, int]]:
    # --8<-- [start:demo_param_count]
    counts = []
    for c_in, c_out, k in [(3, 2, 3), (3, 64, 7), (64, 128, 3)]:
        conv = nn.Conv2d(c_in, c_out, k)
        numel = sum(p.numel() for p in conv.parameters())
        formula = conv2d_param_count(c_in, c_out, k)
        print(f"Conv2d({c_in}, {c_out}, {k}): numel {numel}, formula {formula}")
        counts.append((numel, formula))
    # --8<-- [end:demo_param_count]
    return counts


def demo_depthwise() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_depthwise]
    torch.manual_seed(0)
    x = torch.rand(4, 6, 6)  # 4 channels
    depthwise = nn.Conv2d(4, 4, kernel_size=3, groups=4)  # groups = C_in
    print(depthwise.weight.shape)  # (4, 1, 3, 3): one 3x3 kernel per channel
    w, b = depthwise.weight.detach(), depthwise.bias.detach()
    per_channel = torch.stack([corr2d(x[c], w[c, 0]) + b[c] for c in range(4)])
    print(torch.allclose(depthwise(x), per_channel, atol=1e-6))
    # --8<-- [end:demo_depthwise]
    return depthwise(x).detach(), per_channel


def demo_groups_params() -> dict[str, int]:
    # --8<-- [start:demo_groups_params]
    counts = {}
    for groups in (1, 4, 64):  # 64 = C_in: depthwise
        conv = nn.Conv2d(64, 64, kernel_size=3, groups=groups)
        counts[f"groups={groups}"] = sum(p.numel() for p in conv.parameters())
    separable = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=3, groups=64),  # depthwise: space
        nn.Conv2d(64, 128, kernel_size=1),  # pointwise 1x1: mixes channels
    )
    counts["separable 64->128"] = sum(p.numel() for p in separable.parameters())
    counts["full 64->128"] = conv2d_param_count(64, 128, 3)
    for name, n in counts.items():
        print(f"{name}: {n} parameters")
    # --8<-- [end:demo_groups_params]
    return counts


def demo_pool_stride() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_pool_stride]
    X = torch.arange(16.0).reshape(4, 4)
    manual = pool2d(X, (2, 2))  # stride 1: 3x3 output
    builtin = F.max_pool2d(X[None], (2, 2))[0]  # stride = kernel: 2x2
    print(manual)
    print(builtin)
    print(torch.equal(manual, F.max_pool2d(X[None], (2, 2), stride=1)[0]))
    print(torch.equal(manual[::2, ::2], builtin))  # every other stride-1 window
    print(torch.equal(pool2d(X, (2, 2), stride=2), builtin))
    # --8<-- [end:demo_pool_stride]
    return manual, builtin


def demo_ceil_mode() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_ceil_mode]
    X = torch.arange(25.0).reshape(1, 5, 5)  # one channel, 5x5
    floor = F.max_pool2d(X, 2)  # default ceil_mode=False: row and column 4 are dropped
    ceil = F.max_pool2d(X, 2, ceil_mode=True)  # a last, partial window is kept
    print(floor[0])
    print(ceil[0])
    # --8<-- [end:demo_ceil_mode]
    return floor, ceil


def demo_adaptive() -> list[tuple[int, ...]]:
    # --8<-- [start:demo_adaptive]
    torch.manual_seed(0)
    pool = nn.AdaptiveAvgPool2d((2, 2))  # fix the OUTPUT size; windows adapt
    shapes = []
    for h, w in [(7, 7), (10, 10), (13, 9)]:
        shapes.append(tuple(pool(torch.rand(8, h, w)).shape))
        print(f"input 8x{h}x{w} -> {shapes[-1]}")
    # --8<-- [end:demo_adaptive]
    return shapes


def demo_global_pool() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_global_pool]
    torch.manual_seed(0)
    x = torch.rand(2, 8, 13, 9)  # (N, C, H, W)
    gap = nn.AdaptiveAvgPool2d(1)  # output 1x1: global average pooling
    print(gap(x).shape)
    print(torch.allclose(gap(x)[..., 0, 0], x.mean(dim=(-2, -1))))
    # --8<-- [end:demo_global_pool]
    return gap(x), x.mean(dim=(-2, -1))


def demo_bad_input() -> None:
    # --8<-- [start:demo_bad_input]
    batch = torch.rand(1, 1, 6, 8)  # the notes' version returned an empty tensor here
    corr2d(batch, torch.tensor([[1.0, -1.0]]))
    # --8<-- [end:demo_bad_input]


def demo_more_errors() -> None:
    # --8<-- [start:demo_more_errors]
    X = torch.arange(16).reshape(4, 4)  # an integer tensor
    attempts = {
        "kernel too large": lambda: corr2d(X, torch.ones(5, 5)),
        "3-D input": lambda: pool2d(X[None], (2, 2)),
        "unknown mode": lambda: pool2d(X, (2, 2), mode="min"),
        "avg on integers": lambda: pool2d(X, (2, 2), mode="avg"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except (ValueError, TypeError) as err:
            print(f"{name}: {type(err).__name__}: {err}")
    # --8<-- [end:demo_more_errors]


def demo_unfold() -> None:
    # --8<-- [start:demo_unfold]
    torch.manual_seed(0)
    X, K = torch.rand(32, 32), torch.rand(3, 3)
    builtin = F.conv2d(X[None], K[None, None])[0]
    print(torch.allclose(corr2d(X, K), corr2d_unfold(X, K), atol=1e-5))
    print(torch.allclose(corr2d_unfold(X, K), builtin, atol=1e-5))
    print(torch.equal(max_pool2d_unfold(X, (2, 2)), pool2d(X, (2, 2))))
    # --8<-- [end:demo_unfold]


def demo_channels_last() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_channels_last]
    torch.manual_seed(0)
    x = torch.rand(2, 8, 16, 16)  # (N, C, H, W)
    x_cl = x.to(memory_format=torch.channels_last)  # same shape, other strides
    print(tuple(x_cl.shape), x.stride(), x_cl.stride())
    conv = nn.Conv2d(8, 16, kernel_size=3, padding=1)
    with torch.no_grad():
        y = conv(x)
        conv = conv.to(memory_format=torch.channels_last)  # weights too, in place
        y_cl = conv(x_cl)
    print(y_cl.is_contiguous(memory_format=torch.channels_last))
    print(torch.allclose(y, y_cl, atol=1e-5))
    # --8<-- [end:demo_channels_last]
    return y, y_cl


# --8<-- [start:exercise_corr2d_strided]
def corr2d_strided(X: torch.Tensor, K: torch.Tensor, padding: int = 0,
                   stride: int = 1) -> torch.Tensor:
    """corr2d with `padding` zeros on every side and windows `stride` apart."""
    X = F.pad(X, (padding, padding, padding, padding))  # left, right, top, bottom
    windows = X.unfold(0, K.shape[0], stride).unfold(1, K.shape[1], stride)
    return (windows * K).sum(dim=(-2, -1))
# --8<-- [end:exercise_corr2d_strided]


def exercise_corr2d_strided() -> None:
    # --8<-- [start:exercise_corr2d_strided_check]
    torch.manual_seed(0)
    X, K = torch.rand(8, 8), torch.rand(3, 3)
    for padding, stride in [(1, 1), (1, 2), (0, 3)]:
        mine = corr2d_strided(X, K, padding, stride)
        builtin = F.conv2d(X[None], K[None, None], padding=padding, stride=stride)[0]
        rule = conv_out_size(8, 3, padding, stride)
        same = torch.allclose(mine, builtin, atol=1e-6)
        print(f"p={padding} s={stride}: {tuple(mine.shape)}, rule says {rule}, {same}")
    # --8<-- [end:exercise_corr2d_strided_check]


# --8<-- [start:exercise_avg_pool_as_conv]
def avg_pool_as_conv(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k average pooling (stride k) of an (N, C, H, W) input, as one convolution."""
    channels = x.shape[1]
    weight = torch.full((channels, 1, k, k), 1 / k**2, dtype=x.dtype, device=x.device)
    return F.conv2d(x, weight, stride=k, groups=channels)  # each channel on its own
# --8<-- [end:exercise_avg_pool_as_conv]


def exercise_avg_pool_as_conv() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:exercise_avg_pool_as_conv_check]
    torch.manual_seed(0)
    x = torch.rand(2, 3, 6, 6)
    pooled = avg_pool_as_conv(x, 2)
    print(pooled.shape, torch.allclose(pooled, F.avg_pool2d(x, 2), atol=1e-6))
    # --8<-- [end:exercise_avg_pool_as_conv_check]
    return pooled, F.avg_pool2d(x, 2)


if __name__ == "__main__":
    demos = (demo_corr2d, demo_learn_edge, demo_out_size, demo_builtins,
             demo_multi_channel, demo_param_count, demo_depthwise, demo_groups_params,
             demo_pool_stride, demo_ceil_mode, demo_adaptive, demo_global_pool,
             demo_more_errors, demo_unfold, demo_channels_last,
             exercise_corr2d_strided, exercise_avg_pool_as_conv)
    for demo in demos:
        print(f"--- {demo.__name__}")
        demo()
