"""`leed-bench`: how fast an export runs, a real `leed-run` goes, and stage 2 trains.

- `infer.bench_infer`: each graph of the per-frame chain (neutralizer -> encoder -> interpolator
  -> decoder), the four chained, and the fused `edit` graph, through a runtime backend with its
  own options (threads, CUDA graphs, NHWC, FP16 graphs), per batch size: warm-up, then many
  calls (GPU backends synchronise their stream in every call), median and p99. FLOPs are
  counted from the ONNX graph at that batch; on a GPU also the fraction of its peak.
  `infer.bench_torch` times the same chain in PyTorch eager on the run's weights.
- `video.bench_video`: `leed_runtime.run.run` on a real video, its per-stage split.
- `train.bench_train`: the real stage-2 step (`stage_leed.leed_step`) on random data of the
  preset's shapes: images/s and peak memory.
- `common`: the machine record, timing, FLOP counting and rates all three share; `cli`: the command.
"""
