"""`leed-app`: a local browser page (Gradio) on the same `leed_runtime` path as `leed-run`.

`leed_app.jobs` is the work (no Gradio); `leed_app.app` builds the page; `leed_app.cli` serves it.
"""
