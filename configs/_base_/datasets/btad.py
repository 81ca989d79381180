# BTAD (BTAD), one category per run (tools/train.py --category overrides it).
# Same loaders, pipelines and evaluator as mvtec.py; only the dataset differs.
_base_ = "./mvtec.py"

dataset_type = "BTAD"
data_root = "data/btad"
category = "01"

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, category=category))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, category=category))
val_dataloader = test_dataloader
