"""The CNN and its pure apply function, the one model function used everywhere."""

from __future__ import annotations

from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from digitrec_jax.config import ModelConfig

NUM_CLASSES = 10
# What `Predictor.predict` returns for an input that is not a digit the model can name.
NOT_A_DIGIT = -1
IMAGE_SHAPE = (28, 28, 1)
# Statistics of the MNIST training set, in [0, 1] pixel units.
_MNIST_MEAN = 0.1307
_MNIST_STD = 0.3081

# {'params': weights, 'batch_stats': running statistics}; 'batch_stats' is {} without batch norm.
Variables = dict[str, Any]


class ApplyFn(Protocol):
  def __call__(self, variables: Variables, images: jax.Array) -> jax.Array: ...


def normalize(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] or float [0, 1] images -> standardized float32."""
  x = images.astype(jnp.float32)
  if images.dtype == jnp.uint8:
    x = x / 255.0
  return (x - _MNIST_MEAN) / _MNIST_STD


class CNN(nn.Module):
  """Blocks of conv-ReLU layers (3x3; the first conv `first_kernel` square) on the image less `crop` pixels
  on each side, each block halving it by 2x2 pooling or a stride-2 last conv, then one hidden dense layer;
  returns logits."""

  conv_features: tuple[int, ...] = ModelConfig.conv_features
  convs_per_block: int = ModelConfig.convs_per_block
  dense_features: int = ModelConfig.dense_features
  dropout_rate: float = ModelConfig.dropout_rate
  pool: str = ModelConfig.pool
  first_kernel: int = ModelConfig.first_kernel
  batch_norm: bool = ModelConfig.batch_norm
  non_digit_class: bool = ModelConfig.non_digit_class
  crop: int = ModelConfig.crop

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x = normalize(images)
    if self.crop:
      x = x[:, self.crop:-self.crop, self.crop:-self.crop]
    pool = nn.max_pool if self.pool == 'max' else nn.avg_pool

    def activate(x):
      # Batch norm replaces the layer's bias; in training it normalizes with the batch's statistics
      # and updates the running averages that inference uses.
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      return nn.relu(x)

    first = True
    for features in self.conv_features:
      for i in range(self.convs_per_block):
        k = self.first_kernel if first else 3
        stride = 2 if self.pool == 'stride' and i == self.convs_per_block - 1 else 1
        x = activate(nn.Conv(features, (k, k), strides=(stride, stride), use_bias=not self.batch_norm)(x))
        first = False
      if self.pool != 'stride':
        x = pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = activate(nn.Dense(self.dense_features, use_bias=not self.batch_norm)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(NUM_CLASSES + self.non_digit_class)(x)

  @classmethod
  def from_config(cls, config: ModelConfig) -> 'CNN':
    return cls(conv_features=config.conv_features, convs_per_block=config.convs_per_block,
               dense_features=config.dense_features, dropout_rate=config.dropout_rate, pool=config.pool,
               first_kernel=config.first_kernel, batch_norm=config.batch_norm,
               non_digit_class=config.non_digit_class, crop=config.crop)


class Apply:
  """The pure function `apply(variables, images) -> logits` of `model`, plus its training mode."""

  def __init__(self, model: CNN):
    self.model = model

  def __call__(self, variables: Variables, images: jax.Array) -> jax.Array:
    """Inference logits [B, 10] (or [B, 11], the last for "not a digit"): dropout off, batch norm from the
    running statistics."""
    return self.model.apply(variables, images)

  def train(self, variables: Variables, images: jax.Array, dropout_rng: jax.Array) -> tuple[jax.Array, Any]:
    """Training mode: (logits, the batch-norm running statistics updated by this batch)."""
    logits, updates = self.model.apply(variables, images, train=True, rngs={'dropout': dropout_rng},
                                       mutable=['batch_stats'])
    return logits, updates.get('batch_stats', {})

  # Equal models give equal apply functions, so jit caches keyed on them are shared.
  def __eq__(self, other):
    return isinstance(other, Apply) and other.model == self.model

  def __hash__(self):
    return hash(self.model)


def make_apply_fn(model: CNN) -> Apply:
  """The pure `apply(variables, images) -> logits` of `model` (see `Apply`)."""
  return Apply(model)


def init_variables(model: CNN, key: jax.Array) -> Variables:
  """Fresh `{'params', 'batch_stats'}` for `model`; 'batch_stats' is {} without batch norm."""
  variables = model.init(key, jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))
  return {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}


def calibrated(logits: jax.Array, temperature: float | jax.Array = 1.0) -> tuple[jax.Array, jax.Array]:
  """(digit probabilities [B, 10], digit score [B]) from logits [B, 10] or [B, 11] at a temperature.

  The probabilities are those of the ten digits given that the input is a digit. The score is the
  probability that the input is a digit at all (1 - p(11th class)) for a model with a non-digit output,
  else the top digit probability (the max-softmax baseline).
  """
  scaled = logits / temperature
  probs = jax.nn.softmax(scaled[..., :NUM_CLASSES], axis=-1)
  if logits.shape[-1] > NUM_CLASSES:
    score = 1.0 - jax.nn.softmax(scaled, axis=-1)[..., NUM_CLASSES]
  else:
    score = jnp.max(probs, axis=-1)
  return probs, score


def decide(probs: jax.Array, score: jax.Array, threshold: float | jax.Array) -> jax.Array:
  """The digit [B] of `calibrated`'s outputs, or NOT_A_DIGIT where the digit score is below `threshold`."""
  return jnp.where(score >= threshold, jnp.argmax(probs, axis=-1), NOT_A_DIGIT).astype(jnp.int32)


def predict_proba(apply_fn: ApplyFn, variables: Variables, images: jax.Array,
                  temperature: float | jax.Array = 1.0) -> jax.Array:
  """Calibrated digit probabilities [B, NUM_CLASSES] from the pure apply function (see `calibrated`)."""
  return calibrated(apply_fn(variables, images), temperature)[0]
