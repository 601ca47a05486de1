# 2 processes on one machine; on a GPU machine use --nproc_per_node=gpu (one per GPU)
torchrun --standalone --nproc_per_node=2 snippets/ddp_train.py
