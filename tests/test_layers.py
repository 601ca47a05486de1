"""Each claim of the layers chapter, asserted; and the notes' versions, shown wrong."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets import layers as L


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
def test_notes_E15_comp_conv2d_keeps_the_shape_only_for_padding_1():
    X = torch.rand(8, 8)
    assert notes_comp_conv2d(nn.Conv2d(1, 1, 3, padding=1), X).shape == (8, 8)
    assert notes_comp_conv2d(nn.Conv2d(1, 1, 3, padding=0), X).shape == (6, 6)
    assert notes_comp_conv2d(nn.Conv2d(1, 1, 5, padding=2, stride=2), X).shape == (4, 4)


def test_notes_E16_corr2d_silently_returns_an_empty_tensor_for_a_batch():
    batch, edge = torch.rand(1, 1, 6, 8), torch.tensor([[1.0, -1.0]])
    assert notes_corr2d(batch, edge).shape == (1, 0)  # no error, no values
    with pytest.raises(RuntimeError, match="zeros: Dimension size must be non-negative"):
        notes_corr2d(batch, torch.rand(3, 3))
    with pytest.raises(ValueError, match=r"got shape \(1, 1, 6, 8\)"):
        L.demo_bad_input()


def test_notes_E16_conv2d_on_3d_input_gives_a_cryptic_error():
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        notes_corr2d(torch.rand(3, 8, 8), torch.rand(2, 2))


def test_notes_E17_pool2d_stride_differs_from_f_max_pool2d():
    X = torch.arange(16.0).reshape(4, 4)
    assert notes_pool2d(X, (2, 2)).shape == (3, 3)
    assert F.max_pool2d(X[None, None], (2, 2))[0, 0].shape == (2, 2)
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        torch.allclose(notes_pool2d(torch.rand(8, 8), (2, 2)), F.max_pool2d(torch.rand(1, 1, 8, 8), 2)[0, 0])


def test_notes_E17_pool2d_unknown_mode_returns_zeros():
    X = torch.arange(1.0, 17.0).reshape(4, 4)
    assert torch.equal(notes_pool2d(X, (2, 2), mode="min"), torch.zeros(3, 3))


def test_notes_E17_pool2d_avg_on_integers_fails_with_a_dtype_error():
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        notes_pool2d(torch.arange(16).reshape(4, 4), (2, 2), mode="avg")


def test_notes_E18_both_modules_have_conv_and_pool():
    assert callable(nn.Conv2d) and callable(F.conv2d) and callable(nn.MaxPool2d) and callable(F.max_pool2d)
    x = torch.rand(1, 1, 4, 4)
    assert F.conv2d(x, torch.ones(1, 1, 3, 3)).shape == nn.Conv2d(1, 1, 3)(x).shape == (1, 1, 2, 2)


def test_notes_E22_legacy_super_call_is_equivalent_and_forgetting_it_fails():
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


def test_bench_command_writes_a_table(tmp_path):
    from tools import bench_layers

    out = tmp_path / "bench.md"
    assert bench_layers.main(["--quick", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "| 8² |" in text and "| 16² |" in text and f"torch {torch.__version__}" in text


def test_committed_bench_table_has_the_three_sizes():
    from tools.bench_layers import OUT

    text = OUT.read_text(encoding="utf-8")
    for n in (32, 64, 128):
        assert f"| {n}² |" in text
    assert "make bench" in text and "torch " in text
