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

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x = normalize(images)
    pool = nn.max_pool if self.pool == 'max' else nn.avg_pool
    for features in self.conv_features:
      for _ in range(self.convs_per_block):
        x = nn.relu(nn.Conv(features, (3, 3))(x))
      x = pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.dense_features)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(NUM_CLASSES)(x)

  @classmethod
  def from_config(cls, config: ModelConfig) -> 'CNN':
    return cls(conv_features=config.conv_features, convs_per_block=config.convs_per_block,
               dense_features=config.dense_features, dropout_rate=config.dropout_rate, pool=config.pool)


def make_apply_fn(model: CNN) -> ApplyFn:
  """The pure function `apply(params, images) -> logits` of `model`.

  With `dropout_rng` it runs in training mode (dropout on); without, it is inference.
  """

  def apply(params: Params, images: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    if dropout_rng is None:
      return model.apply({'params': params}, images)
    return model.apply({'params': params}, images, train=True, rngs={'dropout': dropout_rng})

  return apply


def init_params(model: CNN, key: jax.Array) -> Params:
  """Fresh parameters for `model`."""
  return model.init(key, jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))['params']


def predict_proba(apply_fn: Callable[..., jax.Array], params: Params, images: jax.Array) -> jax.Array:
  """Class probabilities [B, NUM_CLASSES] from the pure apply function."""
  return jax.nn.softmax(apply_fn(params, images), axis=-1)
