# MVTec AD at the input most papers use: resized to 256 px, centre-cropped to 224.
_base_ = "./mvtec.py"

image_size = 256
crop_size = 224

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="CenterCrop", size=crop_size),
    dict(type="PackAnomalyInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="CenterCrop", size=crop_size),
    dict(type="PackAnomalyInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
