"""Chapter `losses`: the notes' empty section 6, filled in.

Cross-entropy (= log_softmax + nll_loss), BCEWithLogits vs Sigmoid + BCE, MSE / L1 /
SmoothL1 / Huber, reduction, class weights, ignore_index, label smoothing and a custom
loss module. Every hand-written version here is checked against the built-in in
tests/test_losses.py.

Run it as `python -m snippets.losses` (or `python snippets/losses.py`).
Sections marked `--8<-- [start:name]` are shown, in page order, on the pages
docs/{zh,en}/losses.md; each demo function holds one block of the page.
"""
# --8<-- [start:imports]
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

# --8<-- [end:imports]


# --8<-- [start:fmt]
def fmt(t: torch.Tensor) -> str:
    """Values rounded to 4 decimals, the same on every machine (no '-0.0000')."""
    values = [round(v, 4) + 0.0 for v in t.detach().cpu().reshape(-1).tolist()]
    text = ", ".join(f"{v:.4f}" for v in values)
    return text if t.dim() == 0 else f"[{text}]"
# --8<-- [end:fmt]


# --8<-- [start:check_class_target]
def check_class_target(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Reject input that F.cross_entropy refuses with a cryptic error."""
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}; "
                        "pass the model's raw outputs, or call logits.float()")
    if logits.dim() < 2:
        raise ValueError("logits must have shape [N, C] (or [N, C, d1, ...]), "
                         f"got {tuple(logits.shape)}; for a single sample add the "
                         "batch dimension with logits.unsqueeze(0)")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError("target must hold class indices as integers (torch.long), "
                        f"got {target.dtype}; use target.long(), or F.cross_entropy "
                        "for class-probability targets")
    n = logits.shape[0]
    expected = (n,) + tuple(logits.shape[2:])
    if tuple(target.shape) != expected:
        if tuple(target.shape) == (n, 1):
            hint = "squeeze the [N, 1] target with target.squeeze(1)"
        elif target.dim() == 0 or target.shape[0] != n:
            hint = ("logits and target hold different numbers of samples; "
                    "pass matching batches")
        else:
            hint = ("if the classes are on the last axis of the logits, "
                    "move them with logits.movedim(-1, 1)")
        raise ValueError(f"target has shape {tuple(target.shape)}, but logits of shape "
                         f"{tuple(logits.shape)} need a target of shape {expected} "
                         f"(the class dimension of logits is dim 1); {hint}")
    n_classes = logits.shape[1]
    invalid = (target < 0) | (target >= n_classes)
    if invalid.any():
        bad = target[invalid][0].item()
        raise ValueError(f"target holds class {bad}, but logits have {n_classes} "
                         f"classes, so targets must lie in [0, {n_classes - 1}]; "
                         "check the label encoding or the size of the last layer")
# --8<-- [end:check_class_target]


# --8<-- [start:cross_entropy_manual]
def per_sample_cross_entropy(logits: torch.Tensor,
                             target: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target] per sample: logsumexp(logits) - logits[target]."""
    check_class_target(logits, target)
    true_logit = logits.gather(1, target.unsqueeze(1)).squeeze(1)  # the right class
    return torch.logsumexp(logits, dim=1) - true_logit


def cross_entropy_manual(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [N, C, ...] against class indices [N, ...]."""
    return per_sample_cross_entropy(logits, target).mean()
# --8<-- [end:cross_entropy_manual]


# --8<-- [start:soft_cross_entropy_manual]
def soft_cross_entropy_manual(logits: torch.Tensor,
                              probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class probabilities, averaged over samples."""
    if probs.shape != logits.shape or not probs.is_floating_point():
        raise ValueError("probability targets need the logits' shape "
                         f"{tuple(logits.shape)} and a float dtype, got "
                         f"{tuple(probs.shape)} {probs.dtype}; for class indices "
                         "use cross_entropy_manual")
    return -(probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
# --8<-- [end:soft_cross_entropy_manual]


# --8<-- [start:weighted_cross_entropy_manual]
def weighted_cross_entropy_manual(logits: torch.Tensor, target: torch.Tensor,
                                  weight: torch.Tensor | None = None,
                                  ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy with class weights and ignored targets, as F.cross_entropy."""
    keep = target != ignore_index
    safe_target = torch.where(keep, target, 0)  # any valid class; masked out below
    losses = per_sample_cross_entropy(logits, safe_target)  # checks logits and target
    if weight is not None and tuple(weight.shape) != (logits.shape[1],):
        raise ValueError("weight needs one entry per class, shape "
                         f"({logits.shape[1]},), got {tuple(weight.shape)}")
    w = weight[safe_target] if weight is not None else torch.ones_like(losses)
    w = w * keep                         # ignored positions weigh 0
    return (w * losses).sum() / w.sum()  # divided by the targets' total weight, not N
# --8<-- [end:weighted_cross_entropy_manual]


# --8<-- [start:label_smoothing_manual]
def label_smoothing_cross_entropy_manual(logits: torch.Tensor,
                                         target: torch.Tensor,
                                         label_smoothing: float) -> torch.Tensor:
    """(1 - ε) * usual cross-entropy + ε * cross-entropy against the uniform one."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    check_class_target(logits, target)
    log_p = F.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    uniform = -log_p.mean(dim=1)  # every class gets 1/C
    return ((1 - label_smoothing) * nll + label_smoothing * uniform).mean()
# --8<-- [end:label_smoothing_manual]


# --8<-- [start:focal_loss]
class FocalLoss(nn.Module):
    """Focal loss on logits (Lin et al., 2017): -w[y] * (1 - p_y)^gamma * log p_y.

    gamma=0 is cross-entropy; gamma > 0 down-weights samples the model already gets
    right. `weight` and `reduction` behave as in nn.CrossEntropyLoss.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None,
                 reduction: str = "mean"):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}; "
                             "gamma=0 gives plain cross-entropy")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError("reduction must be 'mean', 'sum' or 'none', "
                             f"got {reduction!r}")
        if weight is not None and (weight.dim() != 1 or not weight.is_floating_point()):
            raise ValueError("weight must be a 1-D float tensor with one entry per "
                             f"class, got shape {tuple(weight.shape)} {weight.dtype}")
        self.gamma = float(gamma)
        self.reduction = reduction
        self.register_buffer("weight", weight)  # a buffer: moves with .to(device)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_class_target(logits, target)
        if self.weight is not None and self.weight.numel() != logits.shape[1]:
            raise ValueError(f"weight has {self.weight.numel()} entries but logits "
                             f"have {logits.shape[1]} classes; "
                             "pass one weight per class")
        log_p = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        # (1 - p)^gamma: -expm1(log p) is accurate near p = 1, the clamp keeps
        # the gradient finite there
        tiny = torch.finfo(log_p.dtype).tiny
        focus = (-torch.expm1(log_p)).clamp_min(tiny) ** self.gamma
        loss = -focus * log_p
        w = self.weight.to(loss.dtype)[target] if self.weight is not None else None
        if w is not None:
            loss = loss * w
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / w.sum() if w is not None else loss.mean()
# --8<-- [end:focal_loss]


# --8<-- [start:check_same_shape]
def check_same_shape(pred: torch.Tensor, target: torch.Tensor, what: str) -> None:
    """Element-wise losses must not broadcast: [N, 1] with [N] compares every pair."""
    if pred.shape != target.shape:
        raise ValueError(f"{what}: prediction shape {tuple(pred.shape)} differs from "
                         f"target shape {tuple(target.shape)}, which would broadcast; "
                         "reshape one of them (e.g. pred.squeeze(1)) so both match")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise TypeError(f"{what}: prediction and target must be floating point, "
                        f"got {pred.dtype} and {target.dtype}; call .float() on them")
# --8<-- [end:check_same_shape]


# --8<-- [start:bce_with_logits_manual]
def bce_with_logits_manual(logits: torch.Tensor,
                           target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy on logits: max(x, 0) - x*y + log(1 + exp(-|x|))."""
    check_same_shape(logits, target, "bce_with_logits_manual")
    stable_log = torch.log1p(torch.exp(-logits.abs()))
    return (logits.clamp_min(0) - logits * target + stable_log).mean()
# --8<-- [end:bce_with_logits_manual]


# --8<-- [start:regression_manual]
def mse_manual(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise squared error (like reduction='none')."""
    check_same_shape(pred, target, "mse_manual")
    return (pred - target) ** 2


def l1_manual(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise absolute error."""
    check_same_shape(pred, target, "l1_manual")
    return (pred - target).abs()


def smooth_l1_manual(pred: torch.Tensor, target: torch.Tensor,
                     beta: float = 1.0) -> torch.Tensor:
    """SmoothL1: 0.5*d²/beta below beta, d - 0.5*beta above (d = |pred - target|)."""
    check_same_shape(pred, target, "smooth_l1_manual")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    d = (pred - target).abs()
    if beta == 0:  # the quadratic part vanishes: plain L1, as in PyTorch
        return d
    return torch.where(d < beta, 0.5 * d ** 2 / beta, d - 0.5 * beta)


def huber_manual(pred: torch.Tensor, target: torch.Tensor,
                 delta: float = 1.0) -> torch.Tensor:
    """Huber: 0.5*d² below delta, delta*(d - 0.5*delta) above."""
    check_same_shape(pred, target, "huber_manual")
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    d = (pred - target).abs()
    return torch.where(d < delta, 0.5 * d ** 2, delta * (d - 0.5 * delta))
# --8<-- [end:regression_manual]


# --8<-- [start:bce_pos_weight_manual]
def bce_pos_weight_manual(logits: torch.Tensor, target: torch.Tensor,
                          pos_weight: torch.Tensor) -> torch.Tensor:
    """Element-wise -(w * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x)))."""
    check_same_shape(logits, target, "bce_pos_weight_manual")
    pos_weight = torch.as_tensor(pos_weight, dtype=logits.dtype)
    if (pos_weight < 0).any():
        raise ValueError("pos_weight must be >= 0 (e.g. n_negative / n_positive), "
                         f"got {pos_weight.tolist()}")
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)  # no log(0)
    return -(pos_weight * target * log_p + (1 - target) * log_not_p)
# --8<-- [end:bce_pos_weight_manual]


# --8<-- [start:kl_div_manual]
def kl_div_manual(log_q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of each sample: sum over dim 1 of p * (log p - log q)."""
    check_same_shape(log_q, p, "kl_div_manual")
    return (torch.xlogy(p, p) - p * log_q).sum(dim=1)  # xlogy: 0 * log 0 = 0
# --8<-- [end:kl_div_manual]


# ---------- the page's demos, in page order: each function holds one block ----------

def demo_cross_entropy() -> None:
    # --8<-- [start:demo_cross_entropy]
    torch.manual_seed(0)
    logits = torch.randn(4, 3)               # raw scores: 4 samples, 3 classes
    target = torch.tensor([0, 2, 1, 2])      # class indices, dtype torch.long
    criterion = nn.CrossEntropyLoss()        # the `criterion` of a training loop
    loss = criterion(logits, target)
    print(fmt(loss))
    print(torch.allclose(loss, F.cross_entropy(logits, target)))
    print(torch.allclose(loss, F.nll_loss(F.log_softmax(logits, dim=1), target)))
    print(torch.allclose(loss, cross_entropy_manual(logits, target)))
    # --8<-- [end:demo_cross_entropy]


def demo_stable() -> None:
    # --8<-- [start:demo_stable]
    big = torch.tensor([[1000.0, 0.0]])      # a very confident, wrong prediction
    target = torch.tensor([1])
    naive = -big.softmax(dim=1).log()[0, 1]  # softmax gives exactly 0, log(0) = -inf
    print(fmt(naive), fmt(cross_entropy_manual(big, target)),
          fmt(F.cross_entropy(big, target)))
    # --8<-- [end:demo_stable]


def demo_double_softmax() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:demo_double_softmax]
    target = torch.tensor([0, 0])
    inputs = {"logits": lambda z: z, "softmax first": lambda z: z.softmax(dim=1)}
    for name, squash in inputs.items():
        logits = torch.tensor([[4.0, 0.0, -2.0],   # right and confident
                               [-2.0, 0.0, 4.0]],  # wrong and confident
                              requires_grad=True)
        loss = F.cross_entropy(squash(logits), target, reduction="none")
        loss.sum().backward()
        size = logits.grad.norm(dim=1)
        print(f"{name:>13}: loss {fmt(loss)}, gradient size {fmt(size)}")
    perfect = torch.tensor([[1000.0, 0.0, 0.0]]).softmax(dim=1)
    print("perfect logits, softmax first:", fmt(F.cross_entropy(perfect, target[:1])))
    low, high = math.log(1 + 2 / math.e), math.log(math.e + 2)
    print("bounds for 3 classes:", f"{low:.4f}", f"{high:.4f}")
    # --8<-- [end:demo_double_softmax]
    return loss, logits.grad


def demo_soft_labels() -> None:
    # --8<-- [start:demo_soft_labels]
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    probs = torch.softmax(torch.randn(4, 3), dim=1)  # each row sums to 1
    soft = soft_cross_entropy_manual(logits, probs)
    print(torch.allclose(F.cross_entropy(logits, probs), soft))
    target = torch.tensor([0, 2, 1, 2])
    one_hot = F.one_hot(target, num_classes=3).float()
    hard = F.cross_entropy(logits, target)
    print(torch.allclose(F.cross_entropy(logits, one_hot), hard))
    # --8<-- [end:demo_soft_labels]


def demo_reduction() -> None:
    # --8<-- [start:demo_reduction]
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3), torch.randn(2, 3)
    for reduction in ("none", "sum", "mean"):
        loss = F.mse_loss(pred, target, reduction=reduction)
        print(f"{reduction:>4}: shape {tuple(loss.shape)}, {fmt(loss)}")
    per_element = F.mse_loss(pred, target, reduction="none")
    mean = per_element.sum() / per_element.numel()
    print(torch.allclose(mean, F.mse_loss(pred, target)))
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    print(tuple(F.cross_entropy(logits, labels, reduction="none").shape))  # per sample
    # --8<-- [end:demo_reduction]


def demo_weights() -> None:
    # --8<-- [start:demo_weights]
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    target = torch.tensor([0, 2, 1, 2])
    weight = torch.tensor([1.0, 2.0, 5.0])  # class 2 counts five times as much as 0
    builtin = F.cross_entropy(logits, target, weight=weight)
    per_sample = weight[target] * F.cross_entropy(logits, target, reduction="none")
    print("built-in       ", fmt(builtin))
    print("divide by w sum", fmt(per_sample.sum() / weight[target].sum()))
    print("divide by N    ", fmt(per_sample.sum() / len(target)))
    manual = weighted_cross_entropy_manual(logits, target, weight)
    print(torch.allclose(builtin, manual))
    # --8<-- [end:demo_weights]


def demo_ignore_index() -> None:
    # --8<-- [start:demo_ignore_index]
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    target = torch.tensor([0, 2, -100, 2])     # -100: padding, "no label here"
    loss = F.cross_entropy(logits, target)     # ignore_index=-100 is the default
    kept = F.cross_entropy(logits[[0, 1, 3]], target[[0, 1, 3]])
    manual = weighted_cross_entropy_manual(logits, target)
    print(fmt(loss), fmt(kept), torch.allclose(loss, manual))
    print(fmt(F.cross_entropy(logits, target, reduction="none")))  # ignored: 0
    all_ignored = torch.full((4,), -100)
    print(fmt(F.cross_entropy(logits, all_ignored)))  # mean over zero targets: 0 / 0
    # --8<-- [end:demo_ignore_index]


def demo_label_smoothing() -> None:
    # --8<-- [start:demo_label_smoothing]
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    target = torch.tensor([0, 2, 1, 2])
    eps = 0.1
    builtin = F.cross_entropy(logits, target, label_smoothing=eps)
    manual = label_smoothing_cross_entropy_manual(logits, target, eps)
    smoothed = (1 - eps) * F.one_hot(target, 3).float() + eps / 3  # the soft target
    print(fmt(builtin), fmt(manual), fmt(F.cross_entropy(logits, smoothed)))
    # --8<-- [end:demo_label_smoothing]


def demo_focal() -> None:
    # --8<-- [start:demo_focal]
    torch.manual_seed(0)
    logits = torch.randn(8, 5, requires_grad=True)
    target = torch.randint(0, 5, (8,))
    weight = torch.linspace(0.5, 1.5, 5)
    focal = FocalLoss(gamma=0.0, weight=weight)(logits, target)  # = cross-entropy
    ce = F.cross_entropy(logits, target, weight=weight)
    (grad_focal,) = torch.autograd.grad(focal, logits)
    (grad_ce,) = torch.autograd.grad(ce, logits)
    print(torch.allclose(focal, ce), torch.allclose(grad_focal, grad_ce))
    print("gamma=2:", fmt(FocalLoss(gamma=2.0, weight=weight)(logits, target)))
    small = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)  # float64 for it
    small_target = torch.tensor([0, 3, 1])
    print(torch.autograd.gradcheck(FocalLoss(gamma=2.0), (small, small_target)))
    # --8<-- [end:demo_focal]


def demo_device(pick_device) -> torch.Tensor:
    # --8<-- [start:demo_device]
    device = pick_device()                      # a GPU when present, else CPU
    g = torch.Generator().manual_seed(0)        # make the data on the CPU, then move it
    logits = torch.randn(8, 5, generator=g).to(device)
    target = torch.randint(0, 5, (8,), generator=g).to(device)
    criterion = FocalLoss(gamma=2.0, weight=torch.linspace(0.5, 1.5, 5))
    criterion = criterion.to(device)            # moves the weight too
    loss = criterion(logits, target)
    print(fmt(loss), loss.device == logits.device == criterion.weight.device)
    # --8<-- [end:demo_device]
    return loss


def demo_errors() -> None:
    # --8<-- [start:demo_errors]
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    cases = {
        "class 3 of 3": (logits, torch.tensor([0, 2, 1, 3])),
        "target [N, 1]": (logits, torch.tensor([[0], [2], [1], [2]])),
        "integer logits": (logits.round().long(), torch.tensor([0, 2, 1, 2])),
    }
    loss_fns = {"built-in": F.cross_entropy, "ours": FocalLoss(gamma=0.0)}
    raised = {}
    for case, (x, y) in cases.items():
        for who, loss_fn in loss_fns.items():
            try:
                loss_fn(x, y)
            except Exception as err:
                raised[case, who] = err
                print(f"{case} | {who} | {type(err).__name__}: {err}")
    # --8<-- [end:demo_errors]


def demo_bce() -> None:
    # --8<-- [start:demo_bce]
    torch.manual_seed(0)
    logits = torch.randn(6)                                 # one score per sample
    target = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])  # float 0/1, same shape
    with_logits = nn.BCEWithLogitsLoss()(logits, target)
    sigmoid_then_bce = nn.BCELoss()(torch.sigmoid(logits), target)
    manual = bce_with_logits_manual(logits, target)
    print(fmt(with_logits), fmt(sigmoid_then_bce), fmt(manual))
    # --8<-- [end:demo_bce]


def demo_bce_large() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    # --8<-- [start:demo_bce_large]
    target = torch.tensor([1.0, 0.0, 1.0])
    results = {}
    for name in ("BCEWithLogits", "Sigmoid+BCE"):
        logits = torch.tensor([2.0, 30.0, -200.0], requires_grad=True)  # float32
        if name == "BCEWithLogits":
            loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            probs = torch.sigmoid(logits)
            loss = F.binary_cross_entropy(probs, target, reduction="none")
        loss.sum().backward()
        results[name] = (loss.detach(), logits.grad)
        print(f"{name:>13}: loss {fmt(loss)}, grad {fmt(logits.grad)}")
    p = torch.sigmoid(torch.tensor([30.0, -200.0]))
    print("sigmoid(30) == 1:", p[0].item() == 1.0,
          "| sigmoid(-200) == 0:", p[1].item() == 0.0)
    # --8<-- [end:demo_bce_large]
    return results


def demo_regression() -> None:
    # --8<-- [start:demo_regression]
    torch.manual_seed(0)
    pred, target = torch.randn(8) * 3, torch.randn(8) * 3
    pairs = [
        (mse_manual(pred, target), F.mse_loss(pred, target)),
        (l1_manual(pred, target), F.l1_loss(pred, target)),
        (smooth_l1_manual(pred, target, beta=0.5),
         F.smooth_l1_loss(pred, target, beta=0.5)),
        (huber_manual(pred, target, delta=2.0), F.huber_loss(pred, target, delta=2.0)),
    ]
    print([torch.allclose(manual.mean(), builtin) for manual, builtin in pairs])
    for delta in (0.5, 1.0, 2.0):  # Huber(delta) == delta * SmoothL1(beta=delta)
        huber = nn.HuberLoss(delta=delta)(pred, target)
        smooth = nn.SmoothL1Loss(beta=delta)(pred, target)
        same = torch.allclose(huber, delta * smooth)
        print(delta, fmt(huber), fmt(delta * smooth), same)
    # --8<-- [end:demo_regression]


def demo_broadcast() -> None:
    # --8<-- [start:demo_broadcast]
    torch.manual_seed(0)
    pred = torch.randn(4, 1)  # a model with one output unit gives [N, 1]
    target = torch.randn(4)   # labels are often [N]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrong = F.mse_loss(pred, target)  # broadcasts to [4, 4]: compares every pair
    print(caught[0].category.__name__, str(caught[0].message)[:60] + "...")
    right = F.mse_loss(pred.squeeze(1), target)
    print(fmt(wrong), fmt(right))
    # --8<-- [end:demo_broadcast]


def demo_pos_weight() -> None:
    # --8<-- [start:demo_pos_weight]
    torch.manual_seed(0)
    logits = torch.randn(8)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # 2 of 8 positive
    pos_weight = (target == 0).sum() / (target == 1).sum()  # n_negative / n_positive
    plain = nn.BCEWithLogitsLoss()(logits, target)
    weighted = nn.BCEWithLogitsLoss(pos_weight=pos_weight)(logits, target)
    manual = bce_pos_weight_manual(logits, target, pos_weight).mean()
    print(pos_weight.item(), fmt(plain), fmt(weighted), fmt(manual))
    # --8<-- [end:demo_pos_weight]


def demo_pos_weight_per_class() -> None:
    # --8<-- [start:demo_pos_weight_per_class]
    torch.manual_seed(0)
    logits = torch.randn(4, 3)  # multi-label: 3 independent yes/no outputs
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                           [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    pos_weight = torch.tensor([1.0, 3.0, 3.0])  # one weight per label (last dim)
    builtin = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction="none")
    print(torch.allclose(builtin, bce_pos_weight_manual(logits, target, pos_weight)))
    plain = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    print(torch.equal(builtin[target == 0], plain[target == 0]))  # negatives unchanged
    # --8<-- [end:demo_pos_weight_per_class]


def demo_autocast_bce() -> None:
    # --8<-- [start:demo_autocast_bce]
    torch.manual_seed(0)
    layer = nn.Linear(4, 1)
    x = torch.randn(6, 4)
    y = torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0], [0.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)  # a matmul: runs in bfloat16
        with_logits = nn.BCEWithLogitsLoss()(logits, y)
        bce = nn.BCELoss()(torch.sigmoid(logits), y)  # the CPU allows it
    print(logits.dtype, with_logits.dtype, bce.dtype)
    # --8<-- [end:demo_autocast_bce]


def demo_autocast_bce_cuda() -> None:
    # --8<-- [start:demo_autocast_bce_cuda]
    torch.manual_seed(0)
    layer = nn.Linear(4, 1).to("cuda")
    x, y = torch.randn(6, 4, device="cuda"), torch.ones(6, 1, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        logits = layer(x)
        nn.BCEWithLogitsLoss()(logits, y)  # fine
        nn.BCELoss()(torch.sigmoid(logits), y)  # RuntimeError on CUDA
    # --8<-- [end:demo_autocast_bce_cuda]


def demo_kl_div() -> None:
    # --8<-- [start:demo_kl_div]
    torch.manual_seed(0)
    log_q = torch.log_softmax(torch.randn(4, 5), dim=1)  # the model: log-probabilities
    p = torch.softmax(torch.randn(4, 5), dim=1)  # the target: probabilities
    batchmean = nn.KLDivLoss(reduction="batchmean")(log_q, p)
    print(fmt(batchmean), fmt(kl_div_manual(log_q, p).mean()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mean = nn.KLDivLoss()(log_q, p)  # the default, reduction="mean"
    print(fmt(mean), fmt(batchmean / 5), caught[0].category.__name__)
    # --8<-- [end:demo_kl_div]


def demo_kl_log_target() -> None:
    # --8<-- [start:demo_kl_log_target]
    torch.manual_seed(0)
    log_q = torch.log_softmax(torch.randn(4, 5), dim=1)
    log_p = torch.log_softmax(torch.randn(4, 5), dim=1)  # target as log-probabilities
    kl = nn.KLDivLoss(reduction="batchmean", log_target=True)
    same = kl(log_q, log_p)
    print(fmt(same), fmt(nn.KLDivLoss(reduction="batchmean")(log_q, log_p.exp())))
    print(fmt(kl(log_q, log_q)))  # identical distributions: KL = 0
    # --8<-- [end:demo_kl_log_target]


# --8<-- [start:exercise_two_class_logits]
def two_class_logits(x: torch.Tensor) -> torch.Tensor:
    """One logit per sample -> two classes' logits [0, x]; softmax: (1 - σ(x), σ(x))."""
    return torch.stack([torch.zeros_like(x), x], dim=1)
# --8<-- [end:exercise_two_class_logits]


def exercise_two_class_logits() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:exercise_two_class_logits_check]
    torch.manual_seed(0)
    x = torch.randn(6) * 10  # one logit per sample, some of them large
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    bce = F.binary_cross_entropy_with_logits(x, y.float())
    ce = F.cross_entropy(two_class_logits(x), y)
    print(fmt(bce), fmt(ce), torch.allclose(bce, ce))
    # --8<-- [end:exercise_two_class_logits_check]
    return bce, ce


# --8<-- [start:exercise_inverse_frequency]
def inverse_frequency_weights(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """w_c = N / (C * n_c): every class then carries the same total weight, N / C."""
    counts = torch.bincount(target, minlength=num_classes).float()
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"classes {empty} have no samples in target, so no weight; "
                         "count them over the whole training set, not one batch")
    return len(target) / (num_classes * counts)
# --8<-- [end:exercise_inverse_frequency]


def exercise_inverse_frequency() -> tuple[torch.Tensor, torch.Tensor]:
    # --8<-- [start:exercise_inverse_frequency_check]
    torch.manual_seed(0)
    logits = torch.randn(10, 3)
    target = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])  # 6, 3 and 1 samples
    w = inverse_frequency_weights(target, 3)
    weighted = F.cross_entropy(logits, target, weight=w)
    per_sample = F.cross_entropy(logits, target, reduction="none")
    per_class = torch.stack([per_sample[target == c].mean() for c in range(3)])
    print(fmt(w), fmt(weighted), fmt(per_class.mean()))
    # --8<-- [end:exercise_inverse_frequency_check]
    return weighted, per_class.mean()


if __name__ == "__main__":
    from snippets.environment import pick_device as _pick_device

    for demo in (demo_cross_entropy, demo_stable, demo_double_softmax, demo_soft_labels,
                 demo_reduction, demo_weights, demo_ignore_index, demo_label_smoothing,
                 demo_focal):
        print(f"--- {demo.__name__}")
        demo()
    print("--- demo_device")
    demo_device(_pick_device)
    for demo in (demo_errors, demo_bce, demo_bce_large, demo_pos_weight,
                 demo_pos_weight_per_class, demo_autocast_bce, demo_regression,
                 demo_broadcast, demo_kl_div, demo_kl_log_target,
                 exercise_two_class_logits, exercise_inverse_frequency):
        print(f"--- {demo.__name__}")
        demo()
