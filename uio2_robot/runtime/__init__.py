"""The torch-free, MuJoCo-free runtime a robot PC needs to run an exported policy.

- ``manifest``: the deploy bundle's manifest, hashes and loading checks (``load_bundle``);
- ``runner``: onnxruntime sessions over a bundle's graphs (``BundleRunner``);
- ``guidance``: scene-guided placement as the lookup tables the exported decoder applies.

Imports numpy, onnxruntime and the numpy-only ``uio2_robot.tokenize`` / ``contracts``; a test
(tests/test_layering.py) keeps torch and mujoco out of it.
"""
