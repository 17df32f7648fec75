"""`leed-eval`: how well a trained run (or its ONNX export) edits expressions, by two protocols.

- exact (`run.run_eval`): held-out subjects whose every edit has a ground truth (paper Sec. 4,
  Tables 1-2, Figs. 3-5, 7, 11). Each chosen input I_A of a held-out subject is edited toward
  every other expression b, with a reference R_B of *another* subject showing b (same camera
  angle when there is one); the ground truth is I_A's subject with expression b at I_A's angle
  and gaze. Combinations without that image (RaFD's gaps) are skipped and counted. Everything
  is deterministic for `EvalConfig.seed`. Expression labels are read here, never in training.
- real (`real.run_real_eval`): real people the model never saw, judged by networks it was not
  trained with (fer, dlib) against each person's own photos of the target expression.

Modules: `config` (EvalConfig), `data` (images, pairs), `editors` (the models), `metrics`,
`figures`, `report` (report.md), `run` (the exact protocol), `real` (the real protocol), `cli`.
"""
