"""Chapter `autograd`: requires_grad, the graph, detach, gradient accumulation, no_grad.

Run it as `python -m snippets.autograd` (or `python snippets/autograd.py`): it runs the
page's examples in order. Sections marked `--8<-- [start:name]` are shown, in this
order, on docs/{zh,en}/autograd.md.
"""
# --8<-- [start:imports]
import warnings

import torch
from torch import nn

# --8<-- [end:imports]


# --8<-- [start:edges]
def edges(node) -> list[str | None]:
    """Where a Function's edges lead: the names of the next Functions (None: none)."""
    return [type(fn).__name__ if fn else None for fn, _ in node.next_functions]
# --8<-- [end:edges]


# --8<-- [start:grads_after]
def grads_after(model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                micro_batches: int) -> list[torch.Tensor]:
    """Gradients of the MSE over (X, y), accumulated over `micro_batches` chunks."""
    if micro_batches < 1 or len(X) % micro_batches:
        raise ValueError(f"micro_batches must be >= 1 and divide the batch size "
                         f"{len(X)}, got {micro_batches}")
    model.zero_grad()
    for xb, yb in zip(X.chunk(micro_batches), y.chunk(micro_batches)):
        loss = nn.functional.mse_loss(model(xb), yb)
        (loss / micro_batches).backward()  # scaled: the sum is the full-batch mean
    return [p.grad.clone() for p in model.parameters()]
# --8<-- [end:grads_after]


def tour() -> None:
    """The page's examples in page order (the blocks that must fail are left out)."""
    # --8<-- [start:demo_requires_grad]
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)  # a leaf we want grads for
    y = (x**2).sum()  # y = x1² + x2² + x3²
    y.backward()  # dy/dx = 2x
    print(x.grad)
    print(torch.tensor([1.0, 2.0]).requires_grad)  # not tracked by default
    # --8<-- [end:demo_requires_grad]

    # --8<-- [start:demo_graph]
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b.sum()
    print(a.is_leaf, a.grad_fn)  # made by the user: a leaf, no Function
    print(b.is_leaf, type(b.grad_fn).__name__)  # made by an operation: its Function
    # --8<-- [end:demo_graph]

    # --8<-- [start:demo_edges]
    print(edges(c.grad_fn))  # SumBackward0 -> MulBackward0: towards the inputs
    print(edges(b.grad_fn))  # AccumulateGrad writes into a.grad; None: the constant 2
    # --8<-- [end:demo_edges]

    # --8<-- [start:demo_gradient_arg]
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x**2  # three outputs
    v = torch.tensor([1.0, 0.1, 0.01])  # one weight per output
    y.backward(gradient=v)  # x.grad = vᵀJ, the vector-Jacobian product
    print(x.grad)
    J = torch.autograd.functional.jacobian(lambda t: t**2, x.detach())
    print(J)  # dy_i/dx_j: 2x on the diagonal
    print(torch.allclose(v @ J, x.grad))
    # --8<-- [end:demo_gradient_arg]

    # --8<-- [start:demo_sum_is_ones]
    x.grad = None
    (x**2).sum().backward()  # the same as gradient=torch.ones(3)
    print(x.grad)
    # --8<-- [end:demo_sum_is_ones]

    # --8<-- [start:demo_non_leaf_grad]
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 3  # an intermediate result: not a leaf
    (b * b).sum().backward()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        print(a.grad, b.grad)  # b's gradient was used, then not kept
    first = str(caught[0].message).split(". ")[0]
    print(f"{caught[0].category.__name__}: {first}")
    # --8<-- [end:demo_non_leaf_grad]

    # --8<-- [start:demo_retain_grad]
    b = a * 3
    b.retain_grad()  # keep this non-leaf's gradient too
    (b * b).sum().backward()
    print(b.grad)  # d(b·b)/db = 2b
    # --8<-- [end:demo_retain_grad]

    # --8<-- [start:demo_detach]
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b.detach()  # a new tensor, cut out of the graph
    print(c.requires_grad, c.grad_fn, b.requires_grad)  # b itself is still tracked
    print(c.data_ptr() == b.data_ptr())  # ... and shares b's memory
    c[0] = 100.0  # so writing to c changes b too
    print(b)
    # --8<-- [end:demo_detach]

    # --8<-- [start:demo_accumulate]
    x = torch.tensor(1.0, requires_grad=True)
    for step in range(3):
        y = 2 * x  # a fresh graph each time
        y.backward()  # adds dy/dx = 2 to x.grad
        print(f"after backward #{step + 1}: x.grad = {x.grad.item()}")
    x.grad.zero_()  # or x.grad = None
    (2 * x).backward()
    print(f"after zeroing: x.grad = {x.grad.item()}")
    # --8<-- [end:demo_accumulate]

    # --8<-- [start:demo_zero_grad]
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.ones(2, 3)).sum().backward()
    print(model.weight.grad)
    opt.zero_grad()  # default set_to_none=True: grads become None
    print(model.weight.grad)
    model(torch.ones(2, 3)).sum().backward()
    opt.zero_grad(set_to_none=False)  # the old behaviour: tensors of zeros
    print(model.weight.grad)
    # --8<-- [end:demo_zero_grad]

    # --8<-- [start:demo_micro_batches]
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    full = grads_after(model, X, y, micro_batches=1)
    accumulated = grads_after(model, X, y, micro_batches=4)  # 4 steps of 2 samples
    print(all(torch.allclose(f, a, atol=1e-6) for f, a in zip(full, accumulated)))
    # --8<-- [end:demo_micro_batches]

    # --8<-- [start:demo_autograd_grad]
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = (w**3).sum()
    (g,) = torch.autograd.grad(loss, w)  # d loss/dw = 3w², returned
    print(g)
    print(w.grad)  # nothing was written into .grad
    # --8<-- [end:demo_autograd_grad]

    # --8<-- [start:demo_gradient_penalty]
    (plain,) = torch.autograd.grad((w**3).sum(), w)
    print(plain.requires_grad)  # a constant: a penalty on it would train nothing
    loss = (w**3).sum()
    (g,) = torch.autograd.grad(loss, w, create_graph=True)  # g = 3w², with its graph
    penalty = (g**2).sum()  # 9 * sum(w**4)
    (loss + penalty).backward()  # d/dw = 3w² + 36w³
    print(g.requires_grad, w.grad)
    # --8<-- [end:demo_gradient_penalty]

    # --8<-- [start:demo_freeze]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model[0].requires_grad_(False)  # freeze the first layer
    frozen, head = model[0].weight.clone(), model[2].weight.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(16, 4)).pow(2).mean().backward()
    opt.step()
    print(model[0].weight.grad)  # no gradient: the optimizer skips it
    print(torch.equal(model[0].weight, frozen), torch.equal(model[2].weight, head))
    print(sum(p.numel() for p in model.parameters() if p.requires_grad), "trainable")
    # --8<-- [end:demo_freeze]

    # --8<-- [start:demo_no_grad]
    model = nn.Linear(3, 1)
    x = torch.ones(1, 3)
    print(model(x).requires_grad)  # tracked: a graph is built for backward
    with torch.no_grad():  # evaluation: no graph, less memory
        print(model(x).requires_grad)
    with torch.inference_mode():  # stricter and faster, for pure inference
        print(model(x).requires_grad)
    # --8<-- [end:demo_no_grad]

    # --8<-- [start:demo_inference_input]
    w = torch.ones(3, requires_grad=True)
    with torch.inference_mode():
        t = torch.full((3,), 2.0)  # an inference tensor
    print(t.is_inference())
    (w + t).sum().backward()  # the gradient of w + t does not need t: allowed
    print(w.grad)
    # --8<-- [end:demo_inference_input]

    try:
        demo_inference_saved(w, t)
    except RuntimeError as err:  # the page shows this error
        print(f"RuntimeError: {err}")

    # --8<-- [start:demo_inference_clone]
    w.grad = None
    (w * t.clone()).sum().backward()  # a clone is an ordinary tensor
    print(w.grad)
    # --8<-- [end:demo_inference_clone]


def demo_non_scalar_backward() -> None:
    # --8<-- [start:demo_non_scalar_backward]
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x**2  # a vector: three outputs, three gradients
    y.backward()  # which combination of them?
    # --8<-- [end:demo_non_scalar_backward]


def demo_inference_saved(w: torch.Tensor, t: torch.Tensor) -> None:
    # --8<-- [start:demo_inference_saved]
    (w * t).sum().backward()  # d(w * t)/dw is t, so w * t must save t: refused
    # --8<-- [end:demo_inference_saved]


def demo_backward_twice() -> None:
    # --8<-- [start:demo_backward_twice]
    x = torch.tensor(1.0, requires_grad=True)
    y = torch.exp(x)  # exp saves its output for backward
    y.backward()
    y.backward()  # the graph's saved tensors are already freed
    # --8<-- [end:demo_backward_twice]


def exercise_stop_gradient() -> torch.Tensor:
    """Exercise 1: the gradient of x * x.detach()."""
    # --8<-- [start:exercise_stop_gradient]
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x.detach()).sum()  # the detached factor is a constant
    y.backward()
    print(x.grad)  # x, not 2x
    # --8<-- [end:exercise_stop_gradient]
    return x.grad


# --8<-- [start:exercise_second_derivative]
def second_derivative(f, x: float) -> float:
    """d²f/dx² at x: the first derivative, kept as a graph, differentiated again."""
    t = torch.tensor(x, requires_grad=True)
    (first,) = torch.autograd.grad(f(t), t, create_graph=True)
    if not first.requires_grad:  # f is linear: its derivative is a constant
        return 0.0
    (second,) = torch.autograd.grad(first, t)
    return second.item()
# --8<-- [end:exercise_second_derivative]


def exercises() -> None:
    """The exercises' solutions, in page order."""
    exercise_stop_gradient()
    # --8<-- [start:exercise_second_derivative_check]
    print(second_derivative(lambda t: t**3, 2.0))  # 6x at x = 2
    print(second_derivative(torch.sin, 1.0), -torch.sin(torch.tensor(1.0)).item())
    print(second_derivative(lambda t: 5 * t, 2.0))  # linear: 0
    # --8<-- [end:exercise_second_derivative_check]


if __name__ == "__main__":
    tour()
    exercises()
