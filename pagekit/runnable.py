"""A block as a runnable program: the earlier blocks of its page that it needs, then the block, as the page's
script holds them (CONTRIBUTING.md, "Every block copies as a runnable program").

A block needs the nearest earlier block that binds a name it reads, and the blocks between that work on that
object (call its methods, pass it, assign to it; a print does not), or on a file it names; and so on for those
blocks. Blocks the page does not run here (skip, cuda) and must-fail blocks are no part of another's program.
"""
from __future__ import annotations

import ast
import builtins
import functools
import re
from dataclasses import dataclass

from pagekit.export import (
    _DATA_FILE,
    block_code,
    join_code,
    named_files,
    script_code,
    spawn_safe,
)
from pagekit.memo import remembered
from pagekit.page import Block, python_blocks

_BUILTINS = set(dir(builtins))


@dataclass(frozen=True)
class Uses:
    binds: frozenset[str]    # names bound at the top level (imports, defs, assignments, for/with targets)
    free: frozenset[str]     # names read before the block binds them, and the files it names
    later: frozenset[str]    # names its functions read when they are called
    loads: frozenset[str]    # every name read, and every file named
    touches: frozenset[str]  # names read by a statement that does more than print


def _stores(nodes) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _top_binds(body: list[ast.stmt]) -> set[str]:
    found: set[str] = set()
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            found |= _stores([node])
        elif isinstance(node, (ast.For, ast.With, ast.If, ast.While, ast.Try)):
            found |= _top_binds([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)])
            found |= _stores(t for t in [getattr(node, "target", None)] if t is not None)
            found |= _stores(i.optional_vars for i in getattr(node, "items", []) if i.optional_vars is not None)
        elif isinstance(node, ast.Expr):
            found |= _stores([node])  # a walrus
    return found


def _names_read(node: ast.AST, later: set[str] | None = None) -> set[str]:
    """Global names a statement reads when it runs; the names a function body reads go to
    `later` (read when it is called). A function's parameters and locals, and a comprehension's
    or lambda's variables, are not global."""
    later = set() if later is None else later
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = node.args
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        annotations = [a.annotation for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
                       if a is not None and a.annotation is not None] + [getattr(node, "returns", None)]
        now = set().union(*(_names_read(n, later) for n in args.defaults + getattr(node, "decorator_list", [])
                            + [d for d in args.kw_defaults + annotations if d is not None]))
        body = node.body if isinstance(node.body, list) else [node.body]
        local = params | _stores(body) | _top_binds([b for b in body if isinstance(b, ast.stmt)])
        inner: set[str] = set()
        later |= set().union(*(_names_read(n, inner) for n in body)) - local
        later |= inner - local
        return now
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        local = _stores(g.target for g in node.generators)
        inner = set().union(*(_names_read(n, later) for n in ast.iter_child_nodes(node)))
        return inner - local | _names_read(node.generators[0].iter, later)
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) else set()
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        return {node.target.id} | _names_read(node.value, later)
    return set().union(*(_names_read(n, later) for n in ast.iter_child_nodes(node)))


def _files(node: ast.AST) -> set[str]:
    found = {f"file:{f}" for f in named_files(node)}
    for n in ast.walk(node):  # f"with_{name}.pt": a pattern, "with_.+\\.pt"
        if isinstance(n, ast.JoinedStr):
            parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in n.values]
            if _DATA_FILE.search("".join(v.value for v in n.values if isinstance(v, ast.Constant))):
                found.add("files:" + "".join(parts))
    return found


def uses(code: str) -> Uses:
    body = ast.parse(code).body
    bound: set[str] = set()
    free: set[str] = set()
    loads: set[str] = set()
    touches: set[str] = set()
    later: set[str] = set()
    for node in body:  # statement by statement: what a statement reads that no earlier one bound
        read = (_names_read(node, later) - _BUILTINS) | _files(node)
        free |= {n for n in read if n.startswith("file:") or n not in bound}
        loads |= read
        call = node.value if isinstance(node, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"):
            touches |= read  # a statement that does more than print
        bound |= _top_binds([node])
    later -= _BUILTINS | bound
    return Uses(frozenset(bound), frozenset(free), frozenset(later), frozenset(loads), frozenset(touches))


def _not_objects(code: str) -> set[str]:
    """Names of modules, functions and classes: using one does not change it."""
    body = ast.parse(code).body
    return ({(a.asname or a.name).split(".")[0] for n in body if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names}
            | {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))})


def _works_on(block: Uses, name: str) -> bool:
    return name in block.touches or (name.startswith("file:") and any(
        re.fullmatch(t[6:], name[5:]) for t in block.touches if t.startswith("files:")))


def needs(blocks: list[Block]) -> list[list[int]]:
    """For each Python block (by index among them), the indices of the earlier blocks it needs."""
    code = python_blocks(blocks)  # each with whether it is part of the page's program here
    return _needs(tuple((block_code(b), not (b.mark("skip") or b.mark("cuda") or b.must_fail)) for b in code))


@functools.lru_cache(maxsize=64)  # a page's two languages have the same code: analysed once
@remembered  # ... and once for as long as the code is the same (pagekit.memo)
def _needs(code: tuple[tuple[str, bool], ...]) -> list[list[int]]:
    found = [uses(text) for text, _ in code]
    in_program = [runs for _, runs in code]
    fixed = set().union(*(_not_objects(text) for text, _ in code)) if code else set()
    # a call to a function that names a file works on that file (`save_checkpoint(...)`)
    files_of = {node.name: _files(node) for text, _ in code for node in ast.parse(text).body
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _files(node)}
    found = [Uses(u.binds, u.free, u.later, u.loads, u.touches.union(
        *(files_of[f] for f in u.touches if f in files_of))) for u in found]
    result = []
    for i in range(len(code)):
        # a demand: name n is read at block p. The nearest earlier block that binds n meets it,
        # with the blocks between that work on n (`model.train()`); a block that uses a module or
        # a function (`torch.manual_seed`, `fit(...)`) does not change it and is not needed for it
        demands = [(n, i) for n in found[i].free | found[i].later]
        seen, chosen = set(), set()
        while demands:
            name, at = demands.pop()
            if (name, at) in seen:
                continue
            seen.add((name, at))
            for j in range(at - 1, -1, -1):
                if not in_program[j]:
                    continue
                binds = name in found[j].binds
                if binds or (name not in fixed and _works_on(found[j], name)):
                    if j not in chosen:
                        chosen.add(j)
                        demands += [(n, j) for n in found[j].free] + [(n, i) for n in found[j].later]
                    if binds:
                        break
        result.append(sorted(chosen))
    return result


def program(blocks: list[Block], index: int, chosen: list[int], lang: str = "en") -> str:
    """The runnable program of Python block `index`: the chosen blocks, then it, as one file."""
    code = python_blocks(blocks)
    parts = [code[j] for j in chosen] + [code[index]]
    text = join_code([script_code(b, lang=lang) or block_code(b, lang) for b in parts])
    if any(b.mark("multiprocess") for b in parts):
        text = spawn_safe(text)
    return text.rstrip("\n") + "\n"


def programs(blocks: list[Block], lang: str = "en") -> list[tuple[list[int], str]]:
    """Each Python block's (needed blocks, runnable program)."""
    return [(list(chosen), program(blocks, i, chosen, lang)) for i, chosen in enumerate(needs(blocks))]
