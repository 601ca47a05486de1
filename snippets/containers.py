"""Chapter `containers`: one small network written five ways (Sequential,
Sequential with names, ModuleList, ModuleDict, a Module subclass), a helper that
copies weights between them, and the plain-list pitfall.

Run it as `python -m snippets.containers` (or `python snippets/containers.py`).
Sections marked `--8<-- [start:name]` are shown, in page order, on the pages
docs/{zh,en}/containers.md; each demo function holds one block of the page.
"""
# --8<-- [start:imports]
from collections import OrderedDict

import torch
from torch import nn

# --8<-- [end:imports]

# isort: split
# --8<-- [start:imports_vision]
from torchvision.models import resnet18

# --8<-- [end:imports_vision]


# --8<-- [start:sequential]
def make_sequential() -> nn.Sequential:
    """Layers in order; Sequential's own forward feeds each output to the next layer."""
    return nn.Sequential(
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
# --8<-- [end:sequential]


# --8<-- [start:sequential_named]
def make_sequential_named() -> nn.Sequential:
    """The same, with names instead of 0, 1, 2."""
    return nn.Sequential(OrderedDict([
        ("hidden", nn.Linear(64, 32)),
        ("act", nn.ReLU()),
        ("out", nn.Linear(32, 10)),
    ]))
# --8<-- [end:sequential_named]


# --8<-- [start:module_list]
class ListNet(nn.Module):
    """Layers kept in a ModuleList; the data path is written in forward."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
# --8<-- [end:module_list]


# --8<-- [start:module_dict]
class DictNet(nn.Module):
    """Layers kept in a ModuleDict, looked up by name in forward."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict({
            "hidden": nn.Linear(64, 32),
            "act": nn.ReLU(),
            "out": nn.Linear(32, 10),
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers["act"](self.layers["hidden"](x))
        return self.layers["out"](x)
# --8<-- [end:module_dict]


# --8<-- [start:subclass]
class MLP(nn.Module):
    """Each layer is an attribute; assigning a Module to self registers it."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.act = nn.ReLU()
        self.out = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.hidden(x)))
# --8<-- [end:subclass]


# --8<-- [start:count_params]
def count_params(model: nn.Module) -> int:
    """Number of trainable numbers in the model."""
    return sum(p.numel() for p in model.parameters())
# --8<-- [end:count_params]


# --8<-- [start:copy_by_order]
def copy_by_order(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of src into dst, by position, not by name.

    Works between models whose state_dict keys differ ('0.weight' vs 'hidden.weight')
    but which hold the same tensors in the same order.
    """
    if not isinstance(src, nn.Module) or not isinstance(dst, nn.Module):
        raise TypeError(f"copy_by_order expects two nn.Module objects, got "
                        f"{type(src).__name__} and {type(dst).__name__}")
    src_items = list(src.state_dict().items())
    dst_items = list(dst.state_dict().items())
    if len(src_items) != len(dst_items):
        raise ValueError(
            f"cannot copy by order: src has {len(src_items)} tensors, "
            f"dst has {len(dst_items)}; the two models do not have the same layers"
        )
    for i, ((s_name, s), (d_name, d)) in enumerate(zip(src_items, dst_items)):
        if s.shape != d.shape:
            raise ValueError(
                f"cannot copy by order: tensor #{i} is src '{s_name}' "
                f"{tuple(s.shape)} but dst '{d_name}' {tuple(d.shape)}; "
                "the layers are in a different order or have other sizes"
            )
    with torch.no_grad():
        for (_, s), (_, d) in zip(src_items, dst_items):
            d.copy_(s)  # state_dict tensors share storage with the model's own
# --8<-- [end:copy_by_order]


# --8<-- [start:list_pitfall]
class PlainListNet(nn.Module):
    """WRONG: a plain Python list hides its layers from nn.Module."""

    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
# --8<-- [end:list_pitfall]


# --8<-- [start:repeated]
class Repeated(nn.Module):
    """n equal layers from a ModuleList comprehension, as in the course."""

    def __init__(self, n: int = 10, width: int = 10):
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int (how many layers), got {n!r}")
        self.linears = nn.ModuleList([nn.Linear(width, width) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.linears:
            x = torch.relu(layer(x))
        return x
# --8<-- [end:repeated]


# --8<-- [start:param_containers]
class Gains(nn.Module):
    """Learnable tensors that are not layers: a ParameterList and a ParameterDict."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.scales = nn.ParameterList([nn.Parameter(torch.ones(4)) for _ in range(k)])
        self.extra = nn.ParameterDict({"shift": nn.Parameter(torch.zeros(4))})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for scale in self.scales:
            x = x * scale
        return x + self.extra["shift"]


class PlainGains(nn.Module):
    """WRONG: the same tensors in a plain list and dict."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.scales = [nn.Parameter(torch.ones(4)) for _ in range(k)]
        self.extra = {"shift": nn.Parameter(torch.zeros(4))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for scale in self.scales:
            x = x * scale
        return x + self.extra["shift"]
# --8<-- [end:param_containers]


# ---------- the page's demos, in page order: each function holds one block ----------

def all_five() -> dict[str, nn.Module]:
    """The five versions, each freshly initialised."""
    return {
        "Sequential": make_sequential(),
        "Sequential(OrderedDict)": make_sequential_named(),
        "ModuleList": ListNet(),
        "ModuleDict": DictNet(),
        "subclass": MLP(),
    }


def demo_print_sequential() -> nn.Module:
    # --8<-- [start:demo_print_sequential]
    print(make_sequential())
    print(make_sequential_named())
    # --8<-- [end:demo_print_sequential]
    return make_sequential_named()


def demo_print_custom() -> None:
    # --8<-- [start:demo_print_custom]
    print(ListNet())
    print(DictNet())
    print(MLP())
    # --8<-- [end:demo_print_custom]


def demo_same_network() -> dict[str, torch.Tensor]:
    # --8<-- [start:demo_same_network]
    torch.manual_seed(0)
    models = {
        "Sequential": make_sequential(),
        "Sequential(OrderedDict)": make_sequential_named(),
        "ModuleList": ListNet(),
        "ModuleDict": DictNet(),
        "subclass": MLP(),
    }
    reference = models["Sequential"]
    x = torch.randn(5, 64)
    outputs = {}
    print(f"{'model':23} {'params':>6}  {'first key':20}  same output")
    for name, model in models.items():
        copy_by_order(reference, model)  # same weights everywhere
        outputs[name] = model(x)
        same = torch.equal(outputs[name], outputs["Sequential"])
        first_key = next(iter(model.state_dict()))
        print(f"{name:23} {count_params(model):6}  {first_key:20}  {same}")
    # --8<-- [end:demo_same_network]
    return outputs


def demo_copy_mismatch() -> None:
    # --8<-- [start:demo_copy_mismatch]
    wider = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    copy_by_order(make_sequential(), wider)
    # --8<-- [end:demo_copy_mismatch]


def demo_extend_sequential() -> nn.Sequential:
    # --8<-- [start:demo_extend_sequential]
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
    net.append(nn.Linear(32, 10))        # add at the end
    net.insert(2, nn.Dropout(p=0.1))     # add in the middle
    net.extend([nn.LogSoftmax(dim=1)])   # add several
    del net[2]                           # remove the dropout again
    print(net)
    print(net[0])                        # indexing gives the layer
    print(type(net[:2]).__name__, len(net[:2]))  # slicing gives a new Sequential
    # --8<-- [end:demo_extend_sequential]
    return net


def demo_no_forward() -> None:
    # --8<-- [start:demo_no_forward]
    layers = nn.ModuleList([nn.Linear(64, 32), nn.ReLU()])
    layers(torch.randn(2, 64))  # a ModuleList is a container, not a layer
    # --8<-- [end:demo_no_forward]


def demo_list_pitfall() -> PlainListNet:
    # --8<-- [start:demo_list_pitfall]
    model = PlainListNet()
    print(model(torch.randn(2, 64)).shape)   # forward still runs ...
    print(model)                             # ... but the model looks empty
    print(len(list(model.parameters())), "parameters")
    print(list(model.state_dict()), "in the state_dict")
    model.to(torch.float64)                  # .to() / .cuda() skip them too
    print(model.layers[0].weight.dtype)
    # --8<-- [end:demo_list_pitfall]
    return model


def demo_list_optimizer() -> None:
    # --8<-- [start:demo_list_optimizer]
    torch.optim.SGD(PlainListNet().parameters(), lr=0.1)
    # --8<-- [end:demo_list_optimizer]


def demo_repeated() -> nn.Module:
    # --8<-- [start:demo_repeated]
    torch.manual_seed(0)
    deep = Repeated(n=10)
    print(len(deep.linears), count_params(deep))  # 10 x (10*10 + 10)
    print(deep(torch.randn(3, 10)).shape)
    shared = nn.ModuleList([nn.Linear(10, 10)] * 10)  # one layer, 10 times
    print(len(shared), count_params(shared), shared[0] is shared[9])
    # --8<-- [end:demo_repeated]
    return deep


def demo_resnet_head() -> nn.Module:
    # --8<-- [start:demo_resnet_head]
    torch.manual_seed(0)
    net = resnet18(weights=None)  # random weights: nothing is downloaded
    print(net.fc, f"{count_params(net):,}")
    net.fc = nn.Linear(net.fc.in_features, 10)  # a new head for 10 classes
    print(net.fc, f"{count_params(net):,}")
    print(net(torch.randn(2, 3, 64, 64)).shape)
    # --8<-- [end:demo_resnet_head]
    return net


def demo_param_containers() -> tuple[nn.Module, nn.Module]:
    # --8<-- [start:demo_param_containers]
    good, plain = Gains(), PlainGains()
    print([name for name, _ in good.named_parameters()])
    print([name for name, _ in plain.named_parameters()])
    print(list(good.state_dict()), list(plain.state_dict()))
    print(good(torch.ones(4)).tolist() == plain(torch.ones(4)).tolist())
    # --8<-- [end:demo_param_containers]
    return good, plain


# --8<-- [start:exercise_residual]
class Residual(nn.Module):
    """x + f(x): a skip connection around any module, usable inside a Sequential."""

    def __init__(self, f: nn.Module):
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)  # f must keep the shape of x
# --8<-- [end:exercise_residual]


def exercise_residual() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    # --8<-- [start:exercise_residual_check]
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([
        ("hidden", nn.Linear(64, 32)),
        ("act", nn.ReLU()),
        ("block", Residual(nn.Sequential(nn.Linear(32, 32), nn.ReLU()))),
        ("out", nn.Linear(32, 10)),
    ]))
    print(count_params(model), [name for name, _ in model.named_children()])
    nn.init.zeros_(model.block.f[0].weight)  # weight and bias 0: f(x) = relu(0) = 0
    nn.init.zeros_(model.block.f[0].bias)
    plain = nn.Sequential(model.hidden, model.act, model.out)  # same layers, no block
    x = torch.rand(2, 64)
    print(model(x).shape, torch.equal(model(x), plain(x)))
    # --8<-- [end:exercise_residual_check]
    return model, model(x), plain(x)


# --8<-- [start:exercise_unregistered]
def unregistered(model: nn.Module) -> list[str]:
    """Plain lists, tuples and dicts in model or its submodules that hold modules or
    parameters: what model.parameters(), .to() and state_dict() never see."""
    found = []
    for prefix, module in model.named_modules():
        for name, value in vars(module).items():
            if name in ("_modules", "_parameters"):  # where nn.Module registers them
                continue
            items = value.values() if isinstance(value, dict) else value
            if isinstance(value, (list, tuple, dict)) and any(
                    isinstance(item, (nn.Module, nn.Parameter)) for item in items):
                found.append(f"{prefix}.{name}" if prefix else name)
    return found
# --8<-- [end:exercise_unregistered]


def exercise_unregistered() -> None:
    # --8<-- [start:exercise_unregistered_check]
    for model in (ListNet(), PlainListNet(), Gains(), PlainGains()):
        print(f"{type(model).__name__:12}", unregistered(model))
    print(unregistered(nn.Sequential(MLP(), PlainListNet())))  # found in a submodule
    # --8<-- [end:exercise_unregistered_check]


if __name__ == "__main__":
    for demo in (demo_print_sequential, demo_print_custom, demo_same_network,
                 demo_extend_sequential, demo_list_pitfall, demo_repeated,
                 demo_resnet_head, demo_param_containers, exercise_residual,
                 exercise_unregistered):
        print(f"--- {demo.__name__}")
        demo()
