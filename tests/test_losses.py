"""Claims of the `losses` chapter: every hand-written loss equals the built-in, and the pitfalls are real."""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets.environment import pick_device
from snippets.losses import (
    FocalLoss,
    bce_pos_weight_manual,
    bce_with_logits_manual,
    check_class_target,
    cross_entropy_manual,
    demo_autocast_bce_cuda,
    demo_bce_large,
    demo_device,
    demo_double_softmax,
    fmt,
    huber_manual,
    kl_div_manual,
    l1_manual,
    label_smoothing_cross_entropy_manual,
    mse_manual,
    per_sample_cross_entropy,
    smooth_l1_manual,
    soft_cross_entropy_manual,
    weighted_cross_entropy_manual,
)

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_problem(n=16, c=5, extra=(), dtype=torch.float32, scale=3.0, seed=0):
    g = gen(seed)
    logits = (torch.randn(n, c, *extra, generator=g) * scale).to(dtype)
    target = torch.randint(0, c, (n, *extra), generator=g)
    return logits, target


# ---------- the notes ----------

def test_notes_E17_criterion_is_never_defined():
    """The notes' section 7 calls `criterion(output, label)`; section 6, where it belongs, is empty."""
    output, label = torch.randn(4, 3, generator=gen(0)), torch.tensor([0, 2, 1, 2])
    notes_line = "loss = criterion(output, label)"
    with pytest.raises(NameError, match="^name 'criterion' is not defined$"):
        exec(notes_line, {"output": output, "label": label})
    scope = {"output": output, "label": label, "criterion": nn.CrossEntropyLoss()}  # what this chapter adds
    exec(notes_line, scope)
    assert torch.allclose(scope["loss"], F.cross_entropy(output, label))


# ---------- fmt ----------

def test_fmt_rounds_and_hides_negative_zero():
    assert fmt(torch.tensor(-0.0)) == "0.0000"
    assert fmt(torch.tensor([-0.00001, 1.23456, float("nan")])) == "[0.0000, 1.2346, nan]"


# ---------- cross-entropy ----------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,extra,scale", [(16, 5, (), 3.0), (1, 2, (), 1.0), (4, 3, (7,), 3.0),
                                             (8, 10, (), 100.0)])
def test_cross_entropy_three_ways_equal(dtype, n, c, extra, scale):
    logits, target = random_problem(n, c, extra, dtype, scale)
    builtin = F.cross_entropy(logits, target)
    assert torch.allclose(builtin, F.nll_loss(F.log_softmax(logits, dim=1), target), **TOL[dtype])
    assert torch.allclose(builtin, cross_entropy_manual(logits, target), **TOL[dtype])
    assert torch.allclose(nn.CrossEntropyLoss()(logits, target), builtin, **TOL[dtype])
    per_sample = per_sample_cross_entropy(logits, target)
    assert per_sample.shape == target.shape
    assert torch.allclose(per_sample, F.cross_entropy(logits, target, reduction="none"), **TOL[dtype])


def test_cross_entropy_manual_gradient_matches_builtin():
    logits, target = random_problem(dtype=torch.float64)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    F.cross_entropy(a, target).backward()
    cross_entropy_manual(b, target).backward()
    assert torch.allclose(a.grad, b.grad, **TOL[torch.float64])
    assert torch.autograd.gradcheck(cross_entropy_manual, (logits[:3, :4].clone().requires_grad_(), target[:3] % 4))


def test_logsumexp_is_stable_where_naive_softmax_log_is_not():
    big = torch.tensor([[1000.0, 0.0], [0.0, -1000.0]])
    target = torch.tensor([1, 1])
    naive = -big.softmax(dim=1).log().gather(1, target[:, None]).squeeze(1)
    assert torch.isinf(naive).all()
    manual = per_sample_cross_entropy(big, target)
    assert torch.equal(manual, torch.tensor([1000.0, 1000.0]))
    assert torch.allclose(manual, F.cross_entropy(big, target, reduction="none"))


def test_double_softmax_loss_and_gradient_as_shown():
    loss, grad = demo_double_softmax()  # the last loop pass: softmax first
    assert fmt(loss) == "[0.5645, 1.5417]"
    logits = torch.tensor([[4.0, 0.0, -2.0], [-2.0, 0.0, 4.0]], requires_grad=True)
    F.cross_entropy(logits, torch.tensor([0, 0]), reduction="none").sum().backward()
    right_norm, double_norm = logits.grad.norm(dim=1), grad.norm(dim=1)
    assert fmt(right_norm) == "[0.0273, 1.3983]" and fmt(double_norm) == "[0.0173, 0.0117]"
    assert right_norm[1] > 100 * double_norm[1]  # confidently wrong: the signal nearly vanishes


@pytest.mark.parametrize("c", [2, 3, 10])
def test_double_softmax_loss_is_bounded(c):
    low, high = math.log(1 + (c - 1) / math.e), math.log(math.e + c - 1)
    logits, target = random_problem(256, c, scale=10.0, dtype=torch.float64)
    losses = F.cross_entropy(logits.softmax(dim=1), target, reduction="none")
    assert (losses >= low - 1e-12).all() and (losses <= high + 1e-12).all()
    perfect = torch.zeros(1, c, dtype=torch.float64)
    perfect[0, 0] = 1000.0
    assert math.isclose(F.cross_entropy(perfect.softmax(1), torch.tensor([0])).item(), low, rel_tol=1e-12)
    assert math.isclose(F.cross_entropy(perfect.softmax(1), torch.tensor([1])).item(), high, rel_tol=1e-12)


@pytest.mark.parametrize("extra", [(), (6,)])
def test_soft_labels_equal_manual_and_one_hot(extra):
    logits, target = random_problem(8, 4, extra, dtype=torch.float64)
    probs = torch.softmax(torch.randn(logits.shape, generator=gen(1), dtype=torch.float64), dim=1)
    assert torch.allclose(F.cross_entropy(logits, probs), soft_cross_entropy_manual(logits, probs))
    one_hot = F.one_hot(target, 4).movedim(-1, 1).double()
    assert torch.allclose(F.cross_entropy(logits, one_hot), F.cross_entropy(logits, target))


def test_soft_cross_entropy_rejects_mismatched_targets():
    logits = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"probability targets need the logits' shape \(4, 3\).*cross_entropy_manual"):
        soft_cross_entropy_manual(logits, torch.zeros(4))


# ---------- binary cross-entropy ----------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bce_with_logits_equals_sigmoid_bce_on_moderate_logits(dtype):
    g = gen(0)
    logits = (torch.rand(64, generator=g) * 10 - 5).to(dtype)
    for target in (torch.randint(0, 2, (64,), generator=g).to(dtype), torch.rand(64, generator=g).to(dtype)):
        with_logits = F.binary_cross_entropy_with_logits(logits, target)
        assert torch.allclose(with_logits, F.binary_cross_entropy(torch.sigmoid(logits), target), rtol=1e-5)
        assert torch.allclose(with_logits, bce_with_logits_manual(logits, target), **TOL[dtype])


def test_bce_manual_gradient_matches_builtin_even_on_huge_logits():
    logits = torch.tensor([2.0, 30.0, -200.0, 1e4, -1e4], dtype=torch.float64)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.3], dtype=torch.float64)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    F.binary_cross_entropy_with_logits(a, target).backward()
    bce_with_logits_manual(b, target).backward()
    assert torch.allclose(a.grad, b.grad)
    assert torch.allclose(F.binary_cross_entropy_with_logits(logits, target), bce_with_logits_manual(logits, target))


def test_bce_large_logits_numbers_as_shown():
    results = demo_bce_large()
    loss, grad = results["BCEWithLogits"]
    assert fmt(loss) == "[0.1269, 30.0000, 200.0000]" and fmt(grad) == "[-0.1192, 1.0000, -1.0000]"
    loss, grad = results["Sigmoid+BCE"]
    assert loss[1:].tolist() == [100.0, 100.0]  # log clamped at -100, not the true 30 and 200
    assert grad[1:].abs().max().item() == 0.0   # no signal at all


def test_sigmoid_saturates_in_float32():
    assert torch.sigmoid(torch.tensor(17.0)).item() == 1.0
    assert torch.sigmoid(torch.tensor(16.0)).item() < 1.0
    assert torch.sigmoid(torch.tensor(-89.0)).item() == 0.0
    assert torch.sigmoid(torch.tensor(-88.0)).item() > 0.0
    assert torch.sigmoid(torch.tensor(-100.0)).item() == 0.0


def test_bce_at_plus_minus_100_right_loss_by_luck_but_zero_gradient():
    logits = torch.tensor([100.0, -100.0], requires_grad=True)
    target = torch.tensor([0.0, 1.0])
    loss = F.binary_cross_entropy(torch.sigmoid(logits), target, reduction="none")
    assert loss.tolist() == [100.0, 100.0]
    exact = F.binary_cross_entropy_with_logits(logits.detach(), target, reduction="none")
    assert torch.allclose(loss, exact)  # the true loss is 100 + log1p(e^-100): the clamp happens to match
    loss.sum().backward()
    assert logits.grad.abs().max().item() == 0.0


# ---------- regression ----------

REGRESSION = [
    (mse_manual, {}, F.mse_loss, {}),
    (l1_manual, {}, F.l1_loss, {}),
    (smooth_l1_manual, {"beta": 1.0}, F.smooth_l1_loss, {"beta": 1.0}),
    (smooth_l1_manual, {"beta": 0.5}, F.smooth_l1_loss, {"beta": 0.5}),
    (smooth_l1_manual, {"beta": 0.0}, F.smooth_l1_loss, {"beta": 0.0}),
    (huber_manual, {"delta": 1.0}, F.huber_loss, {"delta": 1.0}),
    (huber_manual, {"delta": 2.5}, F.huber_loss, {"delta": 2.5}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("manual,manual_kw,builtin,builtin_kw", REGRESSION)
def test_regression_manual_equals_builtin(manual, manual_kw, builtin, builtin_kw, dtype):
    g = gen(0)
    pred, target = (torch.randn(2, 50, generator=g) * 3).to(dtype), (torch.randn(2, 50, generator=g) * 3).to(dtype)
    pred[0, :4] = target[0, :4] + torch.tensor([0.0, 0.5, 1.0, 2.5], dtype=dtype)  # zero and boundary cases
    elementwise = manual(pred, target, **manual_kw)
    assert elementwise.shape == pred.shape
    assert torch.allclose(elementwise, builtin(pred, target, reduction="none", **builtin_kw), **TOL[dtype])
    assert torch.allclose(elementwise.mean(), builtin(pred, target, **builtin_kw), **TOL[dtype])
    assert torch.allclose(elementwise.sum(), builtin(pred, target, reduction="sum", **builtin_kw), **TOL[dtype])
    a, b = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    manual(a, target, **manual_kw).mean().backward()
    builtin(b, target, **builtin_kw).backward()
    assert torch.allclose(a.grad, b.grad, **TOL[dtype])


def test_smooth_l1_with_beta_zero_is_l1():
    pred, target = torch.randn(20, generator=gen(0)), torch.randn(20, generator=gen(1))
    assert torch.allclose(F.smooth_l1_loss(pred, target, beta=0.0), F.l1_loss(pred, target))


@pytest.mark.parametrize("delta", [0.1, 0.5, 1.0, 2.0, 7.0])
def test_huber_is_delta_times_smooth_l1(delta):
    pred, target = torch.randn(100, generator=gen(0)) * 3, torch.randn(100, generator=gen(1)) * 3
    huber = F.huber_loss(pred, target, delta=delta, reduction="none")
    smooth = F.smooth_l1_loss(pred, target, beta=delta, reduction="none")
    assert torch.allclose(huber, delta * smooth, rtol=1e-5, atol=1e-6)
    assert torch.allclose(nn.HuberLoss(delta=delta)(pred, target), delta * nn.SmoothL1Loss(beta=delta)(pred, target))
    assert torch.allclose(huber_manual(pred, target, delta), delta * smooth_l1_manual(pred, target, delta), atol=1e-6)


def test_builtin_mse_broadcasts_with_a_warning_and_manual_refuses():
    pred, target = torch.randn(4, 1, generator=gen(0)), torch.randn(4, generator=gen(1))
    with pytest.warns(UserWarning, match="will likely lead to incorrect results due to broadcasting"):
        wrong = F.mse_loss(pred, target)
    assert torch.allclose(wrong, ((pred - target) ** 2).mean())  # a [4, 4] table of every pair
    assert not torch.allclose(wrong, F.mse_loss(pred.squeeze(1), target))
    with pytest.raises(ValueError, match=r"^mse_manual: prediction shape \(4, 1\) differs from target shape \(4,\), "
                                         r"which would broadcast; reshape one of them \(e\.g\. pred\.squeeze\(1\)\)"):
        mse_manual(pred, target)


def test_regression_manual_rejects_bad_arguments():
    x = torch.zeros(3)
    with pytest.raises(TypeError, match="l1_manual: prediction and target must be floating point"):
        l1_manual(torch.zeros(3, dtype=torch.long), x)
    with pytest.raises(ValueError, match="beta must be >= 0, got -1"):
        smooth_l1_manual(x, x, beta=-1)
    with pytest.raises(ValueError, match="delta must be > 0, got 0"):
        huber_manual(x, x, delta=0)
    with pytest.raises(ValueError, match="bce_with_logits_manual: prediction shape"):
        bce_with_logits_manual(torch.zeros(4, 1), torch.zeros(4))


# ---------- reduction ----------

def test_reduction_shapes_and_relations():
    pred, target = torch.randn(2, 3, generator=gen(0)), torch.randn(2, 3, generator=gen(1))
    none = F.mse_loss(pred, target, reduction="none")
    total = F.mse_loss(pred, target, reduction="sum")
    mean = F.mse_loss(pred, target, reduction="mean")
    assert none.shape == (2, 3) and total.shape == () and mean.shape == ()
    assert torch.allclose(none.sum(), total) and torch.allclose(total / none.numel(), mean)
    logits, labels = random_problem(4, 3, (5,))
    assert F.cross_entropy(logits, labels, reduction="none").shape == (4, 5)
    assert F.cross_entropy(logits[..., 0], labels[..., 0], reduction="none").shape == (4,)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_mean_divides_by_the_targets_weights_not_n(seed):
    logits, target = random_problem(12, 4, seed=seed, dtype=torch.float64)
    weight = torch.tensor([1.0, 2.0, 5.0, 0.5], dtype=torch.float64)
    builtin = F.cross_entropy(logits, target, weight=weight)
    weighted = weight[target] * F.cross_entropy(logits, target, reduction="none")
    assert torch.allclose(builtin, weighted.sum() / weight[target].sum())
    assert not torch.allclose(builtin, weighted.sum() / len(target))
    assert torch.allclose(builtin, weighted_cross_entropy_manual(logits, target, weight))
    # 'sum' is the plain weighted sum, 'none' the weighted per-sample losses
    assert torch.allclose(F.cross_entropy(logits, target, weight=weight, reduction="sum"), weighted.sum())
    assert torch.allclose(F.cross_entropy(logits, target, weight=weight, reduction="none"), weighted)


def test_weighted_mean_ignores_a_common_scale_of_the_weights():
    logits, target = random_problem(12, 4, dtype=torch.float64)
    weight = torch.tensor([1.0, 2.0, 5.0, 0.5], dtype=torch.float64)
    assert torch.allclose(F.cross_entropy(logits, target, weight=weight),
                          F.cross_entropy(logits, target, weight=7.0 * weight))
    assert torch.allclose(F.cross_entropy(logits, target, weight=torch.full((4,), 3.0, dtype=torch.float64)),
                          F.cross_entropy(logits, target))


def test_weight_demo_numbers():
    torch.manual_seed(0)
    logits, target = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    weight = torch.tensor([1.0, 2.0, 5.0])
    per_sample = weight[target] * F.cross_entropy(logits, target, reduction="none")
    assert fmt(F.cross_entropy(logits, target, weight=weight)) == "1.2446"
    assert fmt(per_sample.sum() / len(target)) == "4.0449"


def test_weighted_manual_rejects_wrong_weight_length():
    logits, target = random_problem(4, 3)
    with pytest.raises(ValueError, match=r"weight needs one entry per class, shape \(3,\), got \(4,\)"):
        weighted_cross_entropy_manual(logits, target, torch.ones(4))


def test_ignore_index_default_and_custom():
    logits, target = random_problem(10, 4, dtype=torch.float64)
    target[[1, 4, 7]] = -100
    kept = target != -100
    loss = F.cross_entropy(logits, target)
    assert torch.allclose(loss, F.cross_entropy(logits[kept], target[kept]))
    assert torch.allclose(loss, weighted_cross_entropy_manual(logits, target))
    assert (F.cross_entropy(logits, target, reduction="none")[~kept] == 0).all()
    seg = torch.where(kept, target, 255)  # segmentation masks often use 255 for "void"
    assert torch.allclose(F.cross_entropy(logits, seg, ignore_index=255), loss)
    assert torch.allclose(weighted_cross_entropy_manual(logits, seg, ignore_index=255), loss)


def test_ignore_index_with_weights_and_extra_dims():
    logits, target = random_problem(3, 4, (6,), dtype=torch.float64, seed=3)
    target[0, :2] = -100
    weight = torch.tensor([0.2, 1.0, 3.0, 1.5], dtype=torch.float64)
    assert torch.allclose(F.cross_entropy(logits, target, weight=weight),
                          weighted_cross_entropy_manual(logits, target, weight))


def test_all_targets_ignored_gives_nan():
    logits = torch.randn(4, 3, generator=gen(0))
    all_ignored = torch.full((4,), -100)
    assert torch.isnan(F.cross_entropy(logits, all_ignored))
    assert torch.isnan(weighted_cross_entropy_manual(logits, all_ignored))
    assert F.cross_entropy(logits, all_ignored, reduction="sum").item() == 0.0


# ---------- label smoothing ----------

@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("extra", [(), (5,)])
def test_label_smoothing_manual_equals_builtin(eps, extra):
    logits, target = random_problem(8, 4, extra, dtype=torch.float64)
    builtin = F.cross_entropy(logits, target, label_smoothing=eps)
    assert torch.allclose(builtin, label_smoothing_cross_entropy_manual(logits, target, eps))
    smoothed = ((1 - eps) * F.one_hot(target, 4) + eps / 4).movedim(-1, 1).double()
    assert torch.allclose(builtin, F.cross_entropy(logits, smoothed))
    assert torch.allclose(nn.CrossEntropyLoss(label_smoothing=eps)(logits, target), builtin)


def test_label_smoothing_manual_rejects_bad_eps():
    logits, target = random_problem(4, 3)
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\], got 1.5"):
        label_smoothing_cross_entropy_manual(logits, target, 1.5)


# ---------- the custom loss module ----------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("extra", [(), (3,)])
def test_focal_with_gamma_zero_is_cross_entropy(reduction, use_weight, extra):
    logits, target = random_problem(8, 5, extra, dtype=torch.float64)
    weight = torch.linspace(0.5, 1.5, 5, dtype=torch.float64) if use_weight else None
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    focal = FocalLoss(gamma=0.0, weight=weight, reduction=reduction)(a, target)
    ce = F.cross_entropy(b, target, weight=weight, reduction=reduction)
    assert focal.shape == ce.shape and torch.allclose(focal, ce)
    focal.sum().backward()
    ce.sum().backward()
    assert torch.allclose(a.grad, b.grad)


def test_focal_matches_its_formula():
    logits, target = random_problem(8, 5, dtype=torch.float64)
    p = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    expected = -((1 - p) ** 2 * torch.log(p))
    assert torch.allclose(FocalLoss(gamma=2.0, reduction="none")(logits, target), expected)
    assert (expected <= F.cross_entropy(logits, target, reduction="none")).all()  # focusing only shrinks


def test_focal_gradcheck_float64():
    logits, target = random_problem(3, 4, dtype=torch.float64, scale=1.0)
    weight = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    for gamma in (0.5, 2.0):
        criterion = FocalLoss(gamma=gamma, weight=weight)
        assert torch.autograd.gradcheck(lambda x: criterion(x, target), (logits.clone().requires_grad_(),))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_gradient_stays_finite_on_certain_predictions(gamma):
    logits = torch.tensor([[100.0, 0.0, 0.0], [0.0, 50.0, 0.0]], requires_grad=True)
    loss = FocalLoss(gamma=gamma)(logits, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_focal_weight_is_a_buffer_that_moves_with_the_module():
    criterion = FocalLoss(weight=torch.ones(3))
    assert "weight" in dict(criterion.named_buffers()) and "weight" in criterion.state_dict()
    assert list(criterion.parameters()) == []
    assert criterion.to(torch.float64).weight.dtype == torch.float64


def test_demo_device_on_picked_device():
    loss = demo_device(pick_device)
    assert loss.device.type == pick_device().type and fmt(loss) == "1.4334"


VALIDATION = [
    (torch.zeros(4, 3, dtype=torch.long), torch.tensor([0, 2, 1, 2]), TypeError,
     "logits must be a floating-point tensor, got torch.int64; pass the model's raw outputs, or call logits.float()"),
    (torch.zeros(3), torch.tensor(1), ValueError,
     "logits must have shape [N, C] (or [N, C, d1, ...]), got (3,); "
     "for a single sample add the batch dimension with logits.unsqueeze(0)"),
    (torch.zeros(4, 3), torch.tensor([0.0, 2.0, 1.0, 2.0]), TypeError,
     "target must hold class indices as integers (torch.long), got torch.float32; "
     "use target.long(), or F.cross_entropy for class-probability targets"),
    (torch.zeros(4, 3), torch.tensor([[0], [2], [1], [2]]), ValueError,
     "target has shape (4, 1), but logits of shape (4, 3) need a target of shape (4,) "
     "(the class dimension of logits is dim 1); squeeze the [N, 1] target with target.squeeze(1)"),
    (torch.zeros(4, 3), torch.tensor([0, 2, 1]), ValueError,
     "target has shape (3,), but logits of shape (4, 3) need a target of shape (4,) "
     "(the class dimension of logits is dim 1); logits and target hold different numbers of samples; "
     "pass matching batches"),
    (torch.zeros(2, 7, 3), torch.zeros(2, 7, dtype=torch.long), ValueError,
     "target has shape (2, 7), but logits of shape (2, 7, 3) need a target of shape (2, 3) "
     "(the class dimension of logits is dim 1); if the classes are on the last axis of the logits, "
     "move them with logits.movedim(-1, 1)"),
    (torch.zeros(4, 3), torch.tensor([0, 2, 1, 3]), ValueError,
     "target holds class 3, but logits have 3 classes, so targets must lie in [0, 2]; "
     "check the label encoding or the size of the last layer"),
    (torch.zeros(4, 3), torch.tensor([0, -100, 1, 2]), ValueError,
     "target holds class -100, but logits have 3 classes, so targets must lie in [0, 2]; "
     "check the label encoding or the size of the last layer"),
]


@pytest.mark.parametrize("logits,target,error,message", VALIDATION)
def test_focal_rejects_bad_input_with_exact_message(logits, target, error, message):
    with pytest.raises(error) as info:
        FocalLoss()(logits, target)
    assert str(info.value) == message
    with pytest.raises(error):
        cross_entropy_manual(logits, target)
    with pytest.raises(error):
        check_class_target(logits, target)


def test_movedim_hint_fixes_sequence_logits():
    g = gen(0)
    logits, target = torch.randn(2, 7, 3, generator=g), torch.randint(0, 3, (2, 7), generator=g)  # [N, L, C]
    with pytest.raises(ValueError, match=r"move them with logits\.movedim\(-1, 1\)$"):
        cross_entropy_manual(logits, target)
    fixed = cross_entropy_manual(logits.movedim(-1, 1), target)
    assert torch.allclose(fixed, F.cross_entropy(logits.reshape(-1, 3), target.reshape(-1)))


def test_zero_dim_target_is_reported_as_a_batch_mismatch():
    with pytest.raises(ValueError, match="hold different numbers of samples"):
        FocalLoss()(torch.zeros(4, 3), torch.tensor(1))


def test_focal_rejects_bad_settings():
    with pytest.raises(ValueError, match="gamma must be >= 0, got -1; gamma=0 gives plain cross-entropy"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        FocalLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"weight must be a 1-D float tensor.*got shape \(3, 1\)"):
        FocalLoss(weight=torch.ones(3, 1))
    with pytest.raises(ValueError, match="weight has 4 entries but logits have 3 classes; pass one weight per class"):
        FocalLoss(weight=torch.ones(4))(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_builtin_errors_are_the_cryptic_ones_shown():
    logits = torch.zeros(4, 3)
    with pytest.raises(IndexError, match=r"^Target 3 is out of bounds\.$"):
        F.cross_entropy(logits, torch.tensor([0, 2, 1, 3]))
    with pytest.raises(RuntimeError, match=r"^0D or 1D target tensor expected, multi-target not supported$"):
        F.cross_entropy(logits, torch.tensor([[0], [2], [1], [2]]))
    # the page: torch 2.6 raises a RuntimeError here, later releases its subclass NotImplementedError
    error = RuntimeError if torch.__version__.startswith("2.6.") else NotImplementedError
    with pytest.raises(error, match="not implemented for 'Long'") as raised:
        F.cross_entropy(logits.long(), torch.tensor([0, 2, 1, 2]))
    assert type(raised.value) is error and issubclass(NotImplementedError, RuntimeError)


# ---------- CUDA ----------

@pytest.mark.cuda
def test_focal_same_value_and_gradient_on_cuda_as_on_cpu():
    logits, target = random_problem(64, 10, scale=3.0)
    weight = torch.linspace(0.5, 1.5, 10)
    results = []
    for device in ("cpu", "cuda"):
        x = logits.to(device, copy=True).requires_grad_()  # a fresh leaf on each device
        loss = FocalLoss(gamma=2.0, weight=weight).to(device)(x, target.to(device))
        loss.backward()
        assert loss.device.type == device
        results.append((loss.detach().cpu(), x.grad.cpu()))
    (cpu_loss, cpu_grad), (cuda_loss, cuda_grad) = results
    assert torch.allclose(cpu_loss, cuda_loss, rtol=1e-5, atol=1e-6)
    assert torch.allclose(cpu_grad, cuda_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.cuda
def test_manual_losses_equal_builtins_on_cuda():
    logits, target = random_problem(32, 6)
    logits, target = logits.cuda(), target.cuda()
    assert torch.allclose(cross_entropy_manual(logits, target), F.cross_entropy(logits, target), rtol=1e-5)
    weight = torch.linspace(0.5, 2.0, 6, device="cuda")
    assert torch.allclose(weighted_cross_entropy_manual(logits, target, weight),
                          F.cross_entropy(logits, target, weight=weight), rtol=1e-5)
    x = torch.linspace(-300, 300, 41, device="cuda")
    y = (torch.arange(41, device="cuda") % 2).float()
    assert torch.allclose(bce_with_logits_manual(x, y), F.binary_cross_entropy_with_logits(x, y), rtol=1e-5)


@pytest.mark.cuda
def test_weight_must_be_on_the_logits_device_and_to_moves_it():
    logits, target = random_problem(8, 3)
    logits, target = logits.cuda(), target.cuda()
    with pytest.raises(RuntimeError, match="device"):
        nn.CrossEntropyLoss(weight=torch.ones(3))(logits, target)
    criterion = nn.CrossEntropyLoss(weight=torch.ones(3)).to("cuda")  # weight is a buffer: it moves
    assert torch.allclose(criterion(logits, target), F.cross_entropy(logits, target))
    assert FocalLoss(weight=torch.ones(3)).to("cuda")(logits, target).device.type == "cuda"


@pytest.mark.cuda
def test_our_check_beats_the_cuda_device_side_assert():
    logits = torch.zeros(4, 3, device="cuda")
    with pytest.raises(ValueError, match="target holds class 3, but logits have 3 classes"):
        FocalLoss()(logits, torch.tensor([0, 2, 1, 3], device="cuda"))
    # the built-in on CUDA kills the process's CUDA context, so run it in a child process
    code = ("import torch, torch.nn.functional as F\n"
            "F.cross_entropy(torch.zeros(4, 3, device='cuda'), torch.tensor([0, 2, 1, 3], device='cuda'))\n"
            "torch.cuda.synchronize()\n")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode != 0
    assert "device-side assert" in child.stderr


# ---------- pos_weight ----------

@pytest.mark.parametrize("pos_weight", [0.0, 0.5, 3.0, 10.0])
def test_pos_weight_equals_weighting_the_positive_term(pos_weight):
    g = gen(4)
    logits = torch.randn(32, generator=g, dtype=torch.float64) * 4
    target = (torch.rand(32, generator=g) < 0.25).double()
    builtin = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(pos_weight,
                                                 dtype=torch.float64), reduction="none")
    by_hand = -(pos_weight * target * torch.log(torch.sigmoid(logits))
                + (1 - target) * torch.log(1 - torch.sigmoid(logits)))
    assert torch.allclose(builtin, by_hand)
    assert torch.allclose(builtin, bce_pos_weight_manual(logits, target, pos_weight))


def test_pos_weight_one_is_plain_bce_and_mean_is_over_all_elements():
    logits, target = torch.randn(16, generator=gen(1)), (torch.rand(16, generator=gen(2)) < 0.3).float()
    plain = F.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(1.0)), plain)
    per_element = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(3.0), reduction="none")
    assert torch.allclose(F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(3.0)),
                          per_element.sum() / 16)


def test_pos_weight_demo_numbers():
    torch.manual_seed(0)
    logits = torch.randn(8)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    pw = (target == 0).sum() / (target == 1).sum()
    assert pw.item() == 3.0
    assert fmt(nn.BCEWithLogitsLoss()(logits, target)) == "0.4578"
    assert fmt(nn.BCEWithLogitsLoss(pos_weight=pw)(logits, target)) == "0.5961"


def test_pos_weight_per_label_broadcasts_over_the_last_dim_and_leaves_negatives_alone():
    logits = torch.randn(4, 3, generator=gen(0))
    target = (torch.rand(4, 3, generator=gen(1)) < 0.5).float()
    pw = torch.tensor([1.0, 3.0, 5.0])
    builtin = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
    plain = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert torch.allclose(builtin, bce_pos_weight_manual(logits, target, pw))
    assert torch.equal(builtin[target == 0], plain[target == 0])
    assert torch.allclose(builtin[target == 1], (pw.expand(4, 3) * plain)[target == 1])


def test_bce_pos_weight_manual_rejects_bad_input():
    x = torch.zeros(4)
    with pytest.raises(ValueError, match=r"pos_weight must be >= 0 \(e.g. n_negative / n_positive\), got \[-1.0\]"):
        bce_pos_weight_manual(x, x, torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="bce_pos_weight_manual: prediction shape"):
        bce_pos_weight_manual(torch.zeros(4, 1), x, 1.0)


# ---------- BCE under autocast ----------

def test_under_cpu_autocast_both_bce_losses_run_in_float32():
    layer = nn.Linear(4, 1)
    x, y = torch.randn(6, 4, generator=gen(0)), (torch.rand(6, 1, generator=gen(1)) < 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        with_logits = nn.BCEWithLogitsLoss()(logits, y)
        probs = torch.sigmoid(logits)
        bce = nn.BCELoss()(probs, y)
    assert logits.dtype == torch.bfloat16 and probs.dtype == torch.bfloat16
    assert with_logits.dtype == torch.float32 and bce.dtype == torch.float32
    # autocast casts BCE's bf16 input up to float32: the same as BCE on the float32 copy
    assert torch.equal(bce, F.binary_cross_entropy(probs.float(), y))


def test_float16_sigmoid_saturates_sooner_than_float32():
    x = torch.tensor(10.0)
    assert torch.sigmoid(x.half()).item() == 1.0
    assert torch.sigmoid(x).item() < 1.0


@pytest.mark.cuda
def test_bce_loss_is_refused_under_cuda_autocast():
    with pytest.raises(RuntimeError, match=r"^torch\.nn\.functional\.binary_cross_entropy and torch\.nn\.BCELoss "
                                           r"are unsafe to autocast\."):
        demo_autocast_bce_cuda()
    with pytest.raises(RuntimeError, match="unsafe to autocast"):
        with torch.autocast("cuda", dtype=torch.float16):
            F.binary_cross_entropy(torch.full((3,), 0.5, device="cuda"), torch.ones(3, device="cuda"))


@pytest.mark.cuda
def test_bce_with_logits_is_allowed_under_cuda_autocast():
    layer = nn.Linear(4, 1).cuda()
    x, y = torch.randn(6, 4, device="cuda"), torch.ones(6, 1, device="cuda")
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cuda", dtype=dtype):
            logits = layer(x)
            loss = nn.BCEWithLogitsLoss()(logits, y)
        assert logits.dtype == dtype and loss.dtype == torch.float32 and torch.isfinite(loss)


# ---------- KLDivLoss ----------

def kl_problem(seed=0, n=6, c=5):
    g = gen(seed)
    log_q = torch.log_softmax(torch.randn(n, c, generator=g, dtype=torch.float64), dim=1)
    p = torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64), dim=1)
    return log_q, p


def test_batchmean_is_the_mathematical_kl_averaged_over_samples():
    log_q, p = kl_problem()
    by_hand = (p * (p.log() - log_q)).sum() / p.shape[0]
    assert torch.allclose(F.kl_div(log_q, p, reduction="batchmean"), by_hand)
    assert torch.allclose(kl_div_manual(log_q, p).mean(), by_hand)
    assert (kl_div_manual(log_q, p) >= 0).all()


def test_kl_mean_divides_by_all_elements_and_warns():
    log_q, p = kl_problem(n=6, c=5)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        mean = nn.KLDivLoss()(log_q, p)  # default reduction="mean"
    batchmean = F.kl_div(log_q, p, reduction="batchmean")
    assert torch.allclose(mean, batchmean / 5)
    assert not torch.allclose(mean, batchmean)


def test_kl_log_target_equals_exp_target_and_zero_on_itself():
    log_q, p = kl_problem(seed=3)
    assert torch.allclose(F.kl_div(log_q, p.log(), reduction="batchmean", log_target=True),
                          F.kl_div(log_q, p, reduction="batchmean"))
    assert F.kl_div(log_q, log_q, reduction="batchmean", log_target=True).item() == 0.0


def test_kl_log_target_equals_exp_target_even_where_exp_underflows():
    log_q = torch.log_softmax(torch.tensor([[0.0, 0.0]]), dim=1)
    log_p = torch.tensor([[0.0, -200.0]])  # exp(-200) underflows to 0 in float32
    assert log_p.exp()[0, 1].item() == 0.0
    with_log = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    with_exp = F.kl_div(log_q, log_p.exp(), reduction="batchmean")
    assert torch.isfinite(with_log) and torch.isfinite(with_exp)
    assert torch.allclose(with_log, with_exp)  # the 0 * log 0 term is 0 either way


def test_kl_manual_handles_zero_probabilities_and_rejects_bad_shapes():
    log_q = torch.log_softmax(torch.randn(2, 3, generator=gen(0)), dim=1)
    p = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    assert torch.allclose(kl_div_manual(log_q, p).mean(), F.kl_div(log_q, p, reduction="batchmean"))
    with pytest.raises(ValueError, match="kl_div_manual: prediction shape"):
        kl_div_manual(log_q, p[:, :2])


def test_kl_demo_numbers():
    torch.manual_seed(0)
    log_q = torch.log_softmax(torch.randn(4, 5), dim=1)
    p = torch.softmax(torch.randn(4, 5), dim=1)
    assert fmt(F.kl_div(log_q, p, reduction="batchmean")) == "0.5777"


# --- BCELoss on large logits: the clamp sets the loss, the saturated sigmoid the zero gradient ---

def test_bce_zero_gradient_comes_from_the_saturated_sigmoid_not_the_clamp():
    x = torch.tensor([30.0, -200.0], requires_grad=True)
    p = torch.sigmoid(x)
    p.retain_grad()
    loss = F.binary_cross_entropy(p, torch.tensor([0.0, 1.0]), reduction="sum")
    loss.backward()
    assert p.tolist() == [1.0, 0.0]           # the sigmoid rounded to exactly 1 and 0
    assert loss.item() == 200.0               # each log clamped at -100: 100 per sample
    assert (p.grad.abs() > 1e11).all()        # BCELoss's own gradient is about 1e12, not 0
    assert x.grad.abs().tolist() == [0.0, 0.0]  # p(1 - p) = 0 stops it at the sigmoid
    # the sigmoid's derivative alone is already 0 there
    (d,) = torch.autograd.grad(torch.sigmoid(x).sum(), x)
    assert d.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_blames_the_sigmoid_for_the_zero_gradient(lang):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "losses.md").read_text(encoding="utf-8")
    assert "p(1 − p)" in text and "10¹²" in text
    assert "so the loss is cut off at 100 and the gradient is exactly 0" not in text
    assert "于是损失被截成 100，梯度恰好为 0" not in text


# --- exercises -------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 10.0, 100.0])
def test_exercise_two_class_logits_make_cross_entropy_equal_bce_with_logits(scale):
    from snippets import losses as L

    torch.manual_seed(0)
    x = torch.randn(64, dtype=torch.float64) * scale
    y = torch.randint(0, 2, (64,))
    two = L.two_class_logits(x)
    assert two.shape == (64, 2) and torch.all(two[:, 0] == 0)
    assert torch.allclose(F.softmax(two, dim=1)[:, 1], torch.sigmoid(x))
    assert torch.allclose(F.cross_entropy(two, y), F.binary_cross_entropy_with_logits(x, y.double()))
    bce, ce = L.exercise_two_class_logits()  # the page's numbers
    assert torch.allclose(bce, ce)


def test_exercise_inverse_frequency_weights_give_every_class_the_same_say():
    from snippets import losses as L

    target = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
    w = L.inverse_frequency_weights(target, 3)
    assert torch.allclose(w, torch.tensor([10 / 18, 10 / 9, 10 / 3]))
    assert torch.allclose(torch.bincount(target, weights=w[target]), torch.full((3,), 10 / 3))
    weighted, per_class_mean = L.exercise_inverse_frequency()
    assert torch.allclose(weighted, per_class_mean)


def test_exercise_inverse_frequency_weights_refuse_a_class_without_samples():
    from snippets import losses as L

    with pytest.raises(ValueError, match=r"classes \[1, 3\] have no samples in target"):
        L.inverse_frequency_weights(torch.tensor([0, 2, 2]), 4)


class _HostReads(torch.overrides.TorchFunctionMode):
    """Counts the tensor-to-Python conversions (bool, item) that a GPU would wait for."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("__bool__", "item", "tolist"):
            self.reads += 1
        return func(*args, **(kwargs or {}))


def test_the_target_range_check_reads_a_value_back_on_every_call():
    """The page: `if invalid.any():` waits for the device on every call, so in training the labels
    are checked once, before the first step (as the training chapter does), not in every loss."""
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with _HostReads() as mode:
        check_class_target(logits, target)
        FocalLoss(gamma=2.0)(logits, target)
    assert mode.reads == 2


@pytest.mark.cuda
def test_the_target_range_check_synchronises_on_cuda():
    logits, target = torch.randn(4, 3, device="cuda"), torch.tensor([0, 1, 2, 0], device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError, match="called a synchronizing CUDA operation"):
            check_class_target(logits, target)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("lang, says", [("en", "waits for the device on every call"), ("zh", "每次调用都要等设备")])
def test_page_agrees_with_training_that_a_per_batch_label_check_costs_a_sync(lang, says):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "losses.md").read_text(encoding="utf-8")
    assert says in text and "(training.md#" in text
    assert "that is cheap" not in text and "开销很小" not in text


def test_multi_label_bce_takes_one_logit_per_sample_and_label():
    """The page: binary, one logit per sample; multi-label, [N, L] logits with an [N, L] target,
    each element an independent binary loss."""
    torch.manual_seed(0)
    logits, target = torch.randn(4, 3), (torch.rand(4, 3) > 0.5).float()
    per_label = [F.binary_cross_entropy_with_logits(logits[:, j], target[:, j], reduction="sum")
                 for j in range(3)]
    assert torch.allclose(F.binary_cross_entropy_with_logits(logits, target), sum(per_label) / 12)
    with pytest.raises(ValueError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(logits[:, 0], target)  # one logit per sample is too few


@pytest.mark.parametrize("lang, says", [("en", "one per sample and label, shape `[N, L]`"),
                                        ("zh", "每个样本的每个标签各一个，形状为 `[N, L]`")])
def test_page_gives_multi_label_one_logit_per_label(lang, says):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "losses.md").read_text(encoding="utf-8")
    assert says in text
