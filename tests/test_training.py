"""Each claim of the training chapter, asserted."""
import copy
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pagekit.compare import differs_beyond_numbers, torch_release
from pagekit.project import LANGS
from pagekit.run import remembered
from snippets import training as tr

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]
needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="shows what happens without a GPU; one is present")


@pytest.fixture(scope="module")
def trained():
    """The page's run: seed 0, 8 epochs, on the CPU."""
    return tr.train_digits(seed=0, epochs=8, device=CPU)


@pytest.fixture(scope="module")
def loaders():
    return tr.digit_loaders(batch_size=64, seed=0)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


# --- the notes' own code -------------------------------------------------------------------------

@needs_no_gpu
def test_notes_E15_data_cuda_fails_without_a_gpu():
    data, label = torch.ones(2, 1, 8, 8), torch.zeros(2, dtype=torch.long)
    # CPU-only builds: AssertionError "Torch not compiled with CUDA enabled";
    # CUDA builds on a machine without a GPU: RuntimeError "Found no NVIDIA driver ..."
    with pytest.raises((AssertionError, RuntimeError), match="not compiled with CUDA|NVIDIA driver"):
        data, label = data.cuda(), label.cuda()


def test_notes_E15_tensor_to_returns_a_new_tensor_module_to_moves_in_place():
    x = torch.ones(3)
    y = x.to(torch.float64)
    assert x.dtype == torch.float32 and y.dtype == torch.float64  # x untouched: reassign
    layer = nn.Linear(2, 2)
    assert layer.to(torch.float64) is layer and layer.weight.dtype == torch.float64


def test_notes_E15_portable_form_runs_on_any_machine():
    device = tr.pick_device()
    data = torch.ones(2, 1, 8, 8).to(device)
    model = tr.DigitCNN().to(device)
    assert model(data).device.type == device.type


def test_notes_E16_zero_grad_sets_grads_to_none_not_zero():
    model = tr.DigitCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    nn.CrossEntropyLoss()(model(torch.rand(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.zero_grad()                                   # the notes: "梯度置零"
    assert all(p.grad is None for p in model.parameters())
    nn.CrossEntropyLoss()(model(torch.rand(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    opt.zero_grad(set_to_none=False)                  # zeros only when asked
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_notes_E16_step_order_trains(loaders):
    """The notes' five steps, in their order, with .to(device) for .cuda(): the loss goes down."""
    train_loader, _ = loaders
    tr.seed_everything(0)
    model, criterion = tr.DigitCNN(), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for data, label in train_loader:
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.75 * sum(losses[:5])  # one epoch: clearly lower


def test_notes_E16_no_eval_mode_leaves_dropout_on():
    """The notes never call model.eval(): predictions then change from call to call."""
    torch.manual_seed(0)
    model, x = tr.DigitCNN(), torch.rand(16, 1, 8, 8)
    assert model.training                             # a new module starts in train mode
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))    # dropout draws a new mask each call
        model.eval()
        assert torch.equal(model(x), model(x))


# --- data -------------------------------------------------------------------------------------------

def test_digit_loaders_split_shapes_and_scale(loaders):
    train_loader, val_loader = loaders
    assert (len(train_loader.dataset), len(val_loader.dataset), len(train_loader)) == (1437, 360, 23)
    data, label = next(iter(train_loader))
    assert data.shape == (64, 1, 8, 8) and data.dtype == torch.float32 and label.dtype == torch.long
    X = train_loader.dataset.tensors[0]
    assert X.min() == 0 and X.max() == 1


def test_digit_loaders_are_stratified(loaders):
    train_loader, val_loader = loaders
    val_counts = torch.bincount(val_loader.dataset.tensors[1])
    train_counts = torch.bincount(train_loader.dataset.tensors[1])
    assert val_counts.tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    share = val_counts / (val_counts + train_counts)
    assert torch.all((share - 0.2).abs() < 0.01)


def test_digit_loaders_shuffle_is_seeded():
    first = lambda seed: next(iter(tr.digit_loaders(seed=seed)[0]))[1]  # noqa: E731
    assert torch.equal(first(0), first(0))
    assert not torch.equal(first(0), first(1))


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 6.4}, "batch_size must be an integer"),
    ({"val_fraction": 0}, "val_fraction must be between 0 and 1"),
    ({"val_fraction": 20}, "val_fraction must be between 0 and 1"),
])
def test_digit_loaders_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tr.digit_loaders(**kwargs)


# --- model and modes ----------------------------------------------------------------------------------

def test_model_output_shape_and_size():
    model = tr.DigitCNN()
    assert model(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    assert sum(p.numel() for p in model.parameters()) == 38282
    assert tr.DigitCNN(num_classes=3)(torch.rand(2, 1, 8, 8)).shape == (2, 3)


def test_train_and_eval_switch_every_submodule():
    model = tr.DigitCNN()
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_dropout_and_batchnorm_in_both_modes():
    torch.manual_seed(0)
    drop, x = nn.Dropout(p=0.5), torch.ones(1000)
    y = drop(x)
    assert set(y.unique().tolist()) == {0.0, 2.0}      # 1 / (1 - p) = 2
    drop.eval()
    assert torch.equal(drop(x), x)
    bn, batch = nn.BatchNorm1d(1), torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    out = bn(batch)
    assert abs(out.mean().item()) < 1e-6
    assert torch.allclose(bn.running_mean, torch.tensor([0.25]))       # 0.9 * 0 + 0.1 * 2.5
    assert torch.allclose(bn.running_var, torch.tensor([0.9 + 0.1 * 5 / 3]))  # unbiased var 5/3
    bn.eval()
    stats = bn.running_mean.clone()
    expected = (batch - 0.25) / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(bn(batch), expected)
    assert torch.equal(bn.running_mean, stats)         # eval does not update the statistics


# --- one epoch, evaluation ------------------------------------------------------------------------------

def test_evaluate_builds_no_graph_and_changes_nothing(loaders):
    _, val_loader = loaders
    torch.manual_seed(0)
    model = tr.DigitCNN()
    before = copy.deepcopy(model.state_dict())
    outputs = []
    hook = model.register_forward_hook(lambda m, i, o: outputs.append(o))
    loss, acc = tr.evaluate(model, val_loader, nn.CrossEntropyLoss(), CPU)
    hook.remove()
    assert outputs and all(not o.requires_grad and o.grad_fn is None for o in outputs)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert 0 <= acc <= 1 and loss > 0
    assert math.isclose(loss, math.log(10), rel_tol=0.1)  # untrained: about ln(10)


def test_train_one_epoch_sets_train_mode_and_updates_weights(loaders):
    train_loader, _ = loaders
    torch.manual_seed(0)
    model = tr.DigitCNN()
    model.eval()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = tr.train_one_epoch(model, train_loader, nn.CrossEntropyLoss(), opt, CPU)
    assert model.training and loss > 0
    assert all(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --- fit: accuracy, best model, reproducibility ---------------------------------------------------------

def test_fit_reaches_95_percent_and_records_every_epoch(trained):
    _, history = trained
    assert [len(v) for v in history.values()] == [8, 8, 8, 8]
    assert max(history["val_acc"]) >= 0.95
    assert history["train_loss"][-1] < history["train_loss"][0] / 5
    assert history["seconds"] == sorted(history["seconds"])


def test_fit_ends_with_the_best_weights(trained, loaders):
    model, history = trained
    _, val_loader = loaders
    _, acc = tr.evaluate(model, val_loader, nn.CrossEntropyLoss(), CPU)
    assert acc == max(history["val_acc"])


def test_fit_restores_the_best_epoch_not_the_last(loaders, monkeypatch):
    train_loader, val_loader = loaders
    small = DataLoader(TensorDataset(*[t[:64] for t in train_loader.dataset.tensors]), batch_size=32)
    snapshots, accuracies = [], iter([0.5, 0.9, 0.7])

    def fake_evaluate(model, loader, loss_fn, device):
        snapshots.append(copy.deepcopy(model.state_dict()))
        return 1.0, next(accuracies)

    monkeypatch.setattr(tr, "evaluate", fake_evaluate)
    model = tr.DigitCNN()
    history = tr.fit(model, small, val_loader, epochs=3, lr=1e-3, device=CPU, verbose=False)
    assert history["val_acc"] == [0.5, 0.9, 0.7]
    assert all(torch.equal(v, snapshots[1][k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, snapshots[2][k]) for k, v in model.state_dict().items())


def test_state_dict_without_deepcopy_follows_training():
    """Why fit() deep-copies: state_dict() returns the live tensors, which the next step changes."""
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kept, copied = model.state_dict(), copy.deepcopy(model.state_dict())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    assert torch.equal(kept["weight"], model.weight)           # moved along with training
    assert not torch.equal(copied["weight"], model.weight)     # the copy kept the old values


def test_same_seed_same_accuracy_and_weights_other_seed_differs():
    model_a, hist_a = tr.train_digits(seed=3, epochs=2, device=CPU)
    model_b, hist_b = tr.train_digits(seed=3, epochs=2, device=CPU)
    model_c, hist_c = tr.train_digits(seed=4, epochs=2, device=CPU)
    assert hist_a["val_acc"] == hist_b["val_acc"] and hist_a["train_loss"] == hist_b["train_loss"]
    assert same_weights(model_a, model_b)
    assert not same_weights(model_a, model_c)
    assert hist_a["train_loss"] != hist_c["train_loss"]


_DEMO_FIT = "import torch\nfrom snippets.training import demo_fit\ndemo_fit(torch.device('cpu'))"


def _demo_fit_with(capability: str) -> str:
    """What the page's eight-epoch block prints with PyTorch's CPU kernels for `capability` (a fresh
    interpreter: ATEN_CPU_CAPABILITY is read once, when torch loads)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    done = remembered([sys.executable, "-c", _DEMO_FIT], cwd=ROOT, env=env, depends=[ROOT / "snippets"])
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_fits_last_digits_depend_on_the_cpus_vector_kernels_its_conclusion_does_not():
    """The page: another CPU can print other last digits with the pinned versions, as the plain kernels
    (ATEN_CPU_CAPABILITY=default) do on a CPU with AVX2 or AVX-512; hence `varies(cpu=True)` on the block."""
    own = torch.backends.cpu.get_cpu_capability()
    if own == "DEFAULT":
        pytest.skip("this CPU has only PyTorch's plain kernels: nothing to compare them with")
    plain, vector = _demo_fit_with("default"), _demo_fit_with(own.lower())
    assert plain != vector
    assert not differs_beyond_numbers(plain, vector), (plain, vector)
    for printed in (plain, vector):
        best = float(re.search(r"best epoch \d+: val acc ([\d.]+)", printed).group(1))
        assert best >= 0.95 and "the model now holds the best weights: True" in printed, printed


def test_fit_prints_one_line_per_epoch(capsys, loaders):
    train_loader, val_loader = loaders
    small = DataLoader(TensorDataset(*[t[:64] for t in train_loader.dataset.tensors]), batch_size=32)
    tr.fit(tr.DigitCNN(), small, val_loader, epochs=2, lr=1e-3, device=CPU)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch  2/2  train loss ") and "val acc 0." in lines[1]


def test_seed_everything_rejects_non_int():
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        tr.seed_everything(0.5)


# --- input a reader may pass ------------------------------------------------------------------------

@pytest.mark.parametrize("epochs, lr, match", [
    (0, 1e-3, r"epochs must be an integer >= 1, got 0"),
    (2.5, 1e-3, r"epochs must be an integer >= 1, got 2.5"),
    (True, 1e-3, r"epochs must be an integer >= 1, got True"),
    (1, 0, r"lr must be a positive number such as 1e-3, got 0"),
    (1, -0.1, r"lr must be a positive number"),
    (1, float("nan"), r"lr must be a positive number"),
    (1, "0.01", r"lr must be a positive number such as 1e-3, got '0.01'"),
])
def test_fit_rejects_bad_epochs_and_lr(loaders, epochs, lr, match):
    train_loader, val_loader = loaders
    with pytest.raises(ValueError, match=match):
        tr.fit(tr.DigitCNN(), train_loader, val_loader, epochs=epochs, lr=lr, device=CPU)


def test_fit_rejects_empty_loaders(loaders):
    train_loader, val_loader = loaders
    empty = DataLoader(TensorDataset(torch.empty(0, 1, 8, 8), torch.empty(0, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"train_loader yields no batches \(its dataset has 0 samples\)"):
        tr.fit(tr.DigitCNN(), empty, val_loader, epochs=1, lr=1e-3, device=CPU)
    few = DataLoader(TensorDataset(torch.rand(3, 1, 8, 8), torch.zeros(3, dtype=torch.long)),
                     batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match=r"val_loader yields no batches \(its dataset has 3 samples\)"):
        tr.fit(tr.DigitCNN(), train_loader, few, epochs=1, lr=1e-3, device=CPU)


def test_check_labels_rejects_labels_outside_the_classes(loaders):
    train_loader, _ = loaders
    with pytest.raises(ValueError, match=r"the labels hold 9, but the model has 5 outputs, so labels must be 0\.\.4"):
        tr.check_labels(train_loader.dataset.tensors[1], num_classes=5)
    with pytest.raises(ValueError, match=r"the labels hold -1, but the model has 10 outputs"):
        tr.check_labels([0, -1, 2, 3], num_classes=10)          # a list (ImageFolder's targets) too
    with pytest.raises(ValueError, match=r"no labels to check: the dataset is empty"):
        tr.check_labels(torch.empty(0, dtype=torch.long), num_classes=10)
    tr.check_labels(train_loader.dataset.tensors[1], num_classes=10)   # the digits pass


def test_labels_are_checked_once_before_training_not_per_batch(loaders, monkeypatch):
    """A per-batch check reads label.min()/max() back to the CPU: a device sync per step on a GPU."""
    calls = []
    monkeypatch.setattr(tr, "check_labels", lambda *args, **kwargs: calls.append(args))
    train_loader, val_loader = loaders
    model = tr.DigitCNN()
    tr.fit(model, train_loader, val_loader, epochs=1, lr=1e-3, device=CPU, verbose=False)
    tr.train_epoch_amp(model, train_loader, nn.CrossEntropyLoss(),
                       torch.optim.SGD(model.parameters(), lr=0.1), CPU)
    assert calls == []                                          # no check inside the loops
    tr.train_digits(seed=0, epochs=1, device=CPU)
    assert len(calls) == 2                                      # train_digits: once per split


def test_the_loops_read_a_number_back_once_per_epoch_not_per_batch(loaders, monkeypatch):
    """.item() waits for the device; the loops sum on the device and call it once at the end."""
    train_loader, val_loader = loaders
    model = tr.DigitCNN()
    calls = []
    real = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: calls.append(t.dtype) or real(t))

    def reads(run, loader):
        calls.clear()
        for _ in loader:        # the DataLoader draws its own seeds with .item()
            pass
        own = len(calls)
        calls.clear()
        result = run()
        return len(calls) - own, result

    loss_fn, opt = nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1)
    n, mean = reads(lambda: tr.train_one_epoch(model, train_loader, loss_fn, opt, CPU), train_loader)
    assert len(train_loader) == 23 and n == 1 and isinstance(mean, float)
    n, (loss, acc) = reads(lambda: tr.evaluate(model, val_loader, loss_fn, CPU), val_loader)
    assert n == 2 and isinstance(loss, float) and isinstance(acc, float)
    n, _ = reads(lambda: tr.train_epoch_amp(model, train_loader, loss_fn, opt, CPU,
                                            amp_dtype=torch.bfloat16, max_norm=1.0), train_loader)
    assert n == 1


def test_the_epoch_mean_on_the_device_equals_the_per_batch_sum(loaders):
    train_loader, val_loader = loaders
    model = tr.DigitCNN()
    loss_fn = nn.CrossEntropyLoss()
    loss, acc = tr.evaluate(model, val_loader, loss_fn, CPU)
    model.eval()
    with torch.no_grad():
        by_hand = [(loss_fn(model(x), y).item() * len(y), (model(x).argmax(1) == y).sum().item())
                   for x, y in val_loader]
    n = len(val_loader.dataset)
    assert loss == pytest.approx(sum(t for t, _ in by_hand) / n, rel=1e-6)
    assert acc == sum(c for _, c in by_hand) / n


def test_without_the_argument_checks_fit_fails_obscurely(loaders, monkeypatch):
    train_loader, val_loader = loaders
    monkeypatch.setattr(tr, "check_fit_args", lambda *args: None)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        tr.fit(tr.DigitCNN(), train_loader, val_loader, epochs=0, lr=1e-3, device=CPU)
    empty = DataLoader(TensorDataset(torch.empty(0, 1, 8, 8), torch.empty(0, dtype=torch.long)))
    with pytest.raises(ZeroDivisionError):
        tr.fit(tr.DigitCNN(), empty, val_loader, epochs=1, lr=1e-3, device=CPU)


def test_summing_loss_tensors_keeps_the_graph_item_does_not():
    model = nn.Linear(3, 1)
    loss = model(torch.ones(2, 3)).pow(2).mean()
    assert (0.0 + loss).grad_fn is not None          # holds the step's graph alive
    assert isinstance(0.0 + loss.item(), float)


def test_without_the_label_check_cross_entropy_fails_obscurely():
    with pytest.raises(IndexError, match="Target 9 is out of bounds"):
        nn.CrossEntropyLoss()(torch.rand(2, 5), torch.tensor([1, 9]))


# --- the picture -------------------------------------------------------------------------------------

def test_plot_history_writes_a_png(trained, tmp_path):
    _, history = trained
    path = tr.plot_history(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="history has no epochs to draw"):
        tr.plot_history({"val_acc": []}, tmp_path / "none.png")


def test_save_figures_names_its_picture(trained, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tr, "train_digits", lambda **kw: calls.append(kw) or trained)
    paths = tr.save_figures(tmp_path)
    assert [p.name for p in paths] == ["training-curves.png"] and paths[0].exists()
    assert calls[0]["device"] == CPU                  # the picture does not depend on the machine


def test_the_page_picture_is_generated_in_each_language():
    """`make figures`: training-curves.<lang>.png, each page links its own language's picture."""
    pictures = {lang: ROOT / "docs" / "assets" / "img" / f"training-curves.{lang}.png" for lang in LANGS}
    for lang, picture in pictures.items():
        assert picture.exists(), "run `make figures` (python -m tools.figures training)"
        page = (ROOT / "docs" / lang / "training.md").read_text("utf-8")
        assert f"](../assets/img/training-curves.{lang}.png)" in page
        assert "training-curves.png" not in page
    assert pictures["zh"].read_bytes() != pictures["en"].read_bytes()  # the words differ
    assert not (ROOT / "docs" / "assets" / "img" / "training-curves.png").exists()


def test_the_chinese_curves_have_chinese_words(tmp_path):
    """tools/figures.py: every word plot_history draws has a Chinese label, in a CJK font."""
    from tools import figures

    if not figures.CJK_FONT.is_file():
        pytest.skip(f"{figures.CJK_FONT} missing (make browser-deps installs fonts-wqy-microhei)")
    history = {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "val_acc": [0.5, 0.96]}
    with figures.every_language() as variants:
        path = tr.plot_history(history, tmp_path / "curves.png")
        pngs = variants(path)
    assert set(pngs) == {"zh", "en"} and pngs["en"] == path.read_bytes() and pngs["zh"] != pngs["en"]
    fig, ax = figures.matplotlib.pyplot.subplots()
    ax.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    shown = figures.translate(fig, "zh")
    assert {"轮", "准确率", "验证准确率"} <= set(shown)
    assert [t for t in shown if figures._LETTERS.search(t)] == []
    ax.set_title("learning rate")
    with pytest.raises(ValueError, match="no zh words for the figure text 'learning rate'"):
        figures.translate(fig, "zh")
    figures.matplotlib.pyplot.close(fig)


# --- learning-rate scheduler ---------------------------------------------------------------------

def tiny_loaders(n=64):
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    return (DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True, generator=g),
            DataLoader(TensorDataset(X, y), batch_size=64))


def test_step_lr_follows_its_schedule_and_writes_it_into_the_optimizer(capsys):
    scheduler = tr.demo_scheduler()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["[0.1, 0.1, 0.05, 0.05, 0.025]", "0.025 5"]
    assert scheduler.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert scheduler.state_dict()["last_epoch"] == 5


def test_fit_scheduled_lr_follows_the_cosine_schedule_once_per_epoch():
    train, val = tiny_loaders()
    history = tr.fit_scheduled(tr.DigitCNN(), train, val, epochs=4, lr=0.01, device=CPU)
    expected = [0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert history["lr"] == pytest.approx(expected)
    assert len(history["train_loss"]) == len(history["val_acc"]) == 4


def test_scheduler_step_before_optimizer_step_is_warned_about():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    with pytest.warns(UserWarning, match=r"lr_scheduler\.step\(\)` before `optimizer\.step\(\)"):
        scheduler.step()


def test_scheduler_state_resumes_the_schedule_and_is_needed(capsys):
    scheduler = tr.demo_scheduler()
    tr.demo_scheduler_state(scheduler)
    assert capsys.readouterr().out.splitlines()[-1] == "5 [0.025] 0.025"
    # a fresh scheduler without the saved state starts its schedule again
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    fresh = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    assert fresh.last_epoch == 0 and fresh.get_last_lr() == [0.1]


# --- gradient clipping ----------------------------------------------------------------------------

def grads_of(seed: int, scale: float) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.Linear(4, 3)
    (layer(torch.randn(8, 4)) * scale).pow(2).mean().backward()
    return layer


def total_norm(model: nn.Module) -> float:
    return torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 5.0])
def test_clip_returns_the_norm_before_and_leaves_at_most_max_norm(max_norm):
    layer = grads_of(0, 10.0)
    before, direction = total_norm(layer), layer.weight.grad / layer.weight.grad.norm()
    returned = tr.clip_gradients(layer, max_norm)
    assert float(returned) == pytest.approx(before) and before > max_norm
    assert total_norm(layer) <= max_norm * (1 + 1e-5)
    assert total_norm(layer) == pytest.approx(max_norm, rel=1e-4)
    assert torch.allclose(layer.weight.grad / layer.weight.grad.norm(), direction)  # same direction


def test_clip_leaves_small_gradients_unchanged():
    layer = grads_of(1, 0.01)
    grad = layer.weight.grad.clone()
    assert tr.clip_gradients(layer, 100.0) < 100.0
    assert torch.equal(layer.weight.grad, grad)


def test_clip_demo_numbers(capsys):
    tr.demo_clip()
    assert capsys.readouterr().out.strip() == "74.9828 74.9828 1.0000"


def test_raw_clip_grad_norm_flips_the_sign_for_a_negative_max_norm_and_zeroes_for_zero():
    layer = grads_of(0, 1.0)
    grad = layer.weight.grad.clone()
    nn.utils.clip_grad_norm_(layer.parameters(), -1.0)      # no error, no warning
    assert (torch.sign(layer.weight.grad) == -torch.sign(grad))[grad != 0].all()
    layer = grads_of(0, 1.0)
    nn.utils.clip_grad_norm_(layer.parameters(), 0.0)
    assert all(torch.count_nonzero(p.grad) == 0 for p in layer.parameters())


@pytest.mark.parametrize("bad", [-1.0, 0, float("nan"), float("inf"), "1.0", True, None])
def test_clip_gradients_rejects_a_bad_max_norm(bad):
    layer = grads_of(0, 1.0)
    with pytest.raises(ValueError, match=r"max_norm must be a positive number such as 1\.0, got .*"
                                         r"flip the gradients' sign for a negative one"):
        tr.clip_gradients(layer, bad)


def test_fit_scheduled_rejects_a_negative_max_norm_before_training():
    train, val = tiny_loaders()
    model = tr.DigitCNN()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="max_norm must be a positive number such as 1.0, got -2"):
        tr.fit_scheduled(model, train, val, epochs=1, lr=1e-3, device=CPU, max_norm=-2)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --- mixed precision --------------------------------------------------------------------------------

def test_cpu_autocast_bf16_activations_float32_loss_and_parameters(loaders, capsys):
    tr.demo_autocast(loaders[0])
    assert capsys.readouterr().out.splitlines() == ["torch.bfloat16 torch.bfloat16 torch.float32",
                                                    "torch.float32 torch.float32"]


def test_float16_underflows_small_gradients_bfloat16_does_not():
    tiny = torch.tensor(1e-8)
    assert tiny.half().item() == 0.0                     # why float16 needs a GradScaler
    assert tiny.bfloat16().item() != 0.0                 # bfloat16 has float32's range
    assert torch.finfo(torch.bfloat16).max > 1e38 > torch.finfo(torch.float16).max


def test_train_epoch_amp_clips_every_step(monkeypatch):
    train, _ = tiny_loaders()
    norms = []
    real = tr.clip_gradients
    monkeypatch.setattr(tr, "clip_gradients", lambda m, n: norms.append(real(m, n)) or norms[-1])
    model = tr.DigitCNN()
    tr.train_epoch_amp(model, train, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                       CPU, amp_dtype=torch.bfloat16, max_norm=0.5)
    assert len(norms) == len(train) == 2


_FIT_SCHEDULED = ("import contextlib, io, json\nfrom snippets.training import demo_fit_scheduled\n"
                  "with contextlib.redirect_stdout(io.StringIO()):\n    history = demo_fit_scheduled()\n"
                  "print(json.dumps(history))")


@pytest.mark.slow
def test_bf16_scheduled_clipped_training_reaches_95_percent():
    """Eight epochs in a fresh interpreter (7 s), remembered until a snippet, torch or the engine changes."""
    done = remembered([sys.executable, "-c", _FIT_SCHEDULED], cwd=ROOT, depends=[ROOT / "snippets"])
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads(done.stdout.strip().splitlines()[-1])
    assert max(history["val_acc"]) >= 0.95
    assert history["lr"] == pytest.approx([3e-3 * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(8)])


# --- torch.compile ---------------------------------------------------------------------------------

def test_a_cpp_compiler_is_installed_for_inductor():
    import shutil
    assert any(shutil.which(cc) for cc in ("g++", "c++", "clang++")), "torch.compile on CPU needs a C++ compiler"


def test_compile_wrapper_shares_parameters_and_prefixes_state_dict_keys():
    model = tr.DigitCNN()
    compiled = torch.compile(model)              # lazy: nothing is compiled until the first call
    assert type(compiled).__name__ == "OptimizedModule" and compiled._orig_mod is model
    keys = list(compiled.state_dict())
    assert keys == ["_orig_mod." + k for k in model.state_dict()]
    assert all(p is q for p, q in zip(compiled.parameters(), model.parameters()))


def test_compiled_model_saved_from_the_original_module_compile_in_place_or_stripping(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo writes digits.pt
    model, compiled = tr.demo_compile_wrap()
    tr.demo_compile_save(model, compiled)
    out = capsys.readouterr().out.splitlines()[-4:]
    assert out == ["<All keys matched successfully>", "DigitCNN features.0.weight",
                   "8 _orig_mod.features.0.weight", "<All keys matched successfully>"]
    with pytest.raises(RuntimeError, match="Missing key"):
        tr.DigitCNN().load_state_dict(compiled.state_dict())
    restored = tr.DigitCNN()
    restored.load_state_dict(tr.strip_compile_prefix(compiled.state_dict()))
    assert same_weights(restored, model)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pages_teach_no_private_orig_mod_for_saving(lang):
    """_orig_mod is private: the pages save the module that was compiled, or use model.compile()."""
    for page in ("training.md", "saving.md"):
        text = (ROOT / "docs" / lang / page).read_text(encoding="utf-8")
        assert "_orig_mod.state_dict()" not in text, page
    code = Path(tr.__file__).read_text(encoding="utf-8")
    assert "_orig_mod" not in code.split("def demo_compile_wrap")[1].split("def demo_compile_run")[0]
    assert "model.compile()" in (ROOT / "docs" / lang / "training.md").read_text(encoding="utf-8")


def test_strip_compile_prefix_rejects_a_non_dict_and_leaves_plain_keys():
    with pytest.raises(TypeError, match="state must be a state_dict \\(a dict\\), got DigitCNN"):
        tr.strip_compile_prefix(tr.DigitCNN())
    plain = tr.DigitCNN().state_dict()
    assert list(tr.strip_compile_prefix(plain)) == list(plain)


@pytest.mark.slow
def test_compiled_model_matches_eager(capsys):
    model, compiled = tr.demo_compile_wrap()
    tr.demo_compile_run(model, compiled)
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("first call: ") and out[-1] == "True"
    # gradients through the compiled model (eval mode: no dropout randomness) match too
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    nn.CrossEntropyLoss()(compiled(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    nn.CrossEntropyLoss()(model(x), y).backward()
    assert all(torch.allclose(g, p.grad, rtol=1e-4, atol=1e-6) for g, p in zip(grads, model.parameters()))


def test_the_compile_table_is_generated_by_the_bench_command_in_each_language():
    from tools import bench_training

    data = bench_training.load_compile_data()
    assert [r["mode"] for r in data["rows"]] == ["eager", "torch.compile"]
    modes = {"zh": ("| 普通执行 |", "| `torch.compile` |"), "en": ("| eager |", "| torch.compile |")}
    for lang in LANGS:
        table = (ROOT / "generated" / f"training-compile.{lang}.md").read_text(encoding="utf-8")
        assert table == bench_training.render_compile_table(data, lang), \
            "rerun `python -m tools.bench_training --compile-table --render`"
        assert all(mode in table for mode in modes[lang])
        assert "`python -m tools.bench_training --compile-table`" in table
        page = (ROOT / "docs" / lang / "training.md").read_text("utf-8")
        assert f'--8<-- "generated/training-compile.{lang}.md"' in page
    assert not (ROOT / "generated" / "training-compile.md").exists()



def test_compile_table_renders_both_modes_and_names_its_command(monkeypatch):
    from tools import bench_training
    times = iter([(0.008, 0.002), (10.0, 0.004)])
    monkeypatch.setattr(bench_training, "time_steps", lambda model, steps: next(times))
    monkeypatch.setattr(torch, "compile", lambda model: model)  # no compiling in this test
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unchanged")
    data = bench_training.measure_compile()
    assert [r["speed"] for r in data["rows"]] == [1.0, 0.5]
    table = bench_training.render_compile_table(data, "en")
    assert "| eager | 8.0 ms | 2.0 ms | 1.00× |" in table
    assert "| torch.compile | 10.0 s | 4.0 ms | 0.50× |" in table
    assert table.rstrip().endswith("`python -m tools.bench_training --compile-table`</small>")
    zh = bench_training.render_compile_table(data, "zh")
    assert "| 普通执行 | 8.0 ms | 2.0 ms | 1.00× |" in zh and "| `torch.compile` | 10.0 s | 4.0 ms | 0.50× |" in zh
    with pytest.raises(ValueError, match="lang must be one of"):
        bench_training.render_compile_table(data, "fr")


def test_compile_table_command_writes_the_measurement_and_both_tables(monkeypatch, tmp_path, capsys):
    from tools import bench_training
    data = {"machine": {"cpu": "CPU", "cores": 4, "torch": "2.0", "threads": 4, "python": "3.11.0",
                        "date": "2026-01-01"},
            "command": bench_training.COMPILE_COMMAND,
            "rows": [{"mode": "eager", "first": 0.01, "steady": 0.002, "speed": 1.0},
                     {"mode": "torch.compile", "first": 9.0, "steady": 0.001, "speed": 2.0}]}
    monkeypatch.setattr(bench_training, "measure_compile", lambda: data)
    assert bench_training.main(["--compile-table", "-o", str(tmp_path)]) == 0
    names = ["training-compile.en.md", "training-compile.json", "training-compile.zh.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert bench_training.load_compile_data(tmp_path) == data
    (tmp_path / "training-compile.zh.md").unlink()
    monkeypatch.setattr(bench_training, "measure_compile", lambda: pytest.fail("--render measured"))
    assert bench_training.main(["--compile-table", "--render", "-o", str(tmp_path)]) == 0
    zh = (tmp_path / "training-compile.zh.md").read_text(encoding="utf-8")
    assert zh == bench_training.render_compile_table(data, "zh") and "| 普通执行 | 10.0 ms |" in zh
    assert "| torch.compile | 9.0 s | 1.0 ms | 2.00× |" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_command_reports_95_percent_on_the_cpu(capsys):
    from tools import bench_training
    assert bench_training.main(["--device", "cpu"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("seed 0: 8 epochs in ") and "first >= 95 % at epoch" in line

# --- GPU --------------------------------------------------------------------------------------------

@pytest.mark.cuda
def test_training_on_cuda_reaches_95_percent():
    device = torch.device("cuda")
    model, history = tr.train_digits(seed=0, epochs=8, device=device)
    assert next(model.parameters()).device.type == "cuda"
    assert max(history["val_acc"]) >= 0.95


@pytest.mark.cuda
def test_cuda_tensor_to_is_not_in_place_module_is():
    t = torch.ones(2)
    t.cuda()
    assert t.device.type == "cpu"                     # result thrown away
    t = t.to("cuda")
    assert t.device.type == "cuda"
    layer = nn.Linear(2, 2)
    layer.cuda()
    assert layer.weight.device.type == "cuda"         # modules move in place


@pytest.mark.cuda
def test_cuda_forgetting_to_assign_to_fails_in_the_forward_pass():
    model = tr.DigitCNN().to("cuda")
    data = torch.rand(2, 1, 8, 8)
    data.to("cuda")                                   # not assigned: data stays on the CPU
    with pytest.raises(RuntimeError, match="same device|should be the same"):
        model(data)


@pytest.mark.cuda
def test_cuda_label_out_of_range_is_a_device_side_assert_that_breaks_the_context():
    code = (
        "import torch\n"
        "try:\n"
        "    torch.nn.functional.cross_entropy(torch.rand(2, 5, device='cuda'), torch.tensor([1, 9], device='cuda'))\n"
        "    torch.cuda.synchronize()\n"
        "except RuntimeError as err:\n"
        "    print('first:', err)\n"
        "try:\n"
        "    (torch.ones(1, device='cuda') + 1).item()\n"
        "except RuntimeError as err:\n"
        "    print('after:', err)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "first:" in result.stdout and "device-side assert" in result.stdout
    assert "after:" in result.stdout.split("first:", 1)[1]  # the context stays broken


def test_notes_E16_zero_grad_to_none_or_to_zero_trains_the_same():
    """zero_grad() sets the gradients to None (PyTorch 2.0+), not to zero: in the notes' loop
    the next backward() writes fresh gradients either way, so training is bit-identical."""
    x, y = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 10

    def run(set_to_none: bool) -> nn.Module:
        torch.manual_seed(0)
        model = tr.DigitCNN()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for xb, yb in zip(x.split(8), y.split(8)):
            optimizer.zero_grad(set_to_none=set_to_none)
            loss = nn.CrossEntropyLoss()(model(xb), yb)
            loss.backward()
            optimizer.step()
        return model

    assert same_weights(run(True), run(False))


@pytest.mark.cuda
def test_fp16_with_grad_scaler_reaches_95_percent_on_cuda(capsys):
    history = tr.demo_fp16_cuda()
    assert max(history["val_acc"]) >= 0.95
    assert capsys.readouterr().out.startswith("best val acc ")


@pytest.mark.cuda
def test_cuda_autocast_fp16_activations_float32_loss():
    model = tr.DigitCNN().cuda()
    data, label = torch.rand(8, 1, 8, 8, device="cuda"), torch.randint(0, 10, (8,), device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        output = model(data)
        loss = nn.CrossEntropyLoss()(output, label)
    loss.backward()
    assert output.dtype == torch.float16 and loss.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())


@pytest.mark.cuda
def test_grad_scaler_skips_a_step_with_inf_gradients():
    weight = nn.Parameter(torch.ones(2, device="cuda"))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    scale = scaler.get_scale()
    loss = (weight * torch.tensor([float("inf"), 1.0], device="cuda")).sum()
    scaler.scale(loss).backward()  # a gradient of inf
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(weight.detach(), torch.ones(2, device="cuda"))  # step skipped
    assert scaler.get_scale() < scale                                # and the scale lowered


# --- bfloat16 on a GPU: native, or only emulated -------------------------------------------

def test_is_bf16_supported_counts_emulation_unless_told_not_to(monkeypatch):
    """The page asks is_bf16_supported(including_emulation=False): by default a GPU that can
    only emulate bfloat16 (compute capability below 8, e.g. a V100 or T4) answers True too."""
    import inspect
    assert inspect.signature(torch.cuda.is_bf16_supported).parameters["including_emulation"].default is True
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: type("P", (), {"major": 7})())
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda d: True)  # a bf16 tensor can be made
    assert torch.cuda.is_bf16_supported() is True
    assert torch.cuda.is_bf16_supported(including_emulation=False) is False


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_asks_for_native_bf16(lang):
    text = (ROOT / "docs" / lang / "training.md").read_text(encoding="utf-8")
    assert "is_bf16_supported(including_emulation=False)" in text
    assert "is_bf16_supported()" not in text


@pytest.mark.parametrize("lang, nothing", [("en", "changes nothing"), ("zh", "没有任何")])
def test_notes_E16_training_page_and_errata_agree_that_set_to_none_changes_nothing(lang, nothing):
    """The notes' zero_grad step is right (errata E16: an omission); the chapter must not call it wrong."""
    page = (ROOT / "docs" / lang / "training.md").read_text(encoding="utf-8")
    errata = (ROOT / "docs" / lang / "errata.md").read_text(encoding="utf-8")
    e16 = next(line for line in errata.splitlines() if line.startswith("| E16 |"))
    warning = page.split("\n## ")[0]
    zero_grad_line = next(line for line in warning.splitlines() if "zero_grad()" in line and "set_to_none" in line)
    assert nothing in e16 and nothing in zero_grad_line
    assert "What needs correcting is" not in page and "需要更正的是" not in page


# --- seed_everything leaves cuDNN's speed settings alone unless asked -----------------------------

def test_seed_everything_sets_cudnn_determinism_only_when_asked(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    tr.seed_everything(0)
    assert torch.backends.cudnn.deterministic is False and torch.backends.cudnn.benchmark is True
    tr.seed_everything(0, deterministic_cudnn=True)
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    a = torch.rand(3)
    tr.seed_everything(0)
    assert torch.equal(a, torch.rand(3))  # the seeding is the same either way


# --- the page reads once: each thing explained in one place -------------------------------------

def page_text(lang: str) -> str:
    return (ROOT / "docs" / lang / "training.md").read_text(encoding="utf-8")


def page_section(lang: str, number: int) -> str:
    """The page's `number`-th section (0: the introduction and the warning box)."""
    return page_text(lang).split("\n## ")[number]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pick_device_is_used_here_and_folded_its_chapter_explains_it(lang):
    """The environment chapter defines pick_device; this page runs it (one program) but folds it."""
    lines = page_text(lang).splitlines()
    include = '--8<-- "snippets/environment.py:pick_device"'
    at = [i for i, line in enumerate(lines) if line.strip() == include]
    assert len(at) == 1 and lines[at[0]].startswith("    ")               # inside a box ...
    box = next(line for line in reversed(lines[:at[0]]) if not line.startswith("    ") and line.strip())
    assert box.startswith("??? ")                                           # ... that starts folded
    assert "environment.md#" in page_text(lang) and "pick_device()" in page_text(lang)
    assert "device = pick_device()" in (ROOT / "snippets" / "training.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("lang, step", [("en", "backpropagate"), ("zh", "反向传播")])
def test_the_five_steps_are_explained_once_in_their_section(lang, step):
    intro = page_section(lang, 0)
    assert step not in intro                                   # the box links, the section explains
    assert sum("set_to_none" in line for line in intro.splitlines()) == 1
    assert page_text(lang).count("1. `optimizer.zero_grad()`") == 1


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_step_list_names_the_loss_as_the_code_does(lang):
    assert "loss = loss_fn(output, label)" in page_text(lang) and "criterion" not in page_text(lang)
    assert "loss = loss_fn(output, label)" in (ROOT / "snippets" / "training.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_speed_section_quotes_the_committed_measurement(lang):
    import json
    data = json.loads((ROOT / "generated" / "training-compile.json").read_text(encoding="utf-8"))
    eager = next(row for row in data["rows"] if row["mode"] == "eager")
    speed = next(s for s in page_text(lang).split("\n## ") if s.startswith(("Speed", "速度")))
    assert f"{eager['steady'] * 1000:.1f} ms" in speed and "23" in speed
    assert f"{eager['steady'] * 1000:.1f} ms" in (ROOT / "generated" / f"training-compile.{lang}.md").read_text(
        encoding="utf-8")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_labels_are_checked_before_fit_on_the_page(lang):
    """check_labels is shown where training starts, not in the loop's section."""
    text = page_text(lang)
    loop = text.index('--8<-- "snippets/training.py:train_one_epoch"')
    check = text.index('--8<-- "snippets/training.py:check_labels"')
    fit = text.index('--8<-- "snippets/training.py:demo_fit"')
    assert loop < check < fit


# --- exercises -------------------------------------------------------------------------------------
def test_exercise_confusion_matrix_counts_every_image_and_its_diagonal_is_the_accuracy(trained, loaders):
    model, history = trained
    _, val_loader = loaders
    cm = tr.confusion_matrix(model, val_loader, CPU)
    labels = val_loader.dataset.tensors[1]
    assert cm.shape == (10, 10) and cm.dtype == torch.int64
    assert cm.sum(dim=1).tolist() == torch.bincount(labels, minlength=10).tolist()  # rows: true digits
    _, acc = tr.evaluate(model, val_loader, nn.CrossEntropyLoss(), CPU)
    assert cm.diag().sum().item() / cm.sum().item() == acc == max(history["val_acc"])
    with torch.no_grad():
        pred = model(val_loader.dataset.tensors[0]).argmax(dim=1)
    assert cm[8, 1].item() == ((labels == 8) & (pred == 1)).sum().item() == 2  # as the page says


def test_exercise_confusion_matrix_of_a_perfect_and_a_constant_model():
    data = torch.zeros(6, 3)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    loader = DataLoader(TensorDataset(data, labels), batch_size=4)

    class Says(nn.Module):
        def __init__(self, answers):
            super().__init__()
            self.answers = answers

        def forward(self, x):
            return nn.functional.one_hot(self.answers[: len(x)], 3).float()

    perfect = tr.confusion_matrix(Says(torch.tensor([0, 1, 2, 2])), [(data[:4], labels[:4])], CPU, 3)
    assert torch.equal(perfect, torch.diag(torch.tensor([1, 1, 2])))
    always_0 = tr.confusion_matrix(Says(torch.zeros(6, dtype=torch.long)), loader, CPU, 3)
    assert torch.equal(always_0[:, 0], torch.tensor([2, 2, 2])) and always_0[:, 1:].sum() == 0


def test_exercise_warmup_rises_linearly_then_follows_the_cosine():
    lrs = tr.exercise_warmup()
    base, warmup, total = 0.1, 3, 10
    expected = [base * (e + 1) / warmup if e < warmup
                else base * 0.5 * (1 + math.cos(math.pi * (e - warmup) / (total - warmup))) for e in range(total)]
    assert lrs == pytest.approx(expected)
    assert lrs[:3] == pytest.approx([base / 3, 2 * base / 3, base]) and max(lrs) == pytest.approx(base)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


@pytest.mark.parametrize("warmup, total", [(0, 10), (10, 10), (12, 10)])
def test_exercise_warmup_refuses_a_warmup_outside_the_run(warmup, total):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="need 0 < warmup < total"):
        tr.warmup_cosine(optimizer, warmup, total)


# --- one program for every accelerator (issue 24, item 1) ----------------------------------------

def test_as_device_accepts_names_and_devices_and_rejects_the_rest():
    assert tr.as_device("cpu") == CPU and tr.as_device(CPU) is not None
    assert tr.as_device("cuda:1") == torch.device("cuda", 1)  # a name is not checked against the machine
    with pytest.raises(TypeError, match="device must be a torch.device or a name such as 'cuda', got int"):
        tr.as_device(0)
    with pytest.raises(ValueError, match="'gpu' is not a device name; use what pick_device"):
        tr.as_device("gpu")


def test_wait_for_asks_torch_accelerator_and_never_waits_for_the_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.accelerator, "synchronize", lambda device=None: calls.append(device))
    tr.wait_for("cpu")
    tr.wait_for(CPU)
    assert calls == []                                        # the CPU has no queue
    tr.wait_for("cuda:0")
    tr.wait_for(torch.device("xpu"))
    assert calls == [torch.device("cuda", 0), torch.device("xpu")]  # whatever the accelerator


def test_memory_in_use_asks_torch_accelerator_and_none_on_the_cpu(monkeypatch):
    assert tr.memory_in_use("cpu") is None
    monkeypatch.setattr(torch.accelerator, "memory_allocated", lambda device=None: 123, raising=False)
    assert tr.memory_in_use("cuda") == tr.memory_in_use("mps") == 123


def test_memory_in_use_falls_back_to_the_backend_on_an_older_torch(monkeypatch):
    monkeypatch.delattr(torch.accelerator, "memory_allocated", raising=False)  # as on torch 2.6
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 7)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 9)
    assert tr.memory_in_use("cuda:0") == 7 and tr.memory_in_use("mps") == 9


def test_the_accelerator_functions_the_page_names_exist_from_the_releases_it_names():
    """synchronize since 2.6; the memory queries in the releases after it (2.9 has them)."""
    assert callable(torch.accelerator.synchronize)
    if torch_release() >= (2, 9):
        for name in ("memory_allocated", "max_memory_allocated", "reset_peak_memory_stats"):
            assert callable(getattr(torch.accelerator, name)), name


def test_demo_device_agnostic_prints_the_device_and_no_count_on_the_cpu(capsys):
    assert tr.demo_device_agnostic(CPU) is None
    assert capsys.readouterr().out == "cpu (not counted)\n"


def test_autocast_takes_its_device_type_from_the_device(monkeypatch):
    """train_epoch_amp and the page's autocast demo name no device type: they read device.type."""
    import inspect
    import re
    for fn in (tr.train_epoch_amp, tr.demo_autocast):
        source = inspect.getsource(fn)
        assert "torch.autocast(" in source and not re.search(r"torch\.autocast\(\s*['\"]", source), fn.__name__
    seen = []
    real = torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda device_type, **kw: seen.append(device_type) or real(device_type, **kw))
    train, _ = tiny_loaders()
    model = tr.DigitCNN()
    tr.train_epoch_amp(model, train, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                       CPU, amp_dtype=torch.bfloat16)
    assert seen and set(seen) == {"cpu"}


@pytest.mark.cuda
def test_device_agnostic_demo_on_cuda_counts_the_tensor(capsys):
    used = tr.demo_device_agnostic(torch.device("cuda"))
    assert used >= 4 * 2**20
    assert capsys.readouterr().out.startswith("cuda ")


# --- TF32 and float16 vs bfloat16 (issue 24, item 3) ----------------------------------------------

needs_fp32_precision = pytest.mark.skipif(
    not hasattr(torch.backends.cuda.matmul, "fp32_precision"),
    reason="this torch predates the fp32_precision settings (2.9 has them)")


def run_fresh(code: str, fails_with: str | None = None) -> subprocess.CompletedProcess:
    """`code` in a new interpreter: the TF32 switches are process-wide, so each check starts clean (remembered
    until a snippet, torch or the engine changes, when it exits 0 or fails with `fails_with`)."""
    return remembered([sys.executable, "-c", "import torch\n" + code], cwd=ROOT, depends=[ROOT / "snippets"],
                      keep=lambda done: done.returncode == 0 if fails_with is None else fails_with in done.stderr)


@needs_fp32_precision
def test_tf32_defaults_matmul_off_cudnn_convolutions_on(capsys):
    done = run_fresh("print(torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,"
                     " torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.fp32_precision,"
                     " torch.backends.cudnn.conv.fp32_precision)")
    assert done.stdout.split() == ["highest", "False", "True", "none", "tf32"], done.stderr


@needs_fp32_precision
def test_the_tf32_demos_print_the_defaults_then_high(capsys):
    done = run_fresh("from snippets import training as tr\ntr.demo_tf32_defaults()\ntr.demo_tf32_on()\n"
                     "print(torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32)")
    assert done.stdout.splitlines() == ["highest False True", "none tf32", "high True", "highest False"], done.stderr


@needs_fp32_precision
def test_high_precision_allows_tf32_for_matmuls_only():
    done = run_fresh('torch.set_float32_matmul_precision("high")\n'
                     "print(torch.backends.cuda.matmul.allow_tf32, torch.backends.cuda.matmul.fp32_precision,"
                     " torch.backends.cudnn.allow_tf32)")
    assert done.stdout.split() == ["True", "tf32", "True"], done.stderr


@needs_fp32_precision
def test_fp32_precision_none_means_the_level_above_decides():
    """matmul's own level is "none" (the page's defaults), so it follows the global one either way.
    (cuDNN convolutions hold "tf32" of their own: torch 2.14 overwrites it when the global level is
    set, 2.11 keeps it; the page says nothing of that.)"""
    done = run_fresh("print(torch.backends.cuda.matmul.fp32_precision)\n"
                     'torch.backends.fp32_precision = "tf32"\n'
                     "print(torch.backends.cuda.matmul.fp32_precision)\n"
                     'torch.backends.fp32_precision = "ieee"\n'
                     "print(torch.backends.cuda.matmul.fp32_precision)")
    assert done.stdout.split() == ["none", "tf32", "ieee"], done.stderr


@needs_fp32_precision
@pytest.mark.parametrize("read", ["torch.backends.cuda.matmul.allow_tf32", "torch.get_float32_matmul_precision()"])
def test_mixing_the_new_and_the_legacy_tf32_settings_raises(read):
    done = run_fresh(f'torch.backends.cuda.matmul.fp32_precision = "tf32"\nprint({read})',
                     fails_with="mix of the legacy and new APIs")
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr and "mix of the legacy and new APIs" in done.stderr


def test_reading_the_legacy_flags_is_fine_when_only_they_are_used():
    done = run_fresh("torch.backends.cuda.matmul.allow_tf32 = True\n"
                     "print(torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())")
    assert done.returncode == 0 and done.stdout.split() == ["True", "high"], done.stderr


def test_high_precision_changes_no_cpu_matmul():
    torch.manual_seed(0)
    a, b = torch.randn(200, 300), torch.randn(300, 100)
    full = a @ b
    torch.set_float32_matmul_precision("high")
    try:
        assert torch.equal(a @ b, full)
    finally:
        torch.set_float32_matmul_precision("highest")


def test_fp16_range_demo_underflow_overflow_and_loss_scaling(capsys):
    tr.demo_fp16_range()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("torch.float32") and "max 6.55e+04" in lines[1] and "max 3.39e+38" in lines[2]
    grads = torch.tensor([1e-8, 1e-3, 7e4])
    half, bf16 = grads.half(), grads.bfloat16()
    assert half[0] == 0 and torch.isinf(half[2])                        # under- and overflow
    assert (bf16 != 0).all() and torch.isfinite(bf16).all()              # float32's range
    rescued = (grads[0] * 2.0**16).half().float() / 2.0**16
    assert rescued.item() == pytest.approx(1e-8, rel=1e-3)               # loss scaling keeps it
    assert torch.finfo(torch.float16).tiny == pytest.approx(6.1035e-05, rel=1e-4)
    assert torch.finfo(torch.float16).eps < torch.finfo(torch.bfloat16).eps  # float16: more mantissa


def test_grad_scaler_starts_at_two_to_the_sixteen():
    import inspect
    assert inspect.signature(torch.amp.GradScaler.__init__).parameters["init_scale"].default == 2.0**16


def test_inductor_suggests_high_precision_when_tf32_is_unused():
    import torch._inductor.compile_fx as compile_fx
    assert "torch.set_float32_matmul_precision('high')" in Path(compile_fx.__file__).read_text()


@pytest.mark.cuda
def test_tf32_matmul_is_less_precise_than_ieee_on_ampere_or_later():
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("TF32 needs an Ampere or later NVIDIA GPU")
    torch.manual_seed(0)
    a, b = torch.randn(1024, 1024, device="cuda"), torch.randn(1024, 1024, device="cuda")
    exact = (a.double() @ b.double())
    torch.set_float32_matmul_precision("highest")
    ieee = (a @ b - exact).abs().max().item()
    torch.set_float32_matmul_precision("high")
    try:
        tf32 = (a @ b - exact).abs().max().item()
    finally:
        torch.set_float32_matmul_precision("highest")
    assert tf32 > 10 * ieee                       # 10 mantissa bits against float32's 23


@pytest.mark.cuda
def test_bf16_without_a_scaler_reaches_95_percent_on_cuda():
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU does not compute in bfloat16 natively")
    tr.seed_everything(0)
    train, val = tr.digit_loaders(batch_size=64, seed=0)
    history = tr.fit_scheduled(tr.DigitCNN(), train, val, epochs=8, lr=3e-3, device=torch.device("cuda"),
                               amp_dtype=torch.bfloat16, max_norm=1.0)
    assert max(history["val_acc"]) >= 0.95


# --- torch.compile in practice (issue 24, item 4) ---------------------------------------------------

def test_explain_finds_two_graphs_and_the_print_that_breaks_them(capsys):
    report = tr.demo_graph_break()
    assert (report.graph_count, report.graph_break_count) == (2, 1)
    assert report.break_reasons[0].user_stack[-1].name == "forward_logged"
    assert capsys.readouterr().out.splitlines()[-2:] == ["2 graphs, 1 graph break", "break in: forward_logged"]


def test_without_the_print_the_forward_pass_is_one_graph():
    model = tr.DigitCNN().eval()
    with torch.no_grad():
        report = torch._dynamo.explain(model)(torch.rand(64, 1, 8, 8))
    assert (report.graph_count, report.graph_break_count) == (1, 0)


def test_fullgraph_turns_the_first_graph_break_into_an_error():
    def logged(x):
        print("x")
        return x + 1
    torch.compiler.reset()
    with pytest.raises(torch._dynamo.exc.Unsupported):
        torch.compile(logged, backend="eager", fullgraph=True)(torch.ones(2))


def test_recompilations_for_each_dynamic_setting():
    assert tr.demo_recompile() == {None: 2, False: 4, True: 1}


def test_the_digits_training_loader_ends_each_epoch_with_29(loaders):
    assert len(loaders[0].dataset) % 64 == 29 and len(loaders[1].dataset) % 256 == 104


def test_torch_logs_show_graph_breaks_and_recompilations(tmp_path):
    script = tmp_path / "logged.py"
    script.write_text("import torch\n\ndef f(x):\n    y = x.sin()\n    print('hi')\n    return y.cos()\n\n"
                      "g = torch.compile(f, backend='eager')\ng(torch.ones(3))\ng(torch.ones(5))\n")
    env = {**os.environ, "TORCH_LOGS": "graph_breaks,recompiles"}
    done = remembered([sys.executable, script.name], cwd=tmp_path, env=env, depends=[script])
    assert done.returncode == 0, done.stderr
    assert "Graph break in user code at" in done.stderr and "logged.py:5" in done.stderr
    assert "Recompiling function f" in done.stderr
    quiet = remembered([sys.executable, script.name], cwd=tmp_path, depends=[script],
                       env={k: v for k, v in env.items() if k != "TORCH_LOGS"})
    assert "Graph break" not in quiet.stderr and "Recompiling" not in quiet.stderr


def test_recompile_limit_and_ddp_defaults_the_page_names():
    import torch._dynamo
    from torch.nn.parallel import distributed
    config = torch._dynamo.config
    assert (config.recompile_limit if hasattr(config, "recompile_limit") else config.cache_size_limit) == 8
    assert torch._dynamo.config.optimize_ddp is True                     # DDPOptimizer is on
    assert "a default size of 25 MiB" in " ".join(distributed.DistributedDataParallel.__doc__.split())


def test_compiling_a_ddp_wrapper_prefixes_keys_with_orig_mod_module():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        model = tr.DigitCNN()
        compiled = torch.compile(DDP(model))
        assert list(compiled.state_dict())[0] == "_orig_mod.module.features.0.weight"
        assert list(model.state_dict())[0] == "features.0.weight"         # the plain module: plain keys
    finally:
        dist.destroy_process_group()


def test_compiler_reset_forgets_what_was_compiled():
    graphs = []

    def count(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def double(x):
        return x * 2

    torch.compiler.reset()
    compiled = torch.compile(double, backend=count)
    compiled(torch.ones(3))
    compiled(torch.ones(3))
    assert len(graphs) == 1                       # kept: the same shapes reuse the graph
    torch.compiler.reset()
    compiled(torch.ones(3))
    assert len(graphs) == 2                       # forgotten: compiled again


# --- where the time goes: the profiler ---------------------------------------------------------------

FORWARD_OPS = ["aten::conv2d", "aten::relu", "aten::conv2d", "aten::relu", "aten::max_pool2d", "aten::flatten",
               "aten::dropout", "aten::linear", "aten::relu", "aten::linear", "aten::cross_entropy_loss"]


@pytest.fixture(scope="module")
def profiled(loaders, tmp_path_factory):
    """The page's profiled step (it writes profile.txt into the folder it runs in)."""
    folder = tmp_path_factory.mktemp("profile")
    with __import__("contextlib").chdir(folder):
        prof, step = tr.demo_profile(loaders[0], CPU)
    return prof, step, folder


def test_profiler_activities_are_the_cpu_plus_the_devices_kernels(monkeypatch):
    from torch.profiler import ProfilerActivity as A
    assert tr.profiler_activities("cpu") == [A.CPU] == tr.profiler_activities(CPU)
    monkeypatch.setattr(torch.profiler, "supported_activities", lambda: {A.CPU, A.CUDA, A.XPU})
    assert tr.profiler_activities("cuda") == [A.CPU, A.CUDA] == tr.profiler_activities(torch.device("cuda", 1))
    assert tr.profiler_activities("xpu") == [A.CPU, A.XPU]
    assert tr.profiler_activities("mps") == [A.CPU]          # the profiler has no activity for Apple's GPU
    monkeypatch.setattr(torch.profiler, "supported_activities", lambda: {A.CPU})
    assert tr.profiler_activities("cuda") == [A.CPU]         # a build without the GPU's tracer


def test_profiler_activities_rejects_what_is_not_a_device():
    with pytest.raises(TypeError, match="device must be a device name such as 'cuda' or a torch.device, got int"):
        tr.profiler_activities(0)
    with pytest.raises(RuntimeError, match="device type"):
        tr.profiler_activities("gpu")


def test_profiled_step_has_its_three_labels_and_each_region_holds_its_operators(profiled):
    prof, _, _ = profiled
    averages = {row.key: row for row in prof.key_averages()}
    assert all(averages[name].count == 1 for name in ("forward", "backward", "step"))
    forward = next(e for e in prof.events() if e.name == "forward")
    assert [op.name for op in forward.cpu_children] == FORWARD_OPS   # the layers' operators, in call order
    # CPU total includes the operators called; self time is what is left
    assert forward.cpu_time_total >= sum(op.cpu_time_total for op in forward.cpu_children)
    assert forward.self_cpu_time_total < forward.cpu_time_total
    assert averages["forward"].cpu_time_total >= averages["aten::conv2d"].cpu_time_total   # the page's holds
    step = next(e for e in prof.events() if e.name == "step")
    assert any("Adam.step" in op.name for op in step.cpu_children)


def test_the_table_sorted_by_self_time_puts_the_heaviest_operator_first(profiled):
    prof, _, folder = profiled
    lines = (folder / "profile.txt").read_text().splitlines()
    assert lines[1].split() == ["Name", "Self", "CPU", "%", "Self", "CPU", "CPU", "total", "%", "CPU", "total",
                                "CPU", "time", "avg", "#", "of", "Calls"]
    rows = [line for line in lines[3:] if line.strip() and not line.startswith("-")]
    assert len(rows) == 12 + 1                              # 12 rows and the "Self CPU time total" line
    heaviest = max(prof.key_averages(), key=lambda row: row.self_cpu_time_total)
    name = rows[0].split("  ")[0].strip()                   # columns are apart by 2+ spaces; a name may hold one
    assert heaviest.key.startswith(name.removesuffix("..."))  # the table cuts long names with "..."
    # the GPU's sort keys are accepted on any profile
    assert "Name" in prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=3)


def test_export_chrome_trace_writes_the_timeline_as_json(profiled, tmp_path):
    import json
    prof, _, _ = profiled
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert {"forward", "backward", "step"} <= {e.get("name") for e in events}


def test_the_first_step_creates_adams_state_the_next_ones_reuse_it():
    """What a warm-up step pays once: Adam's two state tensors per parameter."""
    model = tr.DigitCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data, label = torch.rand(8, 1, 8, 8), torch.arange(8)
    assert len(optimizer.state) == 0
    tr.labelled_step(model, nn.CrossEntropyLoss(), optimizer, data, label)
    state = {p: (s["exp_avg"], s["exp_avg_sq"]) for p, s in optimizer.state.items()}
    assert len(state) == len(list(model.parameters())) == 8
    tr.labelled_step(model, nn.CrossEntropyLoss(), optimizer, data, label)
    assert all(optimizer.state[p]["exp_avg"] is a and optimizer.state[p]["exp_avg_sq"] is b
               for p, (a, b) in state.items())                # updated in place, not created again


# --- timing: synchronize before reading the clock -----------------------------------------------------

def _record_timing(monkeypatch, device, repeat=3):
    log = []
    monkeypatch.setattr(torch.accelerator, "synchronize", lambda *a: log.append("sync"))
    clock = iter(range(100))
    monkeypatch.setattr(tr, "time", type("Time", (), {"perf_counter": staticmethod(
        lambda: log.append("clock") or next(clock))}))
    tr.time_ms(lambda: log.append("fn"), device, repeat=repeat)
    return log


def test_time_ms_warms_up_then_synchronizes_before_each_reading_of_the_clock(monkeypatch):
    assert _record_timing(monkeypatch, "cuda") == ["fn", "sync", "clock", "fn", "fn", "fn", "sync", "clock"]
    assert _record_timing(monkeypatch, "mps") == ["fn", "sync", "clock", "fn", "fn", "fn", "sync", "clock"]
    assert _record_timing(monkeypatch, "cpu") == ["fn", "clock", "fn", "fn", "fn", "clock"]  # nothing queued


def test_time_ms_returns_milliseconds_per_call(monkeypatch):
    ticks = iter([10.0, 10.5])                                  # 0.5 s for 5 calls
    monkeypatch.setattr(tr, "time", type("Time", (), {"perf_counter": staticmethod(lambda: next(ticks))}))
    assert tr.time_ms(lambda: None, "cpu", repeat=5) == pytest.approx(100.0)


@pytest.mark.parametrize("fn, repeat, error, match", [
    (None, 5, TypeError, "fn must be a function to call, got NoneType"),
    (print, 0, ValueError, "repeat must be an integer >= 1, got 0"),
    (print, True, ValueError, "repeat must be an integer >= 1, got True"),
    (print, "20", ValueError, "repeat must be an integer >= 1, got '20'"),
])
def test_time_ms_rejects_bad_arguments(fn, repeat, error, match):
    with pytest.raises(error, match=match):
        tr.time_ms(fn, "cpu", repeat=repeat)


def test_the_gpu_timing_block_reads_the_launch_before_and_the_work_after_synchronizing():
    import inspect
    lines = [line.strip() for line in inspect.getsource(tr.demo_cuda_timing).splitlines()]
    at = {key: next(i for i, line in enumerate(lines) if line.startswith(key))
          for key in ("launch = time.perf_counter()", "torch.cuda.synchronize()  # wait", "work = time.perf_counter()",
                      "begin.record()", "end.record()", "end.synchronize()", 'print(f"without')}
    assert at["launch = time.perf_counter()"] < at["torch.cuda.synchronize()  # wait"] < at["work = time.perf_counter()"]
    assert at["begin.record()"] < at["end.record()"] < at["end.synchronize()"] < at['print(f"without']
    assert lines[at["begin.record()"] + 1] == "x @ x"           # only the work between the marks


def test_which_releases_warn_that_the_profiler_clears_events():
    """The page: 2.11 warns on every profiler run, one cycle included; 2.14 on only when a
    schedule starts a second cycle; 2.6 never."""
    one_cycle = ("with profile(activities=[ProfilerActivity.CPU]) as prof:\n    torch.ones(2) + 1\n"
                 "print(len(prof.key_averages()) > 0)")
    two_cycles = ("with profile(activities=[ProfilerActivity.CPU],\n"
                  "             schedule=schedule(wait=0, warmup=0, active=1, repeat=2)) as prof:\n"
                  "    for _ in range(2):\n        torch.ones(2) + 1\n        prof.step()\n"
                  "print(len(prof.key_averages()) > 0)")
    said = {}
    for name, code in {"one": one_cycle, "two": two_cycles}.items():
        done = run_fresh("import warnings; warnings.simplefilter('always')\n"
                         "from torch.profiler import ProfilerActivity, profile, schedule\n" + code)
        assert done.stdout.split() == ["True"], done.stderr
        said[name] = "Profiler clears events at the end of each cycle" in done.stderr
    release = torch_release()
    if release == (2, 11):
        assert said["one"]
    elif release >= (2, 14):
        assert said == {"one": False, "two": True}
    elif release == (2, 6):
        assert said == {"one": False, "two": False}


def test_benchmark_timer_synchronizes_the_accelerator_when_it_reads_its_clock(monkeypatch):
    import inspect

    from torch.utils.benchmark.utils import timer as timer_module
    clock = timer_module.timer
    if inspect.isfunction(clock) and "accelerator.is_available" in inspect.getsource(clock):
        log = []  # 2.14 on: asks at every reading whether an accelerator is there, and waits for it
        monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
        monkeypatch.setattr(torch.accelerator, "synchronize", lambda *a: log.append("sync"))
        timer_module.timer()
        assert log == ["sync"]
    else:  # 2.6 (CUDA) and 2.11 (any accelerator): chosen once, when the module is imported;
        #    without one the clock is time.perf_counter itself
        assert re.search(r"torch\.(cuda|accelerator)\.synchronize\(\)", inspect.getsource(timer_module))
        assert clock is not time.perf_counter or not torch.accelerator.is_available()


def test_timer_runs_one_thread_unless_told_and_does_not_count_its_warm_up():
    from torch.utils import benchmark
    calls, threads = [0], set()

    def stmt():
        calls[0] += 1
        threads.add(torch.get_num_threads())

    measured = benchmark.Timer("stmt()", globals={"stmt": stmt}).blocked_autorange(min_run_time=0.05)
    assert threads == {1}
    assert calls[0] > measured.number_per_run * len(measured.times)   # the warm-up runs are not counted
    threads.clear()
    benchmark.Timer("stmt()", globals={"stmt": stmt}, num_threads=torch.get_num_threads()).timeit(1)
    assert threads == {torch.get_num_threads()}


def test_timer_reports_the_median_and_the_iqr_and_warns_when_the_spread_is_wide():
    import numpy as np
    from torch.utils.benchmark.utils.common import Measurement, TaskSpec
    times = [1.0, 1.1, 2.0, 3.0]
    measured = Measurement(number_per_run=1, raw_times=times, task_spec=TaskSpec(stmt="step()", setup="pass"))
    assert measured.median == pytest.approx(np.median(times))
    assert measured.iqr == pytest.approx(np.quantile(times, 0.75) - np.quantile(times, 0.25))
    assert "WARNING: Interquartile range" in repr(measured)
    steady = Measurement(number_per_run=1, raw_times=[1.0, 1.0, 1.01, 1.0], task_spec=TaskSpec(stmt="step()",
                                                                                               setup="pass"))
    assert "WARNING" not in repr(steady)


def test_the_timing_demo_prints_time_ms_and_the_timers_median(capsys):
    measured = tr.demo_time_step(lambda: torch.ones(64, 64) @ torch.ones(64, 64), CPU)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("time_ms: ") and out[0].endswith(" ms per step")
    assert out[1].startswith("Timer:   median ") and measured.median > 0


# --- activation checkpointing --------------------------------------------------------------------------

UNIT = 256 * 128 * 4        # one activation of the page's batch, in bytes (0.125 MiB)


@pytest.fixture(scope="module")
def checkpointed_pair():
    """The page's two models after one backward pass each: (plain, checkpointed, x)."""
    return tr.demo_checkpoint_memory()


def test_checkpointing_keeps_one_activation_per_block_instead_of_nine():
    torch.manual_seed(0)
    for depth, batch in ((8, 256), (4, 256), (8, 512)):
        x = torch.randn(batch, 128)
        unit = batch * 128 * 4
        _, plain = tr.saved_bytes(tr.DeepMLP(width=128, depth=depth), x)
        _, kept = tr.saved_bytes(tr.DeepMLP(width=128, depth=depth, checkpointed=True), x)
        assert plain == (9 * depth) * unit        # x, then 4 + 4 around each GELU, and each block's output
        assert kept == depth * unit               # each block's input only
    assert (plain, kept) == (2 * 72 * UNIT, 2 * 8 * UNIT)   # twice the batch, twice the memory


def test_the_page_run_saves_9_mib_and_1_mib_with_the_same_gradients(checkpointed_pair, capsys):
    plain, checkpointed, x = checkpointed_pair
    assert 72 * UNIT == 9 * 2**20 and 8 * UNIT == 2**20 and UNIT == 2**20 / 8
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(plain.parameters(), checkpointed.parameters()))
    assert torch.equal(plain(x), checkpointed(x))


def test_saved_bytes_counts_each_storage_once_and_leaves_out_the_parameters():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    _, size = tr.saved_bytes(model, torch.ones(2, 4))
    # the first layer keeps x (32 bytes); ReLU keeps its output, which the second layer keeps too
    assert size == 2 * 32


@pytest.mark.parametrize("args", [(nn.Linear(2, 2), [1.0, 2.0]), (lambda x: x, torch.ones(2))])
def test_saved_bytes_rejects_what_is_not_a_model_and_a_tensor(args):
    with pytest.raises(TypeError, match=r"give a model and its input tensor, e.g. saved_bytes\(model, x\)"):
        tr.saved_bytes(*args)


@pytest.mark.parametrize("kwargs, match", [({"width": 0}, "width must be an integer >= 1, got 0"),
                                           ({"depth": 2.0}, "depth must be an integer >= 1, got 2.0")])
def test_deep_mlp_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tr.DeepMLP(**kwargs)


def _flops(model, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        model.zero_grad()
        model(x).pow(2).mean().backward()
    return counter.get_total_flops()


def test_recomputation_runs_each_blocks_first_linear_layer_again_and_stops(checkpointed_pair):
    from torch.utils.checkpoint import set_checkpoint_early_stop
    plain, checkpointed, x = checkpointed_pair
    linear = 2 * 256 * 128 * 512                   # one of a block's two linear layers, forward
    more = _flops(checkpointed, x) - _flops(plain, x)
    assert more == 8 * linear                      # the first linear layer of each block, once more
    with set_checkpoint_early_stop(False):        # without stopping early: the whole block again
        assert _flops(checkpointed, x) - _flops(plain, x) == 8 * 2 * linear


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_page_states_the_counted_operations(checkpointed_pair, lang):
    plain, checkpointed, x = checkpointed_pair
    flops_plain, flops_kept = _flops(plain, x), _flops(checkpointed, x)
    section = next(s for s in page_text(lang).split("\n## ") if s.startswith(("Trading compute for memory", "以计算换内存")))
    assert f"{(flops_kept - flops_plain) / 1e9:.3f} GFLOP" in section
    assert f"{round(100 * (flops_kept / flops_plain - 1))} %" in section
    assert f"GFLOP per step: {flops_plain / 1e9:.3f} plain, {flops_kept / 1e9:.3f} checkpointed" in section


def test_the_cost_demo_counts_more_operations_checkpointed(checkpointed_pair, capsys):
    flops, ms = tr.demo_checkpoint_cost(*checkpointed_pair)
    assert flops[True] > flops[False] and ms[True] > 0 and ms[False] > 0
    assert capsys.readouterr().out.startswith(
        "GFLOP per step: 1.577 plain, 1.845 checkpointed (+0.268, +17 %)\n")


def test_checkpoint_restores_the_random_state_so_dropout_draws_the_same_mask():
    from torch.utils.checkpoint import checkpoint
    block = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5), nn.Linear(16, 16))
    x = torch.randn(32, 16)

    def grads(**kwargs):
        block.zero_grad()
        torch.manual_seed(1)
        checkpoint(block, x, use_reentrant=False, **kwargs).pow(2).sum().backward()
        return [p.grad.clone() for p in block.parameters()]

    block.zero_grad()
    torch.manual_seed(1)
    block(x).pow(2).sum().backward()
    plain = [p.grad.clone() for p in block.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(plain, grads()))                       # the default
    assert not all(torch.equal(a, b) for a, b in zip(plain, grads(preserve_rng_state=False)))


def test_reentrant_checkpoint_gives_a_first_block_fed_data_no_gradient_with_only_a_warning():
    from torch.utils.checkpoint import checkpoint
    torch.manual_seed(0)
    block, head, x = tr.FeedForward(8), nn.Linear(8, 1), torch.randn(4, 8)   # x: data, no grad
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        out = checkpoint(block, x, use_reentrant=True)
    head(out).sum().backward()
    assert all(p.grad is None for p in block.parameters()) and head.weight.grad is not None
    head(checkpoint(block, x, use_reentrant=False)).sum().backward()
    assert all(p.grad is not None for p in block.parameters())


def test_reentrant_checkpoint_does_not_work_with_autograd_grad():
    from torch.utils.checkpoint import checkpoint
    block, x = tr.FeedForward(8), torch.randn(4, 8, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"(not compatible|incompatible) with \.grad\(\)"):
        torch.autograd.grad(checkpoint(block, x, use_reentrant=True).sum(), x)
    (grad,) = torch.autograd.grad(checkpoint(block, x, use_reentrant=False).sum(), x)
    assert grad.shape == x.shape


def test_leaving_out_use_reentrant_warns_and_takes_the_reentrant_variant():
    import warnings

    from torch.utils.checkpoint import checkpoint
    block, x = tr.FeedForward(8), torch.randn(4, 8, requires_grad=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = checkpoint(block, x)
    except (RuntimeError, ValueError) as err:                     # a later release may refuse instead
        assert "use_reentrant" in str(err)
        return
    assert any("use_reentrant parameter should be passed explicitly" in str(w.message) for w in caught)
    assert type(out.grad_fn).__name__ == "CheckpointFunctionBackward"   # the reentrant variant's node


def test_the_documentation_recommends_use_reentrant_false():
    from torch.utils.checkpoint import checkpoint
    assert "It is recommended that you use ``use_reentrant=False``" in " ".join(checkpoint.__doc__.split())


def test_checkpointing_single_linear_layers_saves_nothing():
    from torch.utils.checkpoint import checkpoint
    layers = nn.ModuleList(nn.Linear(64, 64) for _ in range(4))

    class Chain(nn.Module):
        def __init__(self, checkpointed):
            super().__init__()
            self.layers, self.checkpointed = layers, checkpointed

        def forward(self, x):
            for layer in self.layers:
                x = checkpoint(layer, x, use_reentrant=False) if self.checkpointed else layer(x)
            return x

    x = torch.randn(32, 64)
    assert tr.saved_bytes(Chain(True), x)[1] == tr.saved_bytes(Chain(False), x)[1] == 4 * 32 * 64 * 4


def test_checkpoint_sequential_checkpoints_every_segment_but_the_last():
    from torch.utils.checkpoint import checkpoint_sequential
    torch.manual_seed(0)
    model, x = nn.Sequential(*(tr.FeedForward(128) for _ in range(8))), torch.randn(256, 128)

    class Segmented(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return checkpoint_sequential(self.model, 4, x, use_reentrant=False)

    out, size = tr.saved_bytes(Segmented(), x)
    # three checkpointed segments keep their inputs; the last two blocks keep everything (2 x 9)
    assert size == (3 + 2 * 9) * UNIT
    assert torch.equal(out, model(x))


@pytest.mark.cuda
def test_cuda_perf_counter_alone_measures_the_launch_not_the_work(capsys):
    times = tr.demo_cuda_timing()
    assert times["launch"] < times["work"] / 10                    # the clock stopped before the GPU did
    assert 0.5 * times["work"] < times["events"] < 2 * times["work"]
    assert capsys.readouterr().out.startswith("without synchronize ")


@pytest.mark.cuda
def test_cuda_time_ms_and_the_timer_measure_the_work_not_the_launch():
    import time

    from torch.utils import benchmark
    x = torch.randn(4096, 4096, device="cuda")
    work = tr.time_ms(lambda: x @ x, "cuda", repeat=5)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        x @ x
    launch = (time.perf_counter() - start) * 1000 / 5             # no synchronize: the launches only
    torch.cuda.synchronize()
    median = benchmark.Timer("x @ x", globals={"x": x}).blocked_autorange(min_run_time=0.2).median * 1000
    assert work > 5 * launch and 0.5 < median / work < 2


@pytest.mark.cuda
def test_cuda_profiler_records_the_gpu_kernels():
    from torch.profiler import ProfilerActivity, profile
    assert tr.profiler_activities("cuda") == [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    x = torch.randn(1024, 1024, device="cuda")
    with profile(activities=tr.profiler_activities("cuda")) as prof:
        x @ x
        torch.cuda.synchronize()
    rows = prof.key_averages()
    assert max(getattr(r, "self_device_time_total", 0) for r in rows) > 0
    assert "CUDA" in rows.table(sort_by="self_cuda_time_total", row_limit=5)


@pytest.mark.cuda
def test_cuda_checkpointing_lowers_the_peak_memory_and_keeps_the_gradients():
    torch.manual_seed(0)
    x = torch.randn(4096, 128, device="cuda")
    plain = tr.DeepMLP(width=128, depth=8).cuda()
    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpointed = True
    peaks, saved = {}, {}
    for model in (plain, checkpointed):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out, saved[model.checkpointed] = tr.saved_bytes(model, x)
        out.pow(2).mean().backward()
        torch.cuda.synchronize()
        peaks[model.checkpointed] = torch.cuda.max_memory_allocated() - base
    unit = 4096 * 128 * 4
    assert (saved[False], saved[True]) == (72 * unit, 8 * unit)       # the same tensors as on the CPU
    assert peaks[False] - peaks[True] > 0.5 * (72 - 8) * unit
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(plain.parameters(), checkpointed.parameters()))
