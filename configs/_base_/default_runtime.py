# Runtime shared by every adtool config.
default_scope = "adtool"
runner_type = "AnomalyRunner"

default_hooks = dict(
    runtime_info=dict(type="RuntimeInfoHook"),
    timer=dict(type="IterTimerHook"),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=1),
)
custom_hooks = [dict(type="RichProgressHook")]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    # Distributed runs (--launcher pytorch|slurm): the backend is nccl with CUDA and gloo
    # without (adtool.engine.dist); set backend here to force one. The timeout (s) covers a
    # memory bank fitted by the main process alone while the other ranks wait.
    dist_cfg=dict(timeout=3600),
)
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="Visualizer", vis_backends=vis_backends)
log_processor = dict(by_epoch=True)
log_level = "WARNING"

randomness = dict(seed=0, deterministic=False)
load_from = None
resume = False
