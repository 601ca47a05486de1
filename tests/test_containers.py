"""Each claim of the containers chapter, asserted."""
import pytest
import torch
from torch import nn

from snippets import containers as C


@pytest.fixture
def five():
    torch.manual_seed(0)
    return C.all_five()


def test_five_versions_have_equal_parameter_counts(five):
    counts = {name: C.count_params(m) for name, m in five.items()}
    assert set(counts.values()) == {64 * 32 + 32 + 32 * 10 + 10}, counts


def test_five_versions_differ_only_in_key_names(five):
    shapes = {name: [tuple(t.shape) for t in m.state_dict().values()] for name, m in five.items()}
    assert len({tuple(s) for s in shapes.values()}) == 1
    first_keys = {name: next(iter(m.state_dict())) for name, m in five.items()}
    assert first_keys == {"Sequential": "0.weight", "Sequential(OrderedDict)": "hidden.weight",
                          "ModuleList": "layers.0.weight", "ModuleDict": "layers.hidden.weight",
                          "subclass": "hidden.weight"}


def test_fresh_versions_differ_until_weights_are_copied(five):
    x = torch.randn(4, 64)
    ref = five["Sequential"]
    assert not torch.equal(ref(x), five["subclass"](x))  # independent random init
    for model in five.values():
        C.copy_by_order(ref, model)
        assert torch.equal(model(x), ref(x))


@pytest.mark.parametrize("src_name", ["ModuleList", "ModuleDict", "subclass"])
def test_copy_by_order_works_in_every_direction(five, src_name):
    src, dst = five[src_name], five["Sequential(OrderedDict)"]
    C.copy_by_order(src, dst)
    x = torch.randn(3, 64)
    assert torch.equal(src(x), dst(x))
    for s, d in zip(src.parameters(), dst.parameters()):
        assert s.data_ptr() != d.data_ptr()  # a copy, not shared storage


def test_copy_by_order_copies_buffers_too():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    b = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    a(torch.randn(8, 4))  # training-mode forward updates running stats
    C.copy_by_order(a, b)
    assert torch.equal(a[1].running_mean, b[1].running_mean)
    assert b[1].num_batches_tracked.item() == 1


def test_copy_by_order_rejects_a_different_count():
    with pytest.raises(ValueError, match=r"src has 4 tensors, dst has 2; the two models do not have the same layers"):
        C.copy_by_order(C.make_sequential(), nn.Linear(64, 32))


def test_copy_by_order_rejects_a_different_shape_naming_both_tensors():
    wider = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    with pytest.raises(ValueError, match=r"tensor #0 is src '0\.weight' \(32, 64\) but dst '0\.weight' \(48, 64\)"):
        C.copy_by_order(C.make_sequential(), wider)
    # nothing was half-copied: the check runs before any copy
    before = [p.clone() for p in wider.parameters()]
    with pytest.raises(ValueError):
        C.copy_by_order(C.make_sequential(), wider)
    assert all(torch.equal(a, b) for a, b in zip(before, wider.parameters()))


def test_copy_by_order_rejects_non_modules():
    with pytest.raises(TypeError, match="expects two nn.Module objects, got dict and Sequential"):
        C.copy_by_order({}, C.make_sequential())


def test_notes_E19_sequential_is_extensible_append_insert_extend_index_slice_del():
    net = C.demo_extend_sequential()
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear", "LogSoftmax"]
    assert list(net._modules) == ["0", "1", "2", "3"]  # renumbered after del
    assert isinstance(net[:2], nn.Sequential) and net[0] is net[:2][0]
    assert net(torch.randn(2, 64)).shape == (2, 10)


def test_sequential_forward_is_fixed_one_input_chain():
    # the only thing Sequential cannot do: a data path other than a chain
    net = C.make_sequential()
    with pytest.raises(TypeError):
        net(torch.randn(2, 64), torch.randn(2, 64))


@pytest.mark.parametrize("container, name", [
    (nn.ModuleList([nn.Linear(2, 2)]), "ModuleList"),
    (nn.ModuleDict({"fc": nn.Linear(2, 2)}), "ModuleDict"),
])
def test_module_list_and_dict_have_no_forward(container, name):
    with pytest.raises(NotImplementedError) as err:
        container(torch.randn(1, 2))
    assert str(err.value) == f'Module [{name}] is missing the required "forward" function'


def test_module_list_and_dict_register_their_layers():
    assert C.count_params(nn.ModuleList([nn.Linear(2, 3)])) == 9
    d = nn.ModuleDict({"fc": nn.Linear(2, 3), "act": nn.ReLU()})
    assert list(d.keys()) == ["fc", "act"] and list(d.state_dict()) == ["fc.weight", "fc.bias"]


def test_plain_list_layers_are_not_registered():
    model = C.demo_list_pitfall()
    assert list(model.parameters()) == []
    assert list(model.state_dict()) == []
    assert repr(model) == "PlainListNet()"
    assert model(torch.randn(2, 64)).shape == (2, 10)  # forward still works: the bug is silent
    assert model.layers[0].weight.dtype == torch.float32  # .to(float64) skipped it


@pytest.mark.parametrize("lang, says", [("en", "Handing the parameters to an optimizer fails at once"),
                                        ("zh", "创建优化器时就会立刻失败")])
def test_page_says_the_optimizer_fails_when_it_is_built_not_at_its_first_step(lang, says):
    """The error comes from the optimizer's constructor (the next test); no step is ever taken."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "containers.md").read_text(encoding="utf-8")
    assert says in text and "第一步就会失败" not in text


def test_plain_list_optimizer_gets_an_empty_parameter_list():
    with pytest.raises(ValueError) as err:
        C.demo_list_optimizer()
    assert str(err.value) == "optimizer got an empty parameter list"


def test_module_list_fixes_the_plain_list():
    model = C.ListNet().to(torch.float64)
    assert model.layers[0].weight.dtype == torch.float64
    assert len(model.state_dict()) == 4


def test_printed_structures_match_the_page(capsys):
    C.demo_print_sequential()
    C.demo_print_custom()
    out = capsys.readouterr().out
    assert "(hidden): Linear(in_features=64, out_features=32, bias=True)" in out
    assert "(layers): ModuleList(" in out and "(layers): ModuleDict(" in out


def test_same_network_demo_all_equal():
    outputs = C.demo_same_network()
    ref = outputs["Sequential"]
    assert len(outputs) == 5 and all(torch.equal(o, ref) for o in outputs.values())


def test_plain_list_beside_a_registered_layer_is_silently_never_trained():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(4, 4)
            self.rest = [nn.Linear(4, 2)]  # plain list: hidden

        def forward(self, x):
            return self.rest[0](self.first(x))

    torch.manual_seed(0)
    model = Mixed()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # no error: one layer is registered
    hidden_before = model.rest[0].weight.clone()
    first_before = model.first.weight.clone()
    model(torch.randn(8, 4)).pow(2).sum().backward()
    opt.step()
    assert not torch.equal(model.first.weight, first_before)
    assert torch.equal(model.rest[0].weight, hidden_before)  # got a grad, never stepped
    assert model.rest[0].weight.grad is not None


def test_keys_differ_so_sequential_state_dict_does_not_load_into_mlp():
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "hidden.weight"'):
        C.MLP().load_state_dict(C.make_sequential().state_dict())


@pytest.mark.cuda
def test_module_list_moves_to_gpu_but_plain_list_does_not():
    good, bad = C.ListNet().to("cuda"), C.PlainListNet().to("cuda")
    assert good.layers[0].weight.is_cuda
    assert not bad.layers[0].weight.is_cuda
    with pytest.raises(RuntimeError):
        bad(torch.randn(2, 64, device="cuda"))  # cuda input, cpu weights


# ---- repeated layers, a new head, parameter containers ----

def test_module_list_comprehension_makes_independent_layers():
    deep = C.demo_repeated()
    assert len(deep.linears) == 10 and C.count_params(deep) == 10 * (10 * 10 + 10)
    assert len({id(layer.weight) for layer in deep.linears}) == 10
    assert deep(torch.randn(3, 10)).shape == (3, 10)


def test_list_times_n_repeats_one_shared_layer():
    shared = nn.ModuleList([nn.Linear(10, 10)] * 10)
    assert len(shared) == 10 and C.count_params(shared) == 110
    assert all(layer is shared[0] for layer in shared)


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_repeated_rejects_a_bad_layer_count(n):
    with pytest.raises(ValueError, match=r"n must be a positive int \(how many layers\)"):
        C.Repeated(n=n)


def test_resnet18_new_head_changes_output_and_count_without_downloads(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("resnet18(weights=None) must not download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    net = C.demo_resnet_head()
    assert isinstance(net.fc, nn.Linear) and (net.fc.in_features, net.fc.out_features) == (512, 10)
    assert C.count_params(net) == 11_689_512 - (512 * 1000 + 1000) + (512 * 10 + 10) == 11_181_642
    assert "fc.weight" in net.state_dict() and net.state_dict()["fc.weight"].shape == (10, 512)
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_parameter_list_and_dict_register_plain_list_does_not():
    good, plain = C.demo_param_containers()
    assert [n for n, _ in good.named_parameters()] == ["scales.0", "scales.1", "scales.2", "extra.shift"]
    assert list(plain.parameters()) == [] and plain.state_dict() == {}
    x = torch.randn(4)
    assert torch.equal(good(x), plain(x))
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        torch.optim.SGD(plain.parameters(), lr=0.1)
    good.to(torch.float64)
    assert good.scales[0].dtype == torch.float64 and plain.to(torch.float64).scales[0].dtype == torch.float32


def test_an_optimizer_built_before_the_new_head_keeps_the_old_heads_parameters():
    net = C.resnet18(weights=None)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    old_fc = net.fc.weight
    net.fc = nn.Linear(512, 10)
    held = {id(p) for group in opt.param_groups for p in group["params"]}
    assert id(old_fc) in held and id(net.fc.weight) not in held


# --- exercises -------------------------------------------------------------------------------------
def test_exercise_residual_adds_its_input_and_registers_its_branch():
    torch.manual_seed(0)
    f = nn.Linear(8, 8)
    block = C.Residual(f)
    x = torch.rand(3, 8)
    assert torch.equal(block(x), x + f(x))
    assert [name for name, _ in block.named_parameters()] == ["f.weight", "f.bias"]
    model, with_block, plain = C.exercise_residual()
    assert C.count_params(model) == 2410 + 32 * 32 + 32 == 3466
    assert torch.equal(with_block, plain)  # a zero branch: the block is the identity
    assert list(model.state_dict())[2:4] == ["block.f.0.weight", "block.f.0.bias"]


def test_exercise_residual_refuses_a_branch_that_changes_the_shape():
    with pytest.raises(RuntimeError):
        C.Residual(nn.Linear(8, 4))(torch.rand(2, 8))


def test_exercise_unregistered_names_every_hidden_list_and_dict_and_nothing_else():
    assert C.unregistered(C.PlainListNet()) == ["layers"]
    assert C.unregistered(C.PlainGains()) == ["scales", "extra"]
    for model in (C.make_sequential(), C.make_sequential_named(), C.ListNet(), C.DictNet(), C.MLP(),
                  C.Gains(), C.Repeated()):
        assert C.unregistered(model) == [], type(model).__name__
    assert C.unregistered(nn.Sequential(C.MLP(), C.PlainListNet())) == ["1.layers"]

    class InATuple(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = (nn.Linear(2, 2), nn.Linear(2, 2))
            self.sizes = [2, 2]  # a plain list of numbers is fine

    assert C.unregistered(InATuple()) == ["pair"]
    assert C.count_params(InATuple()) == 0  # what the function warns about
