"""On-device data augmentation: a random affine warp of each image, inside the jitted train step."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Output pixels are mapped about the centre of the 28x28 frame, where MNIST centres each digit's mass.
_CENTRE = 13.5


def affine_matrices(key: jax.Array, batch: int, *, rotation: float, scale: float, shear: float,
                    shift: float) -> tuple[jax.Array, jax.Array]:
  """Random forward maps (A [B, 2, 2], t [B, 2]) in (row, col) pixel units: out = A (in - c) + c + t.

  Rotation in degrees, scale as a fraction (zoom in [1 - s, 1 + s]), shear as a fraction of a row
  per column, shift in pixels; each drawn uniformly in [-x, x].
  """
  k_rot, k_scale, k_shear, k_shift = jax.random.split(key, 4)
  angle = jax.random.uniform(k_rot, (batch,), minval=-1.0, maxval=1.0) * math.radians(rotation)
  zoom = 1.0 + jax.random.uniform(k_scale, (batch,), minval=-1.0, maxval=1.0) * scale
  sh = jax.random.uniform(k_shear, (batch,), minval=-1.0, maxval=1.0) * shear
  t = jax.random.uniform(k_shift, (batch, 2), minval=-1.0, maxval=1.0) * shift
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  rot = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
  shear_m = jnp.stack([jnp.stack([jnp.ones_like(sh), sh], -1),
                       jnp.stack([jnp.zeros_like(sh), jnp.ones_like(sh)], -1)], -2)
  return zoom[:, None, None] * rot @ shear_m, t


def warp(images: jax.Array, a: jax.Array, t: jax.Array) -> jax.Array:
  """Bilinear warp of images [B, H, W, 1] by out = A (in - c) + c + t; outside pixels are 0.

  Returns float32 in the images' units ([0, 1] for uint8 input).
  """
  b, h, w, _ = images.shape
  x = images[..., 0].astype(jnp.float32)
  if images.dtype == jnp.uint8:
    x = x / 255.0
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing='ij')
  out = jnp.stack([rows, cols], -1).reshape(-1, 2) - _CENTRE  # [HW, 2]
  # The inverse map gives, for every output pixel, where to sample the input.
  src = jnp.einsum('bij,bpj->bpi', jnp.linalg.inv(a), out[None] - t[:, None, :]) + _CENTRE

  def sample(img, coords):
    return jax.scipy.ndimage.map_coordinates(img, [coords[:, 0], coords[:, 1]], order=1, mode='constant', cval=0.0)

  return jax.vmap(sample)(x, src).reshape(b, h, w, 1)


def random_affine(key: jax.Array, images: jax.Array, *, rotation: float = 0.0, scale: float = 0.0,
                  shear: float = 0.0, shift: float = 0.0) -> jax.Array:
  """Each image warped by its own random rotation, zoom, shear and shift (see `affine_matrices`)."""
  a, t = affine_matrices(key, images.shape[0], rotation=rotation, scale=scale, shear=shear, shift=shift)
  return warp(images, a, t)


def random_stroke_width(key: jax.Array, images: jax.Array, amount: float) -> jax.Array:
  """Thicker or thinner strokes: each float image [B, H, W, 1] is blended towards its 3x3 grey dilation
  or erosion, by a fraction drawn uniformly in [-amount / 2, amount] per image (negative: erosion).

  Thinning is drawn from half the range because a full 3x3 erosion wipes out MNIST's 2-3 pixel strokes;
  drawn digits come out thicker more often than thinner.
  """
  alpha = jax.random.uniform(key, (images.shape[0], 1, 1, 1), minval=-amount / 2, maxval=amount)
  window, strides = (1, 3, 3, 1), (1, 1, 1, 1)
  dilated = jax.lax.reduce_window(images, -jnp.inf, jax.lax.max, window, strides, 'SAME')
  eroded = jax.lax.reduce_window(images, jnp.inf, jax.lax.min, window, strides, 'SAME')
  target = jnp.where(alpha >= 0, dilated, eroded)
  return images + jnp.abs(alpha) * (target - images)
