"""digitrec_jax: handwritten-digit recognition with a pure JAX/Flax model.

Every name is imported on first use, so `import digitrec_jax` and the command-line entry points start
without loading JAX: a Ctrl-C during the heavy imports then reaches the command's own handler.
"""

_EXPORTS = {
    'CheckpointError': 'checkpoint',
    'ModelConfig': 'config', 'TrainConfig': 'config',
    'DataError': 'data', 'load_mnist': 'data',
    'CNN': 'model', 'IMAGE_SHAPE': 'model', 'NOT_A_DIGIT': 'model', 'NUM_CLASSES': 'model', 'make_apply_fn': 'model',
    'EmptyDrawingError': 'preprocess', 'preprocess_drawing': 'preprocess', 'render_strokes': 'preprocess',
    'TrainState': 'training', 'create_train_state': 'training', 'train_and_evaluate': 'training',
    'train_step': 'training',
    'Prediction': 'predict', 'Predictor': 'predict', 'input_saliency': 'predict', 'load_model': 'predict',
    'load_predictor': 'predict', 'load_variables': 'predict',
    'DigitReading': 'numbers', 'NumberReading': 'numbers', 'read_number': 'numbers',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name in _EXPORTS:
    import importlib
    return getattr(importlib.import_module(f'digitrec_jax.{_EXPORTS[name]}'), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
