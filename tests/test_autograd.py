"""Each claim of the autograd chapter, asserted."""
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from snippets import autograd as ag


def test_requires_grad_gives_2x_and_is_off_by_default():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x ** 2).sum().backward()
    assert torch.equal(x.grad, 2 * x.detach())
    assert torch.tensor([1.0]).requires_grad is False


def test_graph_leaves_and_functions():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b.sum()
    assert a.is_leaf and a.grad_fn is None
    assert not b.is_leaf and type(b.grad_fn).__name__ == "MulBackward0"
    assert c.grad_fn.next_functions[0][0] is b.grad_fn  # edges point back towards the inputs
    assert ag.edges(c.grad_fn) == ["MulBackward0"]
    assert ag.edges(b.grad_fn) == ["AccumulateGrad", None]


def test_detach_shares_storage_and_leaves_the_original_tracked():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b.detach()
    assert c.requires_grad is False and c.grad_fn is None and c.is_leaf
    assert b.requires_grad and b.grad_fn is not None  # detach() is not in place
    assert c.data_ptr() == b.data_ptr()
    c[0] = 100.0
    assert b[0].item() == 100.0


def test_detach_does_not_stop_the_tensor_it_is_called_on_being_tracked():
    # the notes: "to stop a tensor from being tracked, call .detach()"; the page corrects it
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    b.detach()
    assert (b * 3).requires_grad  # b is still tracked: detach() changed nothing about b
    b = b.detach()                # what stops tracking: using the detached tensor from then on
    assert not (b * 3).requires_grad


def test_gradients_accumulate_2_4_6_then_zero():
    x = torch.tensor(1.0, requires_grad=True)
    seen = []
    for _ in range(3):
        (2 * x).backward()
        seen.append(x.grad.item())
    assert seen == [2.0, 4.0, 6.0]
    x.grad.zero_()
    (2 * x).backward()
    assert x.grad.item() == 2.0


def test_optimizer_zero_grad_sets_none_by_default():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.ones(2, 3)).sum().backward()
    opt.zero_grad()
    assert model.weight.grad is None
    model(torch.ones(2, 3)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert torch.equal(model.weight.grad, torch.zeros_like(model.weight))


@pytest.mark.parametrize("micro", [2, 4, 8])
def test_micro_batch_accumulation_equals_full_batch(micro):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    full = ag.grads_after(model, X, y, micro_batches=1)
    acc = ag.grads_after(model, X, y, micro_batches=micro)
    assert all(torch.allclose(f, a, atol=1e-6) for f, a in zip(full, acc))


def test_micro_batches_without_scaling_would_be_too_large():
    # the scaling by 1/micro_batches is what makes the sum equal the full-batch mean
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    full = ag.grads_after(model, X, y, micro_batches=1)
    model.zero_grad()
    for xb, yb in zip(X.chunk(4), y.chunk(4)):
        nn.functional.mse_loss(model(xb), yb).backward()
    assert torch.allclose(model.weight.grad, 4 * full[0], atol=1e-5)


def _accumulated(model, X, y, sizes, scale):
    model.zero_grad()
    for xb, yb in zip(X.split(sizes), y.split(sizes)):
        (nn.functional.mse_loss(model(xb), yb) * scale(xb)).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_unequal_micro_batches_need_weights_by_their_share_of_the_samples():
    """The page: equal sizes; a smaller last micro-batch is weighted by len(xb) / len(X)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    full = ag.grads_after(model, X, y, micro_batches=1)
    by_count = _accumulated(model, X, y, [3, 3, 2], lambda xb: 1 / 3)
    by_share = _accumulated(model, X, y, [3, 3, 2], lambda xb: len(xb) / len(X))
    assert not torch.allclose(by_count[0], full[0], atol=1e-3)
    assert all(torch.allclose(f, a, atol=1e-6) for f, a in zip(full, by_share))


def test_batchnorm_breaks_micro_batch_equality():
    """BatchNorm's statistics are per micro-batch, so the accumulated gradient differs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    full = ag.grads_after(model, X, y, micro_batches=1)
    acc = ag.grads_after(model, X, y, micro_batches=2)
    assert not torch.allclose(full[0], acc[0], atol=1e-3)


def _steps(make_opt, unscaled: bool):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    start = model.weight.detach().clone()
    opt = make_opt(model.parameters())
    for _ in range(5):
        _accumulated(model, X, y, [2, 2, 2, 2], lambda xb: 1.0 if unscaled else 0.25)
        opt.step()
    return model.weight.detach() - start


def test_unscaled_accumulation_is_a_4x_learning_rate_for_sgd_but_hardly_changes_adam():
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.01)  # noqa: E731
    adam = lambda ps: torch.optim.Adam(ps, lr=0.01)  # noqa: E731
    sgd_first = _steps(sgd, unscaled=False)
    # SGD with lr 0.04 on the right gradient goes where SGD with lr 0.01 goes on 4x the gradient
    assert torch.allclose(_steps(sgd, unscaled=True),
                          _steps(lambda ps: torch.optim.SGD(ps, lr=0.04), unscaled=False), atol=1e-6)
    assert not torch.allclose(_steps(sgd, unscaled=True), sgd_first, atol=1e-3)
    assert torch.allclose(_steps(adam, unscaled=True), _steps(adam, unscaled=False), atol=1e-6)


def test_unscaled_accumulation_shows_in_what_reads_the_gradients_size():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    _accumulated(model, X, y, [2, 2, 2, 2], lambda xb: 0.25)
    right = nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    _accumulated(model, X, y, [2, 2, 2, 2], lambda xb: 1.0)
    unscaled = nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    assert torch.allclose(unscaled, 4 * right)


@pytest.mark.parametrize("bad", [0, 3, -1])
def test_grads_after_rejects_a_split_that_does_not_divide(bad):
    with pytest.raises(ValueError, match="must be >= 1 and divide the batch size 8"):
        ag.grads_after(nn.Linear(4, 1), torch.randn(8, 4), torch.randn(8, 1), micro_batches=bad)


def test_no_grad_and_inference_mode_build_no_graph():
    model = nn.Linear(3, 1)
    x = torch.ones(1, 3)
    assert model(x).requires_grad
    with torch.no_grad():
        assert not model(x).requires_grad
    with torch.inference_mode():
        out = model(x)
    assert not out.requires_grad and out.is_inference()


def inference_tensor() -> torch.Tensor:
    with torch.inference_mode():
        t = torch.full((3,), 2.0)
    assert t.is_inference()
    return t


def test_issue13_inference_tensor_takes_part_in_autograd_when_backward_does_not_need_it():
    # the old wording said inference tensors "can never take part in autograd later"
    w, t = torch.ones(3, requires_grad=True), inference_tensor()
    out = w + t
    assert out.requires_grad and not out.is_inference()
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones(3))


def test_inference_tensor_cannot_be_saved_for_backward():
    w, t = torch.ones(3, requires_grad=True), inference_tensor()
    with pytest.raises(RuntimeError, match=r"^Inference tensors cannot be saved for backward\. "):
        ag.demo_inference_saved(w, t)  # w * t: the gradient w.r.t. w is t
    assert w.grad is None


def test_a_clone_of_an_inference_tensor_is_an_ordinary_tensor():
    w, t = torch.ones(3, requires_grad=True), inference_tensor()
    assert not t.clone().is_inference()
    (w * t.clone()).sum().backward()
    assert torch.equal(w.grad, torch.full((3,), 2.0))


def test_the_pages_examples_run_in_order(capsys):
    ag.tour()
    out = capsys.readouterr().out.splitlines()
    assert out[-4:-2] == ["True", "tensor([1., 1., 1.])"]
    assert out[-2].startswith("RuntimeError: Inference tensors cannot be saved for backward.")
    assert out[-1] == "tensor([2., 2., 2.])"


def test_backward_twice_needs_retain_graph():
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        ag.demo_backward_twice()
    x = torch.tensor(1.0, requires_grad=True)
    y = torch.exp(x)
    y.backward(retain_graph=True)
    y.backward()
    assert torch.isclose(x.grad, 2 * torch.exp(torch.tensor(1.0)))



# ---------------------------------------------------------------- issue 13: non-scalar backward, retain_grad,
# torch.autograd.grad, freezing

def test_backward_of_a_non_scalar_needs_gradient():
    with pytest.raises(RuntimeError, match=r"^grad can be implicitly created only for scalar outputs$"):
        ag.demo_non_scalar_backward()


def test_gradient_argument_gives_the_vector_jacobian_product():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = torch.tensor([1.0, 0.1, 0.01])
    (x ** 2).backward(gradient=v)
    J = torch.autograd.functional.jacobian(lambda t: t ** 2, x.detach())
    assert torch.equal(J, torch.diag(2 * x.detach()))
    assert torch.allclose(x.grad, v @ J) and torch.allclose(x.grad, torch.tensor([2.0, 0.4, 0.06]))


def test_sum_then_backward_is_gradient_of_ones():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x ** 2).sum().backward()
    by_sum = x.grad.clone()
    x.grad = None
    (x ** 2).backward(gradient=torch.ones(3))
    assert torch.equal(by_sum, x.grad) and torch.equal(by_sum, 2 * x.detach())


def test_a_non_leaf_grad_is_none_with_a_user_warning():
    import warnings
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 3
    (b * b).sum().backward()
    assert torch.equal(a.grad, torch.tensor([18.0, 36.0]))
    with pytest.warns(UserWarning, match=r"^The \.grad attribute of a Tensor that is not a leaf Tensor is being "
                                         r"accessed\..*retain_grad\(\)"):
        assert b.grad is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert a.grad is not None  # a leaf: no warning


def test_retain_grad_keeps_a_non_leaf_gradient():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 3
    b.retain_grad()
    (b * b).sum().backward()
    assert torch.equal(b.grad, 2 * b.detach()) and torch.equal(b.grad, torch.tensor([6.0, 12.0]))


def test_autograd_grad_returns_gradients_and_leaves_dot_grad_alone():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad((w ** 3).sum(), w)
    assert torch.equal(g, 3 * w.detach() ** 2) and w.grad is None
    w.grad = torch.full((2,), 7.0)  # an existing gradient is neither added to nor replaced
    (g2,) = torch.autograd.grad((w ** 3).sum(), w)
    assert torch.equal(g2, g) and torch.equal(w.grad, torch.full((2,), 7.0))


def test_autograd_grad_frees_the_graph_like_backward():
    w = torch.tensor(1.0, requires_grad=True)
    y = torch.exp(w)
    torch.autograd.grad(y, w)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        torch.autograd.grad(y, w)


def frozen_first_layer(momentum: float = 0.9):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum, weight_decay=0.01)
    return model, opt


def step(model, opt):
    model(torch.randn(16, 4)).pow(2).mean().backward()
    opt.step()


def test_frozen_parameters_get_no_grad_and_the_optimizer_leaves_them_unchanged():
    model, opt = frozen_first_layer()
    model[0].requires_grad_(False)
    frozen = [p.clone() for p in model[0].parameters()]
    head = model[2].weight.clone()
    for _ in range(3):  # momentum and weight decay included
        opt.zero_grad()
        step(model, opt)
    assert all(p.grad is None for p in model[0].parameters())
    assert all(torch.equal(p, f) for p, f in zip(model[0].parameters(), frozen))
    assert not torch.equal(model[2].weight, head)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 9


def test_freezing_after_training_started_with_zero_grads_still_moves_the_layer():
    model, opt = frozen_first_layer()
    step(model, opt)  # momentum buffers now exist
    model[0].requires_grad_(False)
    opt.zero_grad(set_to_none=False)  # a tensor of zeros, not None: not skipped
    before = model[0].weight.clone()
    step(model, opt)
    assert torch.equal(model[0].weight.grad, torch.zeros_like(before))
    assert not torch.equal(model[0].weight, before)  # momentum and weight decay moved it


def test_the_pages_freeze_example_prints_none_true_false_9(capsys):
    ag.tour()
    out = capsys.readouterr().out.splitlines()
    i = out.index("9 trainable")
    assert out[i - 2:i] == ["None", "True False"]
    assert "UserWarning: The .grad attribute of a Tensor that is not a leaf Tensor is being accessed" in out


# --- a gradient penalty needs create_graph=True ----------------------------------------------

def test_gradient_penalty_needs_create_graph():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    (plain,) = torch.autograd.grad((w**3).sum(), w)
    assert not plain.requires_grad and plain.grad_fn is None  # a constant
    with pytest.raises(RuntimeError, match="does not require grad"):
        (plain**2).sum().backward()  # a penalty alone on it cannot even be differentiated
    loss = (w**3).sum()
    (g,) = torch.autograd.grad(loss, w, create_graph=True)
    assert g.grad_fn is not None
    (loss + (g**2).sum()).backward()
    expected = 3 * w.detach() ** 2 + 36 * w.detach() ** 3  # d/dw [Σw³ + 9Σw⁴]
    assert torch.equal(w.grad, expected) and w.grad.tolist() == [39.0, 300.0]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_shows_create_graph_for_a_gradient_penalty(lang):
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "autograd.md").read_text(encoding="utf-8")
    assert "create_graph=True" in text
    assert '--8<-- "snippets/autograd.py:demo_gradient_penalty"' in text


# --- what a leaf is: no grad_fn ------------------------------------------------------------------

def test_a_leaf_is_a_tensor_without_grad_fn_whoever_made_it():
    made_by_an_op = torch.ones(2) * 2
    assert made_by_an_op.is_leaf and made_by_an_op.grad_fn is None  # requires no grad: a leaf
    a = torch.ones(2, requires_grad=True)
    assert a.is_leaf and a.grad_fn is None                          # created by the user
    b = a * 2
    assert not b.is_leaf and b.grad_fn is not None                  # an op on a tensor that requires grad
    assert b.detach().is_leaf                                       # detach: a new leaf
    with torch.no_grad():
        assert (a * 2).is_leaf                                      # no graph recorded: a leaf


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_glossary_defines_a_leaf_by_its_missing_grad_fn(lang):
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "glossary.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| leaf tensor |"))
    assert "`grad_fn`" in row
    assert "not produced by an operation" not in row and "不由运算产生" not in row


def test_notes_E18_detach_does_not_stop_tracking_the_tensor_it_is_called_on():
    """Errata E18: "要阻止一个张量被跟踪历史，可以调用.detach()": only the returned tensor is untracked."""
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    z = y.detach()
    assert y.requires_grad and y.grad_fn is not None      # y is still tracked
    assert not z.requires_grad and z.grad_fn is None      # the new tensor is not
    assert z.data_ptr() == y.data_ptr()                    # and shares y's memory


# --- exercises -------------------------------------------------------------------------------------
def test_exercise_stop_gradient_gives_x_not_2x():
    grad = ag.exercise_stop_gradient()
    x = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(grad, x) and not torch.equal(grad, 2 * x)


@pytest.mark.parametrize("x", [-1.5, 0.0, 2.0])
def test_exercise_second_derivative_is_6x_for_x_cubed_and_minus_sin_for_sin(x):
    assert ag.second_derivative(lambda t: t**3, x) == pytest.approx(6 * x)
    assert ag.second_derivative(torch.sin, x) == pytest.approx(-math.sin(x), abs=1e-6)
    assert ag.second_derivative(lambda t: 5 * t, x) == 0.0  # linear: the derivative is a constant


def test_exercise_second_derivative_at_2_is_12():
    assert ag.second_derivative(lambda t: t**3, 2.0) == 12.0


@pytest.mark.parametrize("lang, says", [
    ("en", ["micro-batches of equal size", "divide each one's loss by their number", "`len(xb) / len(X)`",
            "`BatchNorm`", "With SGD each step then goes 4 times as far"]),
    ("zh", ["大小相同的微批量，每个的损失除以微批量个数", "大小相同的微批量", "`len(xb) / len(X)`", "`BatchNorm`",
            "用 SGD 时，每一步都会走出 4 倍远"])])
def test_page_states_when_micro_batches_add_up_to_the_full_batch(lang, says):
    """The conditions the tests above check: equal sizes (or weights by share), a mean loss divided
    by the count, no BatchNorm; and the 4x learning rate holds for SGD, not Adam."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "autograd.md").read_text(encoding="utf-8")
    assert [s for s in says if s not in text] == []
