# The demo: PatchCore + EfficientNet-Lite0 on the generated sample data
# (python tools/make_sample_data.py writes data/sample).
_base_ = "./patchcore_effnetlite0_mvtec.py"

data_root = "data/sample"
category = "disk"
train_dataloader = dict(dataset=dict(type="SampleDataset", data_root=data_root, category=category))
test_dataloader = dict(dataset=dict(type="SampleDataset", data_root=data_root, category=category))
