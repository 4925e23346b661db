"""ONNX export and the deploy bundle.

Modules (imported individually; this package imports nothing itself so that the torch-free
ones stay torch-free):

- ``manifest``: bundle layout, ``load_bundle`` validation, sha256 model hash (no torch)
- ``runtime``: onnxruntime sessions, checked inputs, greedy constrained decoding (no torch)
- ``variants``: int8 / fp16 graphs from the fp32 export (no torch)
- ``graphs``: the encoder and decoder-step graphs, ``torch.onnx.export(dynamo=True)``
- ``bundle``: ``export_bundle`` (checkpoint -> bundle) and ``convert_bundle`` (fp32 -> int8/fp16)
- ``parity``: torch vs onnxruntime on recorded observations, and in closed loop
- ``command`` / ``config``: the ``uio2-robot export`` command and its schema
- ``random_checkpoint``: a seeded random checkpoint for tests and benchmarks
"""
