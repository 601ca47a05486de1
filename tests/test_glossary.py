"""The glossary (docs/{zh,en}/glossary.md): one Chinese term per concept, used on every Chinese page.

Each entry lists variants that would mean the same thing and are unambiguous to detect; a Chinese
page (prose, generated tables and the lab notebooks' text) must not use them. What cannot be told
apart mechanically (小批量 written where a micro-batch is meant) is left to review.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "docs" / "zh"

# English term: (the chosen Chinese term, a pattern of rejected variants)
GLOSSARY = {
    "barrier": ("屏障", r"栅栏"),
    "batch": ("批量", r"批次"),
    "micro-batch": ("微批量", r"微批(?!量)"),
    "class index": ("类别下标", r"类别索引|类别序号"),
    "checkpoint": ("检查点", r"存档点|检测点"),
    "DataParallel": ("数据并行", r"数据平行|资料并行"),
    "DDP (DistributedDataParallel)": ("分布式数据并行", r"分布式并行(?!训练)|分散式"),
    "gradient accumulation": ("梯度累加", r"梯度累积"),
    "gradient clipping": ("梯度裁剪", r"梯度截断|梯度剪裁|梯度修剪"),
    "leaf tensor": ("叶子张量", r"叶子?节点|叶张量"),
    "learning-rate scheduler": ("学习率调度器", r"学习率调整器|学习率计划器|学习率调度程序"),
    "linear layer": ("全连接层", r"(?<!非)线性层"),
    "load": ("加载", r"载入|装载"),
    "mixed precision": ("混合精度", r"混精度|混合精确度"),
    "named tuple": ("具名元组", r"命名元组"),
    "register (a submodule, parameter or buffer)": ("注册", r"登记"),
    "running mean, running statistics": ("滑动均值、滑动统计量", r"(?:累计|运行)的?(?:均值|方差|统计量)"),
    "state_dict": ("state_dict", r"状态字典"),
    "stride": ("步幅", r"步长"),
    "mask": ("掩码", r"遮罩|蒙版"),
    "sampler": ("采样器", r"取样器|抽样器"),
    "meta device": ("meta 设备", r"元设备"),
    "memory map (mmap)": ("内存映射", r"记忆体映射|存储映射"),
    "resident memory (RSS)": ("常驻内存", r"驻留内存|常驻集"),
    "shard": ("分片", r"碎片|分块文件"),
    "ahead-of-time compilation (AOTInductor)": ("预先编译", r"提前编译|预编译"),
    "graph break": ("图中断", r"图断裂|断图|图打断"),
    "loss scaling": ("损失缩放", r"损失放缩|损失比例缩放"),
    "recompilation": ("重新编译", r"重编译"),
    "activation": ("激活值", r"激活量|激励值"),
    "activation checkpointing": ("激活检查点", r"梯度检查点|重计算检查点|激活值检查点"),
    "asynchronous execution": ("异步执行", r"非同步执行|异步运行"),
    "profiler": ("性能分析器", r"剖析器|(?<!性能)分析器|性能剖析"),
    "warm-up": ("预热", r"热身"),
}


@functools.cache  # read once for all the tests that search it
def chinese_texts() -> dict[str, str]:
    """Every text a reader of the Chinese site reads: pages, generated fragments, lab notebooks' prose."""
    texts = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted(ZH.rglob("*.md"))}
    for nb in sorted(ZH.rglob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        texts[str(nb.relative_to(ROOT))] = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for fragment in sorted((ROOT / "generated").glob("*zh*.md")):
        texts[str(fragment.relative_to(ROOT))] = fragment.read_text(encoding="utf-8")
    return texts


@functools.cache  # read once for all the tests that search it
def chinese_comments() -> dict[str, str]:
    """The Chinese of the code comments the zh pages, notebooks and scripts show."""
    return {str(p.relative_to(ROOT)): "\n".join(str(v) for v in (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).values())
            for p in sorted((ROOT / "snippets").glob("*.zh.yml"))}


def glossary_rows(lang: str) -> dict[str, str]:
    text = (ROOT / "docs" / lang / "glossary.md").read_text(encoding="utf-8")
    return {m[1].strip(): m[2].strip() for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \|", text, re.M)}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_glossary_page_lists_each_chosen_term(lang):
    rows = glossary_rows(lang)
    for english, (chinese, _) in GLOSSARY.items():
        assert rows.get(english) == chinese, f"docs/{lang}/glossary.md: {english} should be {chinese}"


@pytest.mark.parametrize("english", GLOSSARY)
def test_chinese_pages_use_only_the_chosen_term(english):
    chosen, rejected = GLOSSARY[english]
    found = [f"{where}: {m[0]!r} in …{text[max(m.start() - 12, 0):m.end() + 12]}…"
             for where, text in {**chinese_texts(), **chinese_comments()}.items()
             for m in re.finditer(rejected, text)]
    assert found == [], f"{english} is {chosen} on Chinese pages; found:\n  " + "\n  ".join(found)


def test_rejected_variants_are_caught():
    assert re.search(GLOSSARY["micro-batch"][1], "切成微批再累加")
    assert not re.search(GLOSSARY["micro-batch"][1], "切成微批量再累加")
    assert re.search(GLOSSARY["load"][1], "把权重载入模型")
    assert re.search(GLOSSARY["linear layer"][1], "把残差块里的线性层置零")
    assert not re.search(GLOSSARY["linear layer"][1], "非线性层")
    assert re.search(GLOSSARY["running mean, running statistics"][1], "评估时改用这两个累计的统计量")
    assert re.search(GLOSSARY["running mean, running statistics"][1], "使用运行统计量，不更新")


# English terms that have a chosen Chinese term: in Chinese prose the Chinese one is written.
# An English gloss in parentheses right after the Chinese term (一轮（epoch）) is allowed.
ENGLISH_IN_ZH = {
    "epoch": "轮", "batch": "批量", "buffer": "缓冲区", "mini-batch": "小批量", "micro-batch": "微批量",
    "checkpoint": "检查点", "optimizer": "优化器", "pooling": "池化", "stride": "步幅",
    "loss function": "损失函数", "mixed precision": "混合精度", "gradient clipping": "梯度裁剪",
    "gradient accumulation": "梯度累加", "learning-rate scheduler": "学习率调度器",
    "leaf tensor": "叶子张量", "named tuple": "具名元组", "autograd": "自动求导",
    "profiler": "性能分析器", "activation checkpointing": "激活检查点", "warm-up": "预热",
}


def chinese_prose(text: str) -> str:
    """What a reader reads as Chinese sentences: no code, no outputs, no links' targets."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)          # front matter
    text = re.sub(r"^( *)(```|~~~).*?^\1\2", "", text, flags=re.S | re.M)  # fenced blocks
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]+`", "", text)                               # code spans
    text = re.sub(r"\]\([^)]*\)", "]", text)                             # link targets
    text = re.sub(r"（[A-Za-z][A-Za-z -]*）", "", text)                  # a gloss: 轮（epoch）
    return text


def test_chinese_prose_uses_the_chinese_term_not_the_english_one():
    found = []
    for where, text in chinese_texts().items():
        if where.endswith("glossary.md"):
            continue
        prose = chinese_prose(text)
        for english, chinese in ENGLISH_IN_ZH.items():
            for m in re.finditer(rf"(?<![\w.-]){re.escape(english)}s?(?![\w-]|\.\w)", prose, re.I):
                found.append(f"{where}: {english!r} (write {chinese}) in …{prose[max(m.start() - 15, 0):m.end() + 15]}…")
    assert found == [], "\n  ".join(["English terms in Chinese prose:", *found])


def test_english_in_zh_rule_catches_and_allows():
    prose = chinese_prose("每个 epoch 调用一次 `scheduler.step()`；一轮（epoch）是一遍；`set_epoch` 与 set_epoch")
    hits = re.findall(r"(?<![\w-])epochs?(?![\w-])", prose)
    assert hits == ["epoch"]
    for english, chinese in ENGLISH_IN_ZH.items():
        assert glossary_rows("zh").get(english, chinese) == chinese
