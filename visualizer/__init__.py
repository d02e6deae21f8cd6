"""The model visualizer: a Flask app showing a model's layers in torch and Flax side by side.

`python -m visualizer` serves it on http://127.0.0.1:5000/; `python -m visualizer --export
DIR` writes the same pages as self-contained HTML files. Importing this package imports
neither torch nor JAX (nor Flask): a model page imports its framework when it needs it.
"""
