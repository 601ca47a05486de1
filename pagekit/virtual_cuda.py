"""A virtual accelerator: run a page's program on the CPU as if the machine had one CUDA GPU,
and report every place where it would fail on a real one because tensors sit on two devices.

CI has no GPU, so `pick_device()` returns the CPU there and a block that compares a cuda:0
tensor with a CPU tensor passes. Under `VirtualCuda` the program takes its GPU path:
`torch.cuda.is_available()` is True with one device, `.to("cuda")`, `.cuda()`, factories with
`device="cuda"`, `Module.to(...)` (through the `.data` setter), `nn.DataParallel` (one device:
it moves the module, its scatter moves the inputs) and `torch.load` of a file saved from cuda:0
without `map_location` make tensors that live on cuda:0, virtually: their data stays on the CPU
and every result computed from them is on cuda:0 too. Such tensors report `device` cuda:0,
`is_cuda` True, print `device='cuda:0'`, and are saved with the tag cuda:0.

An operation that real torch refuses raises here (or, with `record=True`, is recorded and the
program goes on, so one run finds them all): tensors of both devices in one op (`torch.equal`,
arithmetic, `cat`, a loss, a CPU input into a model whose weights are on cuda:0, ...), except a
0-dim CPU tensor in elementwise ops, CPU indices into a cuda tensor, `copy_` (so
`load_state_dict` copies across devices) and the moves themselves (`.to`, `.cpu`, `.cuda`); and
`.numpy()` / `np.asarray()` of a cuda tensor. The errors are `DeviceError`s with torch's types
(`MixedDevices` is a RuntimeError, `CudaToNumpy` a TypeError) and torch's wording.

Minimal stand-ins, enough for the pages: device properties (`get_device_name`,
`get_device_properties`, capability), `set_device`, `synchronize`, the CUDA RNG state, pinned
memory (`pin_memory()` keeps the data and marks it pinned, also in a DataLoader's pin thread),
`torch.accelerator`. Not emulated (they fail here, so a page that needs them must say why in
tests/test_device_check.py): streams and events, memory statistics, CUDA graphs, several GPUs,
autocast("cuda") dtype changes (it runs, but computes in float32), NCCL.

A page runs under it with the engine's runner (`python -m pagekit.run --virtual-cuda`, as
`python -m tools.device_check` does): the code its script holds, block by block, in an empty
folder; each block's result lists the violations; outputs are not compared (they differ on a GPU).
"""
from __future__ import annotations

import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


class DeviceError(Exception):
    """What a real GPU would raise here (see the subclasses for torch's own type)."""


class MixedDevices(DeviceError, RuntimeError):
    """Tensors on cuda:0 and on the CPU in one operation."""


class CudaToNumpy(DeviceError, TypeError):
    """`.numpy()` of a tensor on cuda:0."""


class NoSuchDevice(DeviceError, RuntimeError):
    """cuda:N with N > 0: the virtual machine has one GPU."""


@dataclass
class Violation:
    kind: str       # the DeviceError's class name
    message: str
    where: str      # innermost line of the page's program: "page.py:LINE" (block at LINE)
    line: str       # that line's code
    inside: str     # innermost frame overall (a library function, or the same line)


# ops that take tensors of two devices on purpose
CROSS_DEVICE_OK = {"copy_", "__setitem__", "_has_compatible_shallow_copy_type", "is_same_size",
                   "__reduce_ex__", "__deepcopy__", "set_", "_is_view", "is_set_to", "tensor",
                   "swap_tensors", "__get__", "__set__"}
# ops that refuse even a 0-dim CPU tensor next to a cuda one (not elementwise)
STRICT = {"equal", "cat", "concat", "concatenate", "stack", "hstack", "vstack", "mm", "matmul",
          "bmm", "dot", "linear", "bilinear", "conv1d", "conv2d", "conv3d", "embedding",
          "index_select", "gather", "scatter", "take", "cross_entropy", "nll_loss"}


def _tensors(obj: Any, found: list, depth: int = 0) -> list:
    """The tensors among args/kwargs (through lists, tuples and dicts, a few levels deep)."""
    if isinstance(obj, torch.Tensor):
        found.append(obj)
    elif depth < 4 and isinstance(obj, (list, tuple)):
        for item in obj:
            _tensors(item, found, depth + 1)
    elif depth < 4 and isinstance(obj, dict):
        for item in obj.values():
            _tensors(item, found, depth + 1)
    return found


def _device(value: Any) -> torch.device | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return torch.device("cuda", value)
    return torch.device(value)


def _index(device: torch.device) -> None:
    if device.type == "cuda" and (device.index or 0) > 0:
        raise NoSuchDevice("CUDA error: invalid device ordinal (the virtual machine has one GPU, "
                           f"{device} does not exist)")


class VirtualCuda(TorchFunctionMode):
    """One virtual CUDA GPU, cuda:0, whose tensors compute on the CPU. See the module docstring.

    with VirtualCuda():              # the first device error raises, as on a GPU
        ...
    with VirtualCuda(record=True) as gpu:   # errors go to gpu.violations, the program goes on
        ...
    """

    def __init__(self, record: bool = False, program_files: dict[str, str] | None = None):
        super().__init__()
        self.record = record
        self.violations: list[Violation] = []
        self.program_files = program_files if program_files is not None else {}
        self.on_cuda = WeakIdKeyDictionary()   # tensor -> True: lives on cuda:0
        self.pinned = WeakIdKeyDictionary()
        self._loaded: set[int] = set()         # storages torch.load put on cuda:0 (data_ptr)
        self._undo: list[Callable[[], None]] = []
        self.made_on_cuda = 0                  # tensors that came to live on cuda:0 (a count)

    # --- bookkeeping --------------------------------------------------------------------------
    def is_cuda(self, t: torch.Tensor) -> bool:
        return t in self.on_cuda

    def device_of(self, t: torch.Tensor) -> torch.device:
        return CUDA if t in self.on_cuda else t.device

    def _tag(self, out: Any, cuda: bool) -> None:
        for t in _tensors(out, []):
            if cuda:
                self.made_on_cuda += t not in self.on_cuda
                self.on_cuda[t] = True
            elif t in self.on_cuda:
                del self.on_cuda[t]

    def violation(self, error: DeviceError) -> None:
        """Raise the error a GPU would raise, or (record=True) note where it happened."""
        if not self.record:
            raise error
        stack = [f for f in traceback.extract_stack() if f.filename != __file__]
        page = next((f for f in reversed(stack) if f.filename in self.program_files), None)
        inner = stack[-1] if stack else None
        line = ""
        if page is not None:
            lines = self.program_files[page.filename].split("\n")
            line = lines[page.lineno - 1].strip() if 0 < page.lineno <= len(lines) else ""
        self.violations.append(Violation(
            type(error).__name__, str(error),
            f"{page.filename} line {page.lineno}" if page else "(not in the page's code)", line,
            f"{inner.filename}:{inner.lineno} in {inner.name}" if inner else ""))

    def _check(self, name: str, tensors: list) -> None:
        cuda = [t for t in tensors if t in self.on_cuda]
        if not cuda:
            return
        others = [t for t in tensors if t not in self.on_cuda
                  and (name in STRICT or t.dim() != 0 or t.device.type != "cpu")]
        if others:
            self.violation(MixedDevices(
                "Expected all tensors to be on the same device, but found at least two devices, "
                f"cuda:0 and {others[0].device}! (in {name}; a CPU run never sees this)"))

    # --- the mode -----------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in ("__get__", "__set__"):
            return self._property(func, name, args)
        handler = self._METHODS.get(name)
        if handler is not None and isinstance(args[0] if args else None, torch.Tensor):
            return handler(self, func, args, kwargs)
        target = _device(kwargs.get("device"))
        if target is not None:
            _index(target)
            if target.type == "cuda":
                kwargs = {**kwargs, "device": "cpu"}
            if kwargs.get("pin_memory"):
                kwargs = {**kwargs, "pin_memory": False}
            out = func(*args, **kwargs)
            self._tag(out, target.type == "cuda")
            return out
        if not self.on_cuda:  # no cuda tensor exists: nothing to check or to tag
            return func(*args, **kwargs)
        tensors = _tensors(args, _tensors(kwargs, []))
        cuda = any(t in self.on_cuda for t in tensors)
        if cuda and name not in CROSS_DEVICE_OK:
            self._check(name, tensors)
        out = func(*args, **kwargs)
        if cuda and name not in CROSS_DEVICE_OK:
            self._tag(out, True)
        return out

    def _property(self, func, kind, args):
        attr = getattr(getattr(func, "__self__", None), "__name__", "")
        t = args[0]
        if kind == "__get__":
            if attr == "device":
                return CUDA if t in self.on_cuda else func(*args)
            if attr == "is_cuda":
                return t in self.on_cuda or func(*args)
            if attr == "is_cpu":
                return t not in self.on_cuda and func(*args)
            out = func(*args)
            if attr in ("grad", "data", "T", "mT", "H", "mH", "real", "imag") and t in self.on_cuda:
                self._tag(out, True)  # a gradient lives where its tensor does
            return out
        value = args[1]
        if attr == "data":
            func(*args)
            self._tag(t, isinstance(value, torch.Tensor) and value in self.on_cuda)
            return None
        if attr == "grad" and isinstance(value, torch.Tensor) and self.is_cuda(value) != self.is_cuda(t):
            self.violation(MixedDevices(
                f"assigned grad has data located on {self.device_of(value)}, but the tensor is "
                f"on {self.device_of(t)}"))
        return func(*args)

    # Tensor methods with a device meaning
    def _to(self, func, args, kwargs):
        t, rest, kwargs = args[0], args[1:], dict(kwargs)
        copy = bool(kwargs.pop("copy", False))
        if rest and isinstance(rest[0], torch.Tensor):  # t.to(other): other's device and dtype
            target, dtype, non_blocking = self.device_of(rest[0]), rest[0].dtype, False
            memory_format = torch.preserve_format
        else:
            device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*rest, **kwargs)
            target = _device(device)
        if target is not None:
            _index(target)
        return self._move(t, target, lambda: t.to("cpu", dtype, non_blocking=non_blocking,
                                                  copy=copy, memory_format=memory_format))

    def _move(self, t, target: torch.device | None, run: Callable[[], torch.Tensor]):
        current = self.device_of(t)
        out = run()
        wanted = target or current
        if wanted.type not in ("cuda", "cpu"):  # meta and the like: real torch
            return out
        if out is t and wanted.type != current.type:
            out = t.clone()  # a real move copies
        if out is not t:
            self._tag(out, wanted.type == "cuda")
        return out

    def _cuda(self, func, args, kwargs):
        t = args[0]
        device = _device(kwargs.get("device", args[1] if len(args) > 1 else None)) or CUDA
        _index(device)
        return self._move(t, CUDA, lambda: t.to("cpu", non_blocking=bool(kwargs.get("non_blocking"))))

    def _cpu(self, func, args, kwargs):
        t = args[0]
        return self._move(t, CPU, lambda: func(*args, **kwargs))

    def _numpy(self, func, args, kwargs):
        if args[0] in self.on_cuda:
            self.violation(CudaToNumpy("can't convert cuda:0 device type tensor to numpy. Use "
                                       "Tensor.cpu() to copy the tensor to host memory first."))
        return func(*args, **kwargs)

    def _get_device(self, func, args, kwargs):
        return 0 if args[0] in self.on_cuda else func(*args, **kwargs)

    def _getitem(self, func, args, kwargs):
        t = args[0]
        indices = _tensors(args[1:], [])
        if t not in self.on_cuda and any(i in self.on_cuda for i in indices):
            self.violation(MixedDevices("indices should be either on cpu or on the same device as "
                                        "the indexed tensor (cpu)"))
        out = func(*args, **kwargs)
        if t in self.on_cuda:
            self._tag(out, True)
        return out

    def _repr(self, func, args, kwargs):
        text = func(*args, **kwargs)
        if args[0] not in self.on_cuda:
            return text
        last = text.rsplit("\n", 1)[-1]
        cut = min([last.find(s) for s in (", dtype=", ", grad_fn=", ", requires_grad=", ", names=")
                   if s in last] or [len(last) - 1])
        return text[: len(text) - len(last)] + last[:cut] + ", device='cuda:0'" + last[cut:]

    _METHODS = {"to": _to, "cuda": _cuda, "cpu": _cpu, "numpy": _numpy, "__array__": _numpy,
                "get_device": _get_device, "__getitem__": _getitem, "__repr__": _repr}

    # --- the machine around the tensors ---------------------------------------------------------
    def _patch(self, owner: Any, name: str, value: Any) -> None:
        missing = object()
        old = owner.__dict__.get(name, missing) if isinstance(owner, type) else getattr(owner, name, missing)
        setattr(owner, name, value)
        self._undo.append(lambda: delattr(owner, name) if old is missing else setattr(owner, name, old))

    def _patch_machine(self) -> None:
        properties = types.SimpleNamespace(
            name="Virtual GPU (pagekit.virtual_cuda)", major=9, minor=0, total_memory=80 * 2**30,
            multi_processor_count=132, is_integrated=False, is_multi_gpu_board=False)
        rng = {"state": torch.zeros(16, dtype=torch.uint8)}

        def checked():  # a new function for each name (torch._dynamo maps functions to names)
            def check(value=None, *args, **kwargs):
                device = _device(value)
                if device is not None:
                    _index(device)
            return check

        cuda = {
            "is_available": lambda: True, "device_count": lambda: 1, "current_device": lambda: 0,
            "is_bf16_supported": lambda *a, **k: True, "is_current_stream_capturing": lambda: False,
            "get_device_name": lambda device=None: (checked()(device), properties.name)[1],
            "get_device_properties": lambda device=None: (checked()(device), properties)[1],
            "get_device_capability": lambda device=None: (checked()(device), (9, 0))[1],
            "set_device": checked(), "synchronize": checked(),
            "get_rng_state": lambda device="cuda": rng["state"].clone(),
            "get_rng_state_all": lambda: [rng["state"].clone()],
            "set_rng_state": lambda state, device="cuda": rng.update(state=state.clone()),
            "set_rng_state_all": lambda states: rng.update(state=states[0].clone()),
            "current_stream": lambda device=None: (checked()(device), _Stream())[1],
        }
        for name, value in cuda.items():
            self._patch(torch.cuda, name, value)
        accelerator = {
            "is_available": lambda: True, "device_count": lambda: 1,
            "current_accelerator": lambda check_available=False: torch.device("cuda"),
            "current_device_index": lambda: 0, "current_device_idx": lambda: 0,
            "set_device_index": checked(), "set_device_idx": checked(), "synchronize": checked(),
            "current_stream": lambda device=None: (checked()(device), _Stream())[1],
        }
        for name, value in accelerator.items():
            if hasattr(torch.accelerator, name):
                self._patch(torch.accelerator, name, value)

        gpu = self

        def pin_memory(t, device=None):  # any thread: a DataLoader pins in a thread of its own
            gpu.pinned[t] = True
            return t

        self._patch(torch.Tensor, "pin_memory", pin_memory)
        self._patch(torch.Tensor, "is_pinned", lambda t, device=None: t in gpu.pinned)

        def scatter(dp, inputs, kwargs, device_ids):  # one device: everything moves to it
            device = torch.device("cuda", device_ids[0])

            def move(obj):
                if isinstance(obj, torch.Tensor):
                    return obj.to(device)
                if type(obj) in (list, tuple):
                    return type(obj)(move(o) for o in obj)
                if type(obj) is dict:
                    return {k: move(v) for k, v in obj.items()}
                return obj

            moved_inputs = [move(tuple(inputs))] if inputs else []
            moved_kwargs = [move(dict(kwargs))] if kwargs else []
            if moved_inputs and not moved_kwargs:  # as torch's scatter_kwargs pads them
                moved_kwargs = [{}]
            if moved_kwargs and not moved_inputs:
                moved_inputs = [()]
            return tuple(moved_inputs), tuple(moved_kwargs)

        self._patch(nn.DataParallel, "scatter", scatter)

        # torch.save tags a virtual cuda tensor's storage cuda:0; torch.load restores such a
        # storage (no map_location, or one that maps to cuda) as a virtual cuda storage
        def tagger(storage):
            ptr = storage.data_ptr()
            if ptr:
                with torch._C.DisableTorchFunction():
                    if any(t.untyped_storage().data_ptr() == ptr for t in list(gpu.on_cuda.keys())):
                        return "cuda:0"
            return None

        def deserializer(storage, location):
            if location.startswith("cuda"):
                _index(torch.device(location))
                gpu._loaded.add(storage.data_ptr())
                return storage
            return None

        entry = (-100, tagger, deserializer)
        torch.serialization._package_registry.insert(0, entry)
        self._undo.append(lambda: torch.serialization._package_registry.remove(entry))
        real_load = torch.load

        def load(*args, **kwargs):
            gpu._loaded = set()
            out = real_load(*args, **kwargs)
            if gpu._loaded:
                _walk(out, lambda t: gpu._tag(t, True) if t.untyped_storage().data_ptr()
                      in gpu._loaded else None)
            return out

        self._patch(torch, "load", load)

    def __enter__(self):
        # torch._dynamo (which optimizers import) maps torch's functions to rules once per
        # process, by enumerating torch.cuda & co.: let it see the real ones, not the stand-ins
        try:
            from torch._dynamo.trace_rules import get_torch_obj_rule_map

            get_torch_obj_rule_map()
        except (ImportError, AttributeError):  # another torch: nothing to protect
            pass
        self._patch_machine()
        try:
            return super().__enter__()
        except BaseException:
            self._restore()
            raise

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._restore()

    def _restore(self):
        while self._undo:
            self._undo.pop()()


class _Stream:
    """The current stream, as much as optimizers and loaders ask of it (no real streams)."""

    device = CUDA

    def is_capturing(self) -> bool:
        return False

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        return None


def _walk(obj: Any, fn: Callable[[torch.Tensor], None], seen: set | None = None) -> None:
    """Call fn on every tensor in what torch.load returned (dicts, lists, modules)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        fn(obj)
    elif isinstance(obj, nn.Module):
        for t in [*obj.parameters(), *obj.buffers()]:
            fn(t)
    elif isinstance(obj, dict):
        for value in obj.values():
            _walk(value, fn, seen)
    elif isinstance(obj, (list, tuple, set)):
        for value in obj:
            _walk(value, fn, seen)
