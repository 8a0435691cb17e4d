"""The CNN and its pure apply function, the one model function used everywhere."""

from __future__ import annotations

from typing import Any, Callable, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from digitrec_jax.config import ModelConfig

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
# Statistics of the MNIST training set, in [0, 1] pixel units.
_MNIST_MEAN = 0.1307
_MNIST_STD = 0.3081

Params = Any


class ApplyFn(Protocol):
  def __call__(self, params: Params, images: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array: ...


def normalize(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] or float [0, 1] images -> standardized float32."""
  x = images.astype(jnp.float32)
  if images.dtype == jnp.uint8:
    x = x / 255.0
  return (x - _MNIST_MEAN) / _MNIST_STD


class CNN(nn.Module):
  """Blocks of 3x3 conv-ReLU layers, each ending in 2x2 pooling, then one hidden dense layer; returns logits."""

  conv_features: tuple[int, ...] = ModelConfig.conv_features
  convs_per_block: int = ModelConfig.convs_per_block
  dense_features: int = ModelConfig.dense_features
  dropout_rate: float = ModelConfig.dropout_rate
  pool: str = ModelConfig.pool
  batch_norm: bool = ModelConfig.batch_norm

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x = normalize(images)
    pool = nn.max_pool if self.pool == 'max' else nn.avg_pool

    def activate(x):
      # Batch norm replaces the layer's bias; in training it normalizes with the batch's statistics
      # and updates the running averages that inference uses.
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      return nn.relu(x)

    for features in self.conv_features:
      for _ in range(self.convs_per_block):
        x = activate(nn.Conv(features, (3, 3), use_bias=not self.batch_norm)(x))
      x = pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = activate(nn.Dense(self.dense_features, use_bias=not self.batch_norm)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(NUM_CLASSES)(x)

  @classmethod
  def from_config(cls, config: ModelConfig) -> 'CNN':
    return cls(conv_features=config.conv_features, convs_per_block=config.convs_per_block,
               dense_features=config.dense_features, dropout_rate=config.dropout_rate, pool=config.pool,
               batch_norm=config.batch_norm)


class Apply:
  """The pure function `apply(params, images) -> logits` of `model`, plus its training mode.

  `params` is the model's one pytree of weights: Flax's 'params' collection, or, with batch norm,
  `{'params': ..., 'batch_stats': ...}`, so the statistics travel with the weights everywhere.
  """

  def __init__(self, model: CNN):
    self.model = model

  def _variables(self, params: Params) -> dict[str, Any]:
    return params if self.model.batch_norm else {'params': params}

  def __call__(self, params: Params, images: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    """Logits [B, 10]; inference unless `dropout_rng` is given (then dropout is on, batch norm is not)."""
    if dropout_rng is None:
      return self.model.apply(self._variables(params), images)
    return self.model.apply(self._variables(params), images, train=True, rngs={'dropout': dropout_rng})

  def train(self, params: Params, images: jax.Array, dropout_rng: jax.Array) -> tuple[jax.Array, Params]:
    """Training mode: (logits, params with the batch-norm running statistics updated by this batch).

    Without batch norm the params come back unchanged.
    """
    if not self.model.batch_norm:
      return self(params, images, dropout_rng), params
    logits, updates = self.model.apply(params, images, train=True, rngs={'dropout': dropout_rng},
                                       mutable=['batch_stats'])
    return logits, {**params, 'batch_stats': updates['batch_stats']}

  def with_statistics(self, params: Params, trained: Params) -> Params:
    """`params` (e.g. after an optimizer update) with the running statistics of `trained`, the
    second output of `train`. The statistics are not learned by gradient: theirs is zero."""
    return {**params, 'batch_stats': trained['batch_stats']} if self.model.batch_norm else params


def make_apply_fn(model: CNN) -> Apply:
  """The pure `apply(params, images) -> logits` of `model` (see `Apply`)."""
  return Apply(model)


def init_params(model: CNN, key: jax.Array) -> Params:
  """Fresh parameters for `model`: the 'params' collection, with 'batch_stats' beside it under batch norm."""
  variables = model.init(key, jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))
  return dict(variables) if model.batch_norm else variables['params']


def predict_proba(apply_fn: Callable[..., jax.Array], params: Params, images: jax.Array) -> jax.Array:
  """Class probabilities [B, NUM_CLASSES] from the pure apply function."""
  return jax.nn.softmax(apply_fn(params, images), axis=-1)
