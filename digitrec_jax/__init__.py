"""digitrec_jax: handwritten-digit recognition with a pure JAX/Flax model."""

from digitrec_jax.checkpoint import CheckpointError
from digitrec_jax.config import ModelConfig, TrainConfig
from digitrec_jax.data import DataError, load_mnist
from digitrec_jax.model import CNN, IMAGE_SHAPE, NUM_CLASSES, make_apply_fn
from digitrec_jax.preprocess import EmptyDrawingError, preprocess_drawing, render_strokes
from digitrec_jax.training import TrainState, create_train_state, train_and_evaluate, train_step

__all__ = [
    'CNN', 'IMAGE_SHAPE', 'NUM_CLASSES', 'CheckpointError', 'DataError', 'EmptyDrawingError', 'ModelConfig',
    'Predictor', 'TrainConfig', 'TrainState', 'create_train_state', 'input_saliency', 'load_mnist', 'load_model',
    'load_predictor', 'load_variables', 'make_apply_fn', 'preprocess_drawing', 'render_strokes',
    'train_and_evaluate', 'train_step',
]

# Imported on first use, so that `python -m digitrec_jax.predict` does not find its own module
# already imported by the package.
_LAZY = {'Predictor', 'input_saliency', 'load_model', 'load_predictor', 'load_variables'}


def __getattr__(name):
  if name in _LAZY:
    from digitrec_jax import predict
    return getattr(predict, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
