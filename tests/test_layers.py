"""Each claim of the layers chapter, asserted; and the notes' versions, shown wrong."""
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets import layers as L

ROOT = Path(__file__).resolve().parents[1]
TORCH_RELEASE = tuple(int(n) for n in torch.__version__.split("+")[0].split(".")[:2])  # (2, 14)


# -- the notes' code, verbatim apart from imports ---------------------------------------------
def notes_corr2d(X, K):
    h, w = K.shape
    X, K = X.float(), K.float()
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i: i + h, j: j + w] * K).sum()
    return Y


def notes_pool2d(X, pool_size, mode='max'):
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            if mode == 'max':
                Y[i, j] = X[i: i + p_h, j: j + p_w].max()
            elif mode == 'avg':
                Y[i, j] = X[i: i + p_h, j: j + p_w].mean()
    return Y


def notes_comp_conv2d(conv2d, X):
    X = X.view((1, 1) + X.shape)
    Y = conv2d(X)
    return Y.view(Y.shape[2:])


# -- corr2d and Conv2D ---------------------------------------------------------------------------
@pytest.mark.parametrize("n, k", [(3, 2), (8, 3), (7, (2, 5)), (16, 1)])
def test_corr2d_equals_f_conv2d(n, k):
    torch.manual_seed(n)
    kh, kw = (k, k) if isinstance(k, int) else k
    X, K = torch.rand(n, n), torch.rand(kh, kw)
    expected = F.conv2d(X[None, None], K[None, None])[0, 0]
    assert torch.allclose(L.corr2d(X, K), expected, atol=1e-5)
    assert torch.allclose(L.corr2d_unfold(X, K), expected, atol=1e-5)


def test_f_conv2d_takes_unbatched_c_h_w_input_as_well_as_a_batch():
    # issue 13: the page used to imply that F.conv2d requires (N, C, H, W)
    Y, unbatched, batched = L.demo_corr2d()
    assert unbatched.shape == (1, 2, 2) and batched.shape == (1, 1, 2, 2)
    assert torch.equal(unbatched[0], Y) and torch.equal(batched[0, 0], Y)
    torch.manual_seed(0)
    x, conv = torch.rand(3, 8, 8), nn.Conv2d(3, 4, 3)  # (C, H, W), no batch dimension
    assert F.conv2d(x, conv.weight, conv.bias).shape == conv(x).shape == (4, 6, 6)
    assert torch.allclose(conv(x), conv(x[None])[0])
    assert F.max_pool2d(x, 2).shape == (3, 4, 4)


def test_demo_corr2d_prints_what_the_page_shows(capsys):
    L.demo_corr2d()
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "torch.Size([1, 2, 2]) torch.Size([1, 1, 2, 2])", "True True"]


def test_corr2d_is_cross_correlation_not_flipped():
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert L.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]
    flipped = F.conv2d(X[None, None], K.flip(0, 1)[None, None])[0, 0]
    assert not torch.equal(L.corr2d(X, K), flipped)


def test_conv2d_module_matches_corr2d_plus_bias_and_has_two_parameters():
    torch.manual_seed(0)
    layer = L.Conv2D((2, 2))
    X = torch.rand(5, 5)
    assert torch.allclose(layer(X), L.corr2d(X, layer.weight.detach()) + layer.bias.detach())
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert L.Conv2D(3).weight.shape == (3, 3)  # an int kernel size is accepted


def test_conv2d_learns_the_edge_kernel():
    assert torch.allclose(L.demo_learn_edge(), torch.tensor([[1.0, -1.0]]), atol=1e-2)


def test_gradients_flow_through_the_loop():
    layer = L.Conv2D((2, 2))
    layer(torch.rand(4, 4)).sum().backward()
    assert layer.weight.grad is not None and layer.bias.grad.item() == 9.0  # 3x3 outputs


# -- output size ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k, p, s, expected", [(3, 1, 1, 8), (3, 0, 1, 6), (5, 2, 2, 4), (2, 0, 2, 4)])
def test_output_size_rule_matches_nn_conv2d(k, p, s, expected):
    conv = nn.Conv2d(1, 1, kernel_size=k, padding=p, stride=s)
    assert L.comp_conv2d(conv, torch.rand(8, 8)).shape == (expected, expected)
    assert L.conv_out_size(8, k, p, s) == expected


def test_padding_same_keeps_the_shape():
    conv = nn.Conv2d(1, 1, kernel_size=5, padding="same")
    assert L.comp_conv2d(conv, torch.rand(8, 8)).shape == (8, 8)


@pytest.mark.parametrize("n", [7, 8, 13])
@pytest.mark.parametrize("k, p, s", [(1, 0, 1), (3, 0, 1), (3, 1, 2), (5, 2, 1), (2, 1, 3)])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_output_size_rule_with_dilation_matches_nn_conv2d(n, k, p, s, d):
    conv = nn.Conv2d(1, 1, kernel_size=k, padding=p, stride=s, dilation=d)
    if d * (k - 1) + 1 > n + 2 * p:  # both refuse a kernel that spans more than the input
        with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
            L.comp_conv2d(conv, torch.rand(n, n))
        with pytest.raises(ValueError, match="more than the padded input"):
            L.conv_out_size(n, k, p, s, d)
        return
    out = L.comp_conv2d(conv, torch.rand(n, n)).shape
    assert out == (L.conv_out_size(n, k, p, s, d),) * 2
    assert out[0] == (n + 2 * p - d * (k - 1) - 1) // s + 1


def test_output_size_rule_without_dilation_is_wrong_for_dilated_kernels():
    # issue 13: the page's old rule floor((n + 2p - k) / s) + 1 says 8 here
    conv = nn.Conv2d(1, 1, kernel_size=3, padding=1, dilation=2)
    assert L.comp_conv2d(conv, torch.rand(8, 8)).shape == (6, 6)
    assert L.conv_out_size(8, 3, 1, 1, dilation=2) == 6 != (8 + 2 * 1 - 3) // 1 + 1


def test_demo_out_size_shapes_match_the_rule():
    sizes = L.demo_out_size()
    assert [shape for shape, _ in sizes] == [8, 6, 4, 6, 8, 2]
    assert all(shape == rule for shape, rule in sizes)


@pytest.mark.parametrize("k, d", [(3, 1), (5, 1), (3, 2), (3, 3), (5, 2)])
def test_padding_d_times_k_minus_1_over_2_keeps_the_shape(k, d):
    p = d * (k - 1) // 2
    conv = nn.Conv2d(1, 1, kernel_size=k, padding=p, dilation=d)
    assert L.comp_conv2d(conv, torch.rand(9, 9)).shape == (9, 9)
    same = nn.Conv2d(1, 1, kernel_size=k, padding="same", dilation=d)
    assert L.comp_conv2d(same, torch.rand(9, 9)).shape == (9, 9)


def test_output_size_rejects_a_kernel_larger_than_the_padded_input():
    with pytest.raises(ValueError, match="kernel 9 with dilation 1 spans 9, "
                                         "more than the padded input 8"):
        L.conv_out_size(8, 9)
    with pytest.raises(ValueError, match="kernel 3 with dilation 4 spans 9"):
        L.conv_out_size(8, 3, dilation=4)
    assert L.conv_out_size(8, 3, dilation=3) == 2  # spans 7: fits


def test_tuple_plus_size_concatenates():
    X = torch.rand(8, 8)
    assert (1, 1) + X.shape == torch.Size([1, 1, 8, 8])


# -- built-ins ----------------------------------------------------------------------------------
def test_module_and_function_forms_agree():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
    assert torch.equal(nn.MaxPool2d(2)(x), F.max_pool2d(x, 2))
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)


# -- pooling -------------------------------------------------------------------------------------
def test_pool2d_stride_1_vs_builtin_default_stride():
    X = torch.arange(16.0).reshape(4, 4)
    manual, builtin = L.demo_pool_stride()
    assert manual.shape == (3, 3) and builtin.shape == (2, 2)
    assert torch.equal(manual, F.max_pool2d(X[None, None], 2, stride=1)[0, 0])
    assert torch.equal(manual[::2, ::2], builtin)
    assert torch.equal(L.pool2d(X, (2, 2), stride=2), builtin)


def test_ceil_mode_keeps_a_last_partial_window():
    # issue 13: pooling's ceil_mode, shown on the page
    floor, ceil = L.demo_ceil_mode()
    assert floor[0].tolist() == [[6.0, 8.0], [16.0, 18.0]]
    assert ceil[0].tolist() == [[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]
    X = torch.arange(25.0).reshape(1, 5, 5)
    assert torch.equal(nn.MaxPool2d(2, ceil_mode=True)(X), ceil)
    assert torch.equal(nn.MaxPool2d(2)(X), floor)


@pytest.mark.parametrize("n", range(4, 12))
@pytest.mark.parametrize("k, s", [(2, 2), (3, 2), (3, 3)])
def test_pool_output_size_is_the_rule_rounded_down_or_up_with_ceil_mode(n, k, s):
    x = torch.rand(1, n, n)
    assert F.max_pool2d(x, k, s).shape[-1] == L.conv_out_size(n, k, 0, s)
    assert F.max_pool2d(x, k, s, ceil_mode=True).shape[-1] == math.ceil((n - k) / s) + 1


@pytest.mark.parametrize("n", [5, 8, 13])
def test_avg_pool_matches_builtin(n):
    torch.manual_seed(n)
    X = torch.rand(n, n)
    assert torch.allclose(L.pool2d(X, (3, 2), "avg"), F.avg_pool2d(X[None, None], (3, 2), stride=1)[0, 0])
    assert torch.equal(L.max_pool2d_unfold(X, (3, 2)), L.pool2d(X, (3, 2)))
    assert torch.equal(L.max_pool2d_unfold(X, (2, 2), stride=2), F.max_pool2d(X[None, None], 2)[0, 0])


def test_pool2d_keeps_integer_dtype_for_max():
    X = torch.arange(16).reshape(4, 4)
    assert L.pool2d(X, (2, 2)).dtype == torch.int64


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, message", [
    (lambda: L.corr2d(torch.rand(1, 1, 8, 8), torch.rand(3, 3)), ValueError,
     r"expects a 2-D \(H, W\) tensor, got shape \(1, 1, 8, 8\); for \(C, H, W\) or \(N, C, H, W\) input"),
    (lambda: L.corr2d(torch.rand(4, 4), torch.rand(5, 5)), ValueError, "window 5x5 does not fit in input 4x4"),
    (lambda: L.corr2d(torch.rand(4, 4), torch.rand(3)), ValueError, r"expects a 2-D \(h, w\) kernel"),
    (lambda: L.pool2d(torch.rand(3, 4, 4), (2, 2)), ValueError, r"got shape \(3, 4, 4\)"),
    (lambda: L.pool2d(torch.rand(4, 4), (2, 2), mode="min"), ValueError, "unknown pool mode 'min'"),
    (lambda: L.pool2d(torch.arange(16).reshape(4, 4), (2, 2), "avg"), TypeError, "call X.float"),
    (lambda: L.corr2d_unfold(torch.rand(2, 2), torch.rand(3, 3)), ValueError, "does not fit"),
    (lambda: L.corr2d([[1.0]], torch.rand(1, 1)), ValueError, "got shape list"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- the notes' versions ---------------------------------------------------------------------------
def test_notes_E7_comp_conv2d_keeps_the_shape_only_for_padding_1():
    X = torch.rand(8, 8)
    assert notes_comp_conv2d(nn.Conv2d(1, 1, 3, padding=1), X).shape == (8, 8)
    assert notes_comp_conv2d(nn.Conv2d(1, 1, 3, padding=0), X).shape == (6, 6)
    assert notes_comp_conv2d(nn.Conv2d(1, 1, 5, padding=2, stride=2), X).shape == (4, 4)


def test_notes_E8_corr2d_silently_returns_an_empty_tensor_for_a_batch():
    batch, edge = torch.rand(1, 1, 6, 8), torch.tensor([[1.0, -1.0]])
    assert notes_corr2d(batch, edge).shape == (1, 0)  # no error, no values
    cryptic = ("Trying to create tensor with negative dimension -1: [-1, -1]" if TORCH_RELEASE == (2, 6)
               else "zeros: Dimension size must be non-negative")  # the page says both
    with pytest.raises(RuntimeError, match=re.escape(cryptic)):
        notes_corr2d(batch, torch.rand(3, 3))
    with pytest.raises(ValueError, match=r"got shape \(1, 1, 6, 8\)"):
        L.demo_bad_input()


def test_notes_E8_conv2d_on_3d_input_gives_a_cryptic_error():
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        notes_corr2d(torch.rand(3, 8, 8), torch.rand(2, 2))


def test_notes_E9_pool2d_stride_differs_from_f_max_pool2d():
    X = torch.arange(16.0).reshape(4, 4)
    assert notes_pool2d(X, (2, 2)).shape == (3, 3)
    assert F.max_pool2d(X[None, None], (2, 2))[0, 0].shape == (2, 2)
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        torch.allclose(notes_pool2d(torch.rand(8, 8), (2, 2)), F.max_pool2d(torch.rand(1, 1, 8, 8), 2)[0, 0])


def test_the_notes_versions_on_the_pages_other_mistakes_give_what_the_page_lists():
    """demo_more_errors' four inputs, handed to the notes' corr2d and pool2d: a kernel too large
    and a 3-D input give empty tensors (no error), an unknown mode zeros, avg on integers an error."""
    X = torch.arange(16).reshape(4, 4)
    assert notes_corr2d(X, torch.ones(5, 5)).shape == (0, 0)
    assert notes_pool2d(X[None], (2, 2)).shape == (0, 3)
    assert torch.equal(notes_pool2d(X, (2, 2), mode="min"), torch.zeros(3, 3))
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype"):
        notes_pool2d(X, (2, 2), mode="avg")
    for lang, says in (("en", "an empty tensor, another empty tensor, all zeros"),
                       ("zh", "返回空张量、同样返回空张量、返回全零")):
        assert says in (ROOT / "docs" / lang / "layers.md").read_text(encoding="utf-8")


def test_notes_E9_pool2d_unknown_mode_returns_zeros():
    X = torch.arange(1.0, 17.0).reshape(4, 4)
    assert torch.equal(notes_pool2d(X, (2, 2), mode="min"), torch.zeros(3, 3))


def test_notes_E9_pool2d_avg_on_integers_fails_with_a_dtype_error():
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        notes_pool2d(torch.arange(16).reshape(4, 4), (2, 2), mode="avg")


def test_notes_E10_both_modules_have_conv_and_pool():
    assert callable(nn.Conv2d) and callable(F.conv2d) and callable(nn.MaxPool2d) and callable(F.max_pool2d)
    x = torch.rand(1, 1, 4, 4)
    assert F.conv2d(x, torch.ones(1, 1, 3, 3)).shape == nn.Conv2d(1, 1, 3)(x).shape == (1, 1, 2, 2)


def test_notes_E11_legacy_super_call_is_equivalent_and_forgetting_it_fails():
    class Legacy(nn.Module):
        def __init__(self):
            super(Legacy, self).__init__()
            self.weight = nn.Parameter(torch.ones(2))

    class Forgot(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(torch.ones(2))

    assert [n for n, _ in Legacy().named_parameters()] == ["weight"]
    with pytest.raises(AttributeError, match=r"cannot assign parameters before Module.__init__\(\) call"):
        Forgot()


def test_bench_command_writes_the_measurement_and_a_table_per_language(tmp_path):
    from tools import bench_layers

    assert bench_layers.main(["--quick", "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "layers-bench.en.md", "layers-bench.json", "layers-bench.zh.md"]
    text = (tmp_path / "layers-bench.en.md").read_text(encoding="utf-8")
    assert "| 8² |" in text and "| 16² |" in text and f"torch {torch.__version__}" in text
    assert "| Conv2d(8, 16, 3) | 2×8×16×16 |" in text and "channels_last (NHWC)" in text
    zh = (tmp_path / "layers-bench.zh.md").read_text(encoding="utf-8")
    assert "| `Conv2d(8, 16, 3)` | 2×8×16×16 |" in zh and "连续存放（NCHW）" in zh
    # --render rewrites the tables from the .json without measuring: the same files again
    (tmp_path / "layers-bench.zh.md").unlink()
    assert bench_layers.main(["--render", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "layers-bench.zh.md").read_text(encoding="utf-8") == zh


def test_committed_bench_tables_have_the_three_sizes_and_come_from_the_measurement():
    from tools import bench_layers

    data = bench_layers.load()
    for lang in bench_layers.LANGS:
        text = (bench_layers.GENERATED / bench_layers.FRAGMENT.format(lang=lang)).read_text(encoding="utf-8")
        assert text == bench_layers.render(data, lang), "rerun `python -m tools.bench_layers --render`"
        for n in (32, 64, 128):
            assert f"| {n}² |" in text
        assert "make bench" in text and "torch " in text


# -- multiple channels, groups (issue 13) ------------------------------------------------------
@pytest.mark.parametrize("c_in, c_out, k", [(3, 2, 3), (1, 4, 5), (5, 3, 1)])
def test_each_output_channel_sums_corr2d_over_all_input_channels_plus_bias(c_in, c_out, k):
    torch.manual_seed(c_in)
    x = torch.rand(c_in, 7, 7)
    conv = nn.Conv2d(c_in, c_out, k)
    w, b = conv.weight.detach(), conv.bias.detach()
    assert w.shape == (c_out, c_in, k, k)
    by_hand = torch.stack([sum(L.corr2d(x[c], w[o, c]) for c in range(c_in)) + b[o]
                           for o in range(c_out)])
    assert torch.allclose(conv(x), by_hand, atol=1e-5)


def test_demo_multi_channel_matches_the_layer():
    layer_out, by_hand = L.demo_multi_channel()
    assert layer_out.shape == by_hand.shape == (2, 3, 3)
    assert torch.allclose(layer_out, by_hand, atol=1e-6)


@pytest.mark.parametrize("c_in, c_out, k, groups, bias", [
    (3, 2, 3, 1, True), (3, 64, 7, 1, True), (64, 128, 3, 1, True), (64, 64, 3, 4, True),
    (64, 64, 3, 64, True), (6, 12, 5, 3, False), (64, 128, 1, 1, True)])
def test_param_count_formula_matches_numel(c_in, c_out, k, groups, bias):
    conv = nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)
    numel = sum(p.numel() for p in conv.parameters())
    assert L.conv2d_param_count(c_in, c_out, k, groups, bias) == numel
    assert numel == c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def test_demo_param_count_numel_equals_formula():
    assert L.demo_param_count() == [(56, 56), (9472, 9472), (73856, 73856)]


def test_param_count_does_not_depend_on_image_size():
    conv = nn.Conv2d(3, 8, 3)
    before = sum(p.numel() for p in conv.parameters())
    for n in (8, 32):
        conv(torch.rand(1, 3, n, n))
    assert sum(p.numel() for p in conv.parameters()) == before == L.conv2d_param_count(3, 8, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(c_in=0, c_out=4, k=3), "c_in must be a positive integer, got 0"),
    (dict(c_in=3, c_out=4, k=2.5), "k must be a positive integer, got 2.5"),
    (dict(c_in=3, c_out=True, k=3), "c_out must be a positive integer, got True"),
    (dict(c_in=6, c_out=4, k=3, groups=4), r"groups=4 must divide both c_in=6 and c_out=4"),
    (dict(c_in=4, c_out=6, k=3, groups=4), r"groups=4 must divide both c_in=4 and c_out=6"),
])
def test_param_count_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        L.conv2d_param_count(**kwargs)


def test_conv2d_itself_refuses_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(6, 4, 3, groups=4)


@pytest.mark.parametrize("c", [1, 4, 7])
def test_depthwise_equals_per_channel_corr2d_plus_bias(c):
    torch.manual_seed(c)
    x = torch.rand(c, 6, 6)
    dw = nn.Conv2d(c, c, 3, groups=c)
    assert dw.weight.shape == (c, 1, 3, 3)
    assert sum(p.numel() for p in dw.parameters()) == c * 9 + c
    w, b = dw.weight.detach(), dw.bias.detach()
    per_channel = torch.stack([L.corr2d(x[i], w[i, 0]) + b[i] for i in range(c)])
    assert torch.allclose(dw(x), per_channel, atol=1e-6)


def test_demo_depthwise_matches():
    layer_out, per_channel = L.demo_depthwise()
    assert torch.allclose(layer_out, per_channel, atol=1e-6)


def test_depthwise_does_not_mix_channels():
    torch.manual_seed(0)
    dw = nn.Conv2d(3, 3, 3, groups=3)
    x = torch.rand(3, 6, 6)
    x2 = x.clone()
    x2[1] += 1.0  # change channel 1 only
    changed = (dw(x) - dw(x2)).abs().amax(dim=(-1, -2))
    assert changed[0] == 0 and changed[2] == 0 and changed[1] > 0


def test_groups_divide_the_weights_and_separable_is_about_an_eighth():
    counts = L.demo_groups_params()
    assert counts == {"groups=1": 36928, "groups=4": 9280, "groups=64": 640,
                      "separable 64->128": 8960, "full 64->128": 73856}
    weights_1 = 64 * 64 * 9
    assert counts["groups=4"] - 64 == weights_1 // 4 and counts["groups=64"] - 64 == weights_1 // 64
    assert 7 < counts["full 64->128"] / counts["separable 64->128"] < 9


# -- adaptive pooling, channels_last (issue 13) -----------------------------------------------
@pytest.mark.parametrize("h, w", [(2, 2), (7, 7), (10, 10), (13, 9), (31, 5)])
@pytest.mark.parametrize("size", [(2, 2), (3, 1), 1])
def test_adaptive_avg_pool_output_size_is_fixed_whatever_the_input(h, w, size):
    out = nn.AdaptiveAvgPool2d(size)(torch.rand(2, 8, h, w))
    expected = size if isinstance(size, tuple) else (size, size)
    assert out.shape == (2, 8) + expected


def test_demo_adaptive_shapes():
    assert L.demo_adaptive() == [(8, 2, 2)] * 3


def test_adaptive_windows_overlap_when_the_size_does_not_divide():
    x = torch.arange(7.0).reshape(1, 1, 7)  # 7 -> 2: windows [0, 4) and [3, 7) share index 3
    out = nn.AdaptiveAvgPool1d(2)(x)
    assert out.flatten().tolist() == [1.5, 4.5]


@pytest.mark.parametrize("shape", [(2, 8, 13, 9), (1, 3, 5, 5), (4, 1, 1, 7)])
def test_global_average_pooling_is_the_mean_over_h_and_w(shape):
    torch.manual_seed(0)
    x = torch.rand(shape)
    out = nn.AdaptiveAvgPool2d(1)(x)
    assert out.shape == shape[:2] + (1, 1)
    assert torch.allclose(out[..., 0, 0], x.mean(dim=(-2, -1)))
    gap, mean = L.demo_global_pool()
    assert torch.allclose(gap[..., 0, 0], mean)


def test_channels_last_gives_the_same_result_and_keeps_the_format():
    y, y_cl = L.demo_channels_last()
    assert y.shape == y_cl.shape and torch.allclose(y, y_cl, atol=1e-5)
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    assert not y_cl.is_contiguous()


def test_channels_last_keeps_shape_and_indexing_changes_strides():
    x = torch.rand(2, 8, 16, 16)
    x_cl = x.to(memory_format=torch.channels_last)
    assert x_cl.shape == x.shape and torch.equal(x_cl, x) and torch.equal(x_cl[0, 1], x[0, 1])
    assert x.stride() == (2048, 256, 16, 1) and x_cl.stride() == (2048, 1, 128, 8)


@pytest.mark.parametrize("k, groups", [(3, 1), (1, 1), (3, 8)])
def test_channels_last_model_in_place_and_training_gradients_agree(k, groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, k, padding=k // 2, groups=groups)
    x = torch.rand(2, 8, 12, 12)
    conv(x).sum().backward()
    grad = conv.weight.grad.clone()
    conv.zero_grad()
    assert conv.to(memory_format=torch.channels_last) is conv  # in place
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    conv(x.to(memory_format=torch.channels_last)).sum().backward()
    assert torch.allclose(conv.weight.grad, grad, atol=1e-4)


def test_committed_bench_table_measures_channels_last_and_it_was_faster_for_every_layer():
    # the page: "channels_last was faster for all three layers ... largest for the 1x1"
    from tools.bench_layers import CONV_LAYERS, FRAGMENT, GENERATED, LANGS

    for lang in LANGS:
        text = (GENERATED / FRAGMENT.format(lang=lang)).read_text(encoding="utf-8")
        rows = [line for line in text.splitlines() if line.lstrip("| `").startswith("Conv2d(")]
        assert len(rows) == len(CONV_LAYERS) == 3
        # the factor cell is a range over the runs, "1.3–1.6×": its lowest value
        ratios = {row.split("|")[1].strip(" `"): float(row.split("|")[-2].strip().rstrip("×").split("–")[0])
                  for row in rows}
        assert all(r > 1 for r in ratios.values())
        assert max(ratios, key=ratios.get) == "Conv2d(64, 128, 1)"



# -- the prose under the speed tables says what the committed measurement shows ----------------
def test_speed_prose_matches_the_committed_measurement():
    """'over a hundred times' as long as unfold and 'over a thousand times' as long as F.conv2d,
    at every size; the factor over unfold grew with the input, the one over F.conv2d was largest
    at 64²."""
    from tools import bench_layers

    data = bench_layers.load()
    assert data["runs"] >= 5  # every figure is a range over several runs of torch.utils.benchmark
    unfold = [s["loop_per_unfold"] for s in data["sizes"]]  # per size, one factor per run
    builtin = [s["loop_per_builtin"] for s in data["sizes"]]
    assert all(100 <= f < 1000 for runs in unfold for f in runs), unfold
    assert all(1000 <= f < 10000 for runs in builtin for f in runs), builtin
    # unfold's "grew with the input": every run of a larger input above every run of the smaller
    assert all(max(a) < min(b) for a, b in zip(unfold, unfold[1:])), unfold
    # F.conv2d's "was largest at 64²": each of its runs above every run of the other sizes
    middle = [s["n"] for s in data["sizes"]].index(64)
    assert all(min(builtin[middle]) > max(runs) for i, runs in enumerate(builtin) if i != middle), builtin
    for lang, words in {"en": ["over a hundred times", "over a thousand times", "largest at 64²", "5 times"],
                        "zh": ["的一百倍以上", "的一千倍以上", "在 64² 时最大", "测了 5 次"]}.items():
        text = (ROOT / "docs" / lang / "layers.md").read_text(encoding="utf-8")
        assert all(w in text for w in words), lang
        assert "orders of magnitude" not in text and "数量级" not in text
        assert "多倍以上" not in text  # 多 and 以上 say "over" twice


def test_layers_code_reads_weights_with_detach_not_data():
    """The init chapter warns against .data; this chapter's shown code does not use it."""
    source = (ROOT / "snippets" / "layers.py").read_text(encoding="utf-8")
    assert ".data." not in source and ".data\n" not in source
    assert "layer.weight.detach()" in source


# --- exercises -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, k, padding, stride", [
    ((8, 8), 3, 1, 1), ((8, 8), 3, 1, 2), ((8, 8), 3, 0, 3), ((7, 9), 2, 2, 2), ((5, 5), 5, 0, 1),
])
def test_exercise_corr2d_strided_equals_f_conv2d_and_the_size_rule(size, k, padding, stride):
    torch.manual_seed(0)
    X, K = torch.rand(size), torch.rand(k, k)
    mine = L.corr2d_strided(X, K, padding, stride)
    builtin = F.conv2d(X[None], K[None, None], padding=padding, stride=stride)[0]
    assert torch.allclose(mine, builtin, atol=1e-6)
    assert mine.shape == tuple(L.conv_out_size(n, k, padding, stride) for n in size)
    if padding == 0 and stride == 1:
        assert torch.allclose(mine, L.corr2d(X, K), atol=1e-6)


@pytest.mark.parametrize("shape, k", [((2, 3, 6, 6), 2), ((1, 4, 9, 9), 3), ((2, 1, 7, 5), 2)])
def test_exercise_avg_pool_as_conv_equals_f_avg_pool2d(shape, k):
    torch.manual_seed(0)
    x = torch.rand(shape, dtype=torch.float64)
    assert torch.allclose(L.avg_pool_as_conv(x, k), F.avg_pool2d(x, k))
    assert L.avg_pool_as_conv(x, k).dtype == torch.float64  # the kernel follows the input
