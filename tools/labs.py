"""The two lab notebooks, cell by cell (`make notebooks` writes docs/{zh,en}/labs/<lab>.ipynb).

A prose cell is {"zh": ..., "en": ...}; a code cell is a list of snippet sections,
expanded exactly as the chapter pages expand them. No code is written here: code the
chapters do not show lives in snippets/labs.py.
"""
from __future__ import annotations

TASK1 = [
    {"zh": """
# Task1 实验：从图片文件夹到训练好的 CNN

这个 notebook 把 Task1 各章的代码串成一次完整的训练：把 scikit-learn 自带的 1797 张真实手写数字写成
PNG 文件夹，用 `ImageFolder` 读进来，搭一个小 CNN 并按[参数初始化](../../init/)一章的方式初始化，
训练、评估，最后画出损失曲线和一些预测。

每个代码单元都来自对应章节展示并测试过的代码（仓库里的 `snippets/`）。网站每次构建都会把它从上到下
执行一遍，所以单元格下面的输出都是真实运行结果。装好项目的 `requirements.txt` 就能直接运行；
它会在当前目录写入 `digits/` 文件夹和两张 PNG 图，在 CPU 上不到一分钟就能跑完。
""", "en": """
# Task1 lab: from an image folder to a trained CNN

This notebook joins the code of the Task1 chapters into one complete run: it writes the 1,797 real
handwritten digits that ship with scikit-learn as a folder of PNG files, reads them back with
`ImageFolder`, builds a small CNN initialised as in [Initialisation](../../init/), trains and evaluates
it, and finally draws the loss curves and some predictions.

Every code cell is code that a chapter shows and tests (`snippets/` in the repository). The site runs
this notebook top to bottom at every build, so the outputs under the cells are real. With the project's
`requirements.txt` installed it runs as it is. It writes a `digits/` folder and two PNG pictures into the
working folder, and finishes in under a minute on a CPU.
"""},
    {"zh": """
## 1. 数据：用 ImageFolder 读取图片文件夹

来自[数据加载](../../data/)一章：`write_digit_folders` 按“每个类别一个子文件夹”的布局写出训练集和验证集
（按类别分层抽样），`data_transform` 把图片转成单通道、归一化到 [-1, 1] 的张量，`open_image_folder`
在交给 `datasets.ImageFolder` 之前先检查目录结构，出错时给出清楚的提示。
""", "en": """
## 1. Data: an image folder read with ImageFolder

From [Loading data](../../data/): `write_digit_folders` writes a training and a validation split in the
one-folder-per-class layout (a stratified split), `data_transform` turns each picture into a
one-channel tensor normalised to [-1, 1], and `open_image_folder` checks the layout before handing the
folder to `datasets.ImageFolder`, with a clear message when something is wrong.
"""},
    ["snippets/data.py:imports_dataset", "snippets/data.py:imports_folders", "snippets/data.py:imports_transform",
     "snippets/data.py:imports_open", "snippets/data.py:write_digit_folders", "snippets/data.py:transform",
     "snippets/data.py:open_image_folder"],
    {"zh": """
这里用 `size=8`：保留数字原本的 8×8 分辨率，正好是下面这个 CNN 的输入尺寸。`ImageFolder` 在每一轮都会重新打开、
转换每一个文件；这份数据很小，变换里也没有随机的数据增强，所以 `in_memory` 把它完整读一遍，存成两个张量，
之后每轮直接取用。数据集很大、或者每次读取都要做随机增强时，就直接把 `ImageFolder` 交给 `DataLoader`。
训练集的 `DataLoader` 用带种子的 `torch.Generator` 打乱，每次运行顺序都一样。
""", "en": """
`size=8` keeps the digits at their own 8×8 resolution, the input size of the CNN below. `ImageFolder` opens
and transforms every file again in every epoch; this dataset is small and its transform has no random
augmentation, so `in_memory` reads it once into two tensors that every epoch reuses. With a large dataset,
or random augmentation on each read, hand the `ImageFolder` to the `DataLoader` directly. The training
`DataLoader` shuffles with a seeded `torch.Generator`, so every run sees the same order.
"""},
    ["snippets/labs.py:imports", "snippets/labs.py:in_memory", "snippets/labs.py:task1_data"],
    {"zh": """
## 2. 模型与初始化

模型是[训练循环](../../training/)一章的 `DigitCNN`：两层卷积、一层最大池化，再接 Dropout 和两层全连接。
`model.apply(init_weights)` 对每个子模块调用一次[参数初始化](../../init/)一章的 `init_weights`：
卷积层用 `xavier_normal_`、偏置设为 0.3，全连接层用均值 0、标准差 0.1 的正态分布。
`pick_device` 有 GPU 时选 CUDA，否则用 CPU。
""", "en": """
## 2. Model and initialisation

The model is `DigitCNN` from [The training loop](../../training/): two convolutions and a max-pool,
then dropout and two linear layers. `model.apply(init_weights)` calls the `init_weights` of
[Initialisation](../../init/) on every submodule: `xavier_normal_` and a bias of 0.3 for the
convolutions, a normal distribution with mean 0 and standard deviation 0.1 for the linear layers.
`pick_device` picks CUDA when there is a GPU and the CPU otherwise.
"""},
    ["snippets/training.py:imports", "snippets/environment.py:pick_device", "snippets/training.py:seed_everything",
     "snippets/training.py:model", "snippets/init.py:imports", "snippets/init.py:init_weights"],
    ["snippets/labs.py:task1_model"],
    {"zh": """
## 3. 训练

`fit` 每轮先用 `train_one_epoch` 训练（`model.train()`，清零梯度 → 前向 → 损失 → 反向 → 更新），
再用 `evaluate` 在验证集上评估（`model.eval()` 加 `torch.no_grad()`），最后把模型恢复到验证准确率最高的那一轮。
""", "en": """
## 3. Training

Each epoch, `fit` trains with `train_one_epoch` (`model.train()`, then zero the gradients → forward →
loss → backward → step) and evaluates on the validation split with `evaluate` (`model.eval()` under
`torch.no_grad()`); at the end the model gets back the weights of its best validation epoch.
"""},
    ["snippets/training.py:check_labels", "snippets/training.py:train_one_epoch", "snippets/training.py:evaluate",
     "snippets/training.py:check_fit_args", "snippets/training.py:fit"],
    ["snippets/labs.py:task1_train"],
    {"zh": """
## 4. 评估

`fit` 结束时模型已是最好的那一轮，所以 `evaluate` 给出的就是上面表格里最高的验证准确率。
`predict` 收集每张验证图片的预测类别，方便逐类统计。
""", "en": """
## 4. Evaluation

After `fit` the model holds its best epoch's weights, so `evaluate` reports the highest validation
accuracy of the table above. `predict` collects the predicted class of every validation image, which
gives the count per digit.
"""},
    ["snippets/labs.py:predict", "snippets/labs.py:task1_evaluate"],
    {"zh": """
## 5. 损失与准确率曲线

`plot_history` 把每轮的训练损失、验证损失和验证准确率画进一张 PNG，星号标出被保留的那一轮。
""", "en": """
## 5. Loss and accuracy curves

`plot_history` draws the training loss, the validation loss and the validation accuracy of each epoch
into a PNG file; the star marks the epoch that was kept.
"""},
    ["snippets/training.py:plot_history", "snippets/labs.py:task1_curves"],
    {"zh": """
## 6. 看看模型的预测

先列出模型在验证集上答错的全部图片（真实类别->预测类别），再画一张图：前两行是从验证集里均匀取的 16 张（覆盖全部十个数字），
第三行是答错的前 8 张。标题是预测的类别；答错的用红色，括号里是真实类别。`to_numpy_image` 来自[数据加载](../../data/)一章，
负责撤销归一化并把 (C, H, W) 转成 `imshow` 需要的布局。
""", "en": """
## 6. The model's predictions

First the list of every validation image the model gets wrong (true->predicted), then a picture: two rows of
16 validation images spread over all ten digits, and a row with the first 8 mistakes. Each title is the
predicted class; a wrong one is red, with the true class in brackets. `to_numpy_image`, from
[Loading data](../../data/), undoes the normalisation and turns (C, H, W) into the layout `imshow` wants.
"""},
    ["snippets/data.py:show", "snippets/labs.py:predictions_grid", "snippets/labs.py:task1_predictions"],
    {"zh": """
## 接下来可以试试

- 把 `write_digit_folders` 的 `size` 改成 32，同时调整 `DigitCNN` 里全连接层的输入尺寸（提示：池化后是 32×16×16）；
- 不调用 `init_weights`，比较前几轮的损失；
- 把 `epochs` 调大，观察验证损失何时不再下降。
""", "en": """
## Things to try

- Set `size=32` in `write_digit_folders` and change the input size of `DigitCNN`'s first linear layer
  to match (hint: after pooling it is 32×16×16).
- Leave out `init_weights` and compare the losses of the first epochs.
- Train for more epochs and watch when the validation loss stops falling.
"""},
]

TASK3 = [
    {"zh": """
# Task3 实验：容器、DataParallel、保存与加载

这个 notebook 把 Task3 各章连成一条线：用两种容器写同一个模型，在真实手写数字上训练，
包进 `nn.DataParallel`，保存，再在 CPU 上把权重加载一个从未包装过的普通模型，确认预测完全相同。

每个代码单元都来自对应章节展示并测试过的代码。网站每次构建都会把它从上到下执行一遍，单元格下面的输出都是真实结果。
装好项目的 `requirements.txt` 即可运行（有没有 GPU 都行），它会在当前目录写入两个 `.pt` 文件。
""", "en": """
# Task3 lab: containers, DataParallel, saving and loading

This notebook joins the Task3 chapters into one line: one model written with two containers, trained on
real handwritten digits, wrapped in `nn.DataParallel`, saved, and loaded on the CPU into a plain model
that was never wrapped, which then makes exactly the same predictions.

Every code cell is code that a chapter shows and tests; the site runs this notebook top to bottom at
every build, so the outputs under the cells are real. It runs with the project's `requirements.txt`
installed, with or without a GPU, and writes two `.pt` files into the working folder.
"""},
    {"zh": """
## 1. 同一个模型，两种写法

来自[模型容器](../../containers/)一章：`make_sequential_named` 用带名字的 `nn.Sequential`，
`MLP` 是 `nn.Module` 子类。state_dict 的键来自子模块的名字，与用哪种容器无关，所以两者的键完全相同，
权重可以直接互相加载。
""", "en": """
## 1. One model, written two ways

From [Model containers](../../containers/): `make_sequential_named` uses a named `nn.Sequential`, `MLP`
is an `nn.Module` subclass. The keys of a state_dict come from the submodules' names, not from the
container, so both have the same keys and their weights load into each other directly.
"""},
    ["snippets/containers.py:imports", "snippets/containers.py:sequential_named", "snippets/containers.py:subclass"],
    ["snippets/labs.py:task3_same_keys"],
    {"zh": """
## 2. 在真实手写数字上训练

`digit_features` 把每张 8×8 的数字展平成 64 个特征；训练循环用[训练循环](../../training/)一章的
`train_one_epoch`，只训练几轮。
""", "en": """
## 2. Training on real handwritten digits

`digit_features` flattens each 8×8 digit into 64 features; the loop is `train_one_epoch` from
[The training loop](../../training/), for a few epochs.
"""},
    ["snippets/training.py:imports", "snippets/environment.py:pick_device", "snippets/training.py:seed_everything",
     "snippets/training.py:check_labels", "snippets/training.py:train_one_epoch",
     "snippets/labs.py:imports", "snippets/labs.py:digit_features", "snippets/labs.py:task3_train"],
    {"zh": """
## 3. 包进 DataParallel

`nn.DataParallel` 把每个批量拆到所有可见的 GPU 上，再把结果收集到第一块卡；没有 GPU 时它直接调用里面的模型。
包装后 `dp.module` 就是原来的模型，而 state_dict 的每个键都多了 `module.` 前缀（见[多卡训练](../../multi-gpu/)）。
""", "en": """
## 3. Wrapped in DataParallel

`nn.DataParallel` splits each batch over the visible GPUs and gathers the results on the first one;
without a GPU it simply calls the model inside. After wrapping, `dp.module` is the original model, and
every key of the wrapper's state_dict starts with `module.` (see [Multi-GPU](../../multi-gpu/)).
"""},
    ["snippets/labs.py:task3_wrap"],
    {"zh": """
## 4. 保存

推荐保存 `dp.module.state_dict()`：文件里的键没有前缀，任何模型都能直接加载。为了对比，也保存一份包装器自己的 state_dict。
""", "en": """
## 4. Saving

Save `dp.module.state_dict()`: its keys carry no prefix, so any copy of the model loads it directly. For
comparison, the wrapper's own state_dict is saved too.
"""},
    ["snippets/labs.py:task3_save"],
    {"zh": """
## 5. 在 CPU 上加载一个普通模型

`map_location="cpu"` 让 GPU 上保存的张量也直接读到 CPU 上（见[保存与加载](../../saving/)），
`weights_only=True` 只接受张量之类的数据，不执行文件里的代码。加载的是 `MLP`，一个从未包装过的子类写法，
预测与包装后的模型完全一致。
""", "en": """
## 5. Loaded into a plain model on the CPU

`map_location="cpu"` reads tensors saved on a GPU straight onto the CPU (see
[Saving & loading](../../saving/)), and `weights_only=True` accepts data such as tensors but runs no code
from the file. The weights go into `MLP`, the subclass version, never wrapped, and its predictions are
exactly those of the wrapped model.
"""},
    ["snippets/labs.py:task3_load"],
    {"zh": """
包装器自己的文件带着 `module.` 前缀，直接加载普通模型会报 `Missing key(s)`。[多卡训练](../../multi-gpu/)一章的
`load_state_dict_flexible` 会在需要时去掉前缀（只去掉开头的 `module.`，不会误伤名字里含 module 的子模块）。
""", "en": """
The wrapper's own file has the `module.` prefix, and a plain model refuses it with `Missing key(s)`.
`load_state_dict_flexible` from [Multi-GPU](../../multi-gpu/) removes the prefix when needed (only a
leading `module.`, so a submodule whose name contains "module" keeps its name).
"""},
    ["snippets/multi_gpu.py:imports", "snippets/multi_gpu.py:load_helper", "snippets/labs.py:task3_load_wrapped"],
    {"zh": """
## 接下来可以试试

- 把 `MLP` 的某个属性改名（例如 `hidden` 改成 `fc1`），看加载时报出的键；
- 在有多块 GPU 的机器上运行，看 `dp` 如何拆分批量，而保存和加载的代码一行都不用改。
""", "en": """
## Things to try

- Rename an attribute of `MLP` (`hidden` to `fc1`, say) and read the keys the load complains about.
- Run it on a machine with several GPUs: `dp` splits each batch over them, and the saving and loading
  code stays exactly the same.
"""},
]

LABS = {"task1": TASK1, "task3": TASK3}
