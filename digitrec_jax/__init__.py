"""digitrec_jax: handwritten-digit recognition with a pure JAX/Flax model."""

from digitrec_jax.checkpoint import CheckpointError, restore_params
from digitrec_jax.config import ModelConfig, TrainConfig
from digitrec_jax.data import DataError, load_mnist
from digitrec_jax.model import CNN, IMAGE_SHAPE, NUM_CLASSES, make_apply_fn
from digitrec_jax.predict import Predictor, input_saliency, load_model, load_predictor
from digitrec_jax.preprocess import EmptyDrawingError, preprocess_drawing
from digitrec_jax.training import TrainState, create_train_state, train_and_evaluate, train_step

__all__ = [
    'CNN', 'IMAGE_SHAPE', 'NUM_CLASSES', 'CheckpointError', 'DataError', 'EmptyDrawingError', 'ModelConfig',
    'Predictor', 'TrainConfig', 'TrainState', 'create_train_state', 'input_saliency', 'load_mnist', 'load_model',
    'load_predictor',
    'make_apply_fn', 'preprocess_drawing', 'restore_params', 'train_and_evaluate', 'train_step',
]
