"""On-device data augmentation: a random affine warp of each image, inside the jitted train step."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Output pixels are mapped about the centre of the 28x28 frame, where MNIST centres each digit's mass.
_CENTRE = 13.5


def affine_matrices(key: jax.Array, batch: int, *, rotation: float, scale: float, shear: float,
                    shift: float, aspect: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """Random forward maps (A [B, 2, 2], t [B, 2]) in (row, col) pixel units: out = A (in - c) + c + t.

  Rotation in degrees, scale as a fraction (zoom in [1 - s, 1 + s]), shear as a fraction of a row
  per column, shift in pixels; each drawn uniformly in [-x, x]. `aspect` stretches the width against
  the height by exp(u), u uniform in [-aspect, aspect]: digits drawn wider or narrower than MNIST's.
  """
  k_rot, k_scale, k_shear, k_shift, k_aspect = jax.random.split(key, 5)
  angle = jax.random.uniform(k_rot, (batch,), minval=-1.0, maxval=1.0) * math.radians(rotation)
  zoom = 1.0 + jax.random.uniform(k_scale, (batch,), minval=-1.0, maxval=1.0) * scale
  sh = jax.random.uniform(k_shear, (batch,), minval=-1.0, maxval=1.0) * shear
  t = jax.random.uniform(k_shift, (batch, 2), minval=-1.0, maxval=1.0) * shift
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  rot = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
  shear_m = jnp.stack([jnp.stack([jnp.ones_like(sh), sh], -1),
                       jnp.stack([jnp.zeros_like(sh), jnp.ones_like(sh)], -1)], -2)
  u = jax.random.uniform(k_aspect, (batch,), minval=-1.0, maxval=1.0) * aspect
  stretch = jax.vmap(jnp.diag)(jnp.stack([jnp.exp(-u / 2), jnp.exp(u / 2)], -1))
  return zoom[:, None, None] * rot @ shear_m @ stretch, t


def warp(images: jax.Array, a: jax.Array, t: jax.Array, displacement: jax.Array | None = None) -> jax.Array:
  """Bilinear warp of images [B, H, W, 1] by out = A (in - c) + c + t; outside pixels are 0.

  `displacement` [B, H, W, 2] (row, col), if given, moves each output pixel's sampling point further:
  an elastic distortion in the same single resampling. Returns float32 in the images' units ([0, 1]
  for uint8 input).
  """
  b, h, w, _ = images.shape
  x = images[..., 0].astype(jnp.float32)
  if images.dtype == jnp.uint8:
    x = x / 255.0
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing='ij')
  out = jnp.stack([rows, cols], -1).reshape(-1, 2) - _CENTRE  # [HW, 2]
  # The inverse map gives, for every output pixel, where to sample the input.
  src = jnp.einsum('bij,bpj->bpi', jnp.linalg.inv(a), out[None] - t[:, None, :]) + _CENTRE
  if displacement is not None:
    src = src + displacement.reshape(b, h * w, 2)

  def sample(img, coords):
    return jax.scipy.ndimage.map_coordinates(img, [coords[:, 0], coords[:, 1]], order=1, mode='constant', cval=0.0)

  return jax.vmap(sample)(x, src).reshape(b, h, w, 1)


def elastic_field(key: jax.Array, batch: int, size: int, magnitude: float, sigma: float = 4.0) -> jax.Array:
  """Smooth random displacements [B, size, size, 2] in pixels (Simard et al. 2003).

  White noise blurred by a Gaussian of `sigma` pixels, then scaled so that each image's field has an
  RMS length of `magnitude` pixels: local wobble of the strokes, as different hands give.
  """
  noise = jax.random.uniform(key, (batch, size, size, 2), minval=-1.0, maxval=1.0)
  r = jnp.arange(size, dtype=jnp.float32)
  blur = jnp.exp(-0.5 * ((r[:, None] - r[None, :]) / sigma) ** 2)  # Separable blur as two matrix products.
  field = jnp.einsum('ij,bjkc,lk->bilc', blur, noise, blur)
  rms = jnp.sqrt(jnp.mean(jnp.sum(field ** 2, -1), axis=(1, 2), keepdims=True))[..., None]
  return field * (magnitude / jnp.maximum(rms, 1e-6))


def random_affine(key: jax.Array, images: jax.Array, *, rotation: float = 0.0, scale: float = 0.0,
                  shear: float = 0.0, shift: float = 0.0, aspect: float = 0.0, elastic: float = 0.0) -> jax.Array:
  """Each image warped by its own random rotation, zoom, shear, shift and aspect (see `affine_matrices`),
  and an elastic distortion of RMS `elastic` pixels, in one bilinear resampling."""
  affine_key, elastic_key = jax.random.split(key)
  a, t = affine_matrices(affine_key, images.shape[0], rotation=rotation, scale=scale, shear=shear, shift=shift,
                         aspect=aspect)
  field = elastic_field(elastic_key, images.shape[0], images.shape[1], elastic) if elastic else None
  return warp(images, a, t, field)


def _segment(p0: jax.Array, p1: jax.Array, width: jax.Array, size: int) -> jax.Array:
  """An anti-aliased pen line [size, size] from p0 to p1 ((row, col) pixels) of the given width."""
  rows, cols = jnp.meshgrid(jnp.arange(size, dtype=jnp.float32), jnp.arange(size, dtype=jnp.float32), indexing='ij')
  p = jnp.stack([rows, cols], -1)
  d = p1 - p0
  t = jnp.clip(jnp.sum((p - p0) * d, -1) / jnp.maximum(jnp.sum(d * d), 1e-6), 0.0, 1.0)
  dist = jnp.linalg.norm(p - (p0 + t[..., None] * d), axis=-1)
  return jnp.clip(width / 2 + 0.5 - dist, 0.0, 1.0)


def _international_form(key: jax.Array, image: jax.Array, label: jax.Array) -> jax.Array:
  """One float image [H, W] of a 0, 1 or 7 rewritten in a continental form, with the digit's own pen:
  0 with a slash or a dot, 1 with a long flag and sometimes a base, 7 with a crossbar; others unchanged."""
  size = image.shape[0]
  ink = image > 0.4
  rows_on, cols_on = ink.any(1), ink.any(0)
  idx = jnp.arange(size, dtype=jnp.float32)
  top = jnp.argmax(rows_on).astype(jnp.float32)
  bottom = size - 1 - jnp.argmax(rows_on[::-1]).astype(jnp.float32)
  left = jnp.argmax(cols_on).astype(jnp.float32)
  right = size - 1 - jnp.argmax(cols_on[::-1]).astype(jnp.float32)
  h, w = bottom - top + 1, right - left + 1

  def ink_col(row):  # Mean column of the ink in rows [row, row + 2), for placing strokes on a stem.
    band = jax.lax.dynamic_slice_in_dim(image, jnp.clip(row.astype(jnp.int32), 0, size - 2), 2, 0).sum(0)
    return jnp.sum(band * idx) / jnp.maximum(band.sum(), 1e-6)

  # The pen width: ink pixels per run of ink along the middle row.
  mid = ink[jnp.clip(((top + bottom) / 2).astype(jnp.int32), 0, size - 1)]
  runs = jnp.sum(mid[1:] & ~mid[:-1]) + mid[0]
  pen = jnp.clip(mid.sum() / jnp.maximum(runs, 1), 1.5, 3.5)
  k1, k2, k3 = jax.random.split(key, 3)
  u = jax.random.uniform(k1, (4,))
  pt = lambda r, c: jnp.stack([r, c])
  # 0: a slash corner to corner (a little past the oval), or a dot in the middle.
  slash = _segment(pt(bottom + 0.05 * h, left - 0.05 * w + 0.1 * w * u[0]),
                   pt(top - 0.05 * h, right + 0.05 * w - 0.1 * w * u[1]), pen, size)
  centre = pt((top + bottom) / 2, (left + right) / 2)
  dot = _segment(centre, centre + 0.5, pen * 1.3, size)
  zero = jnp.where(u[2] < 0.7, slash, dot)
  # 1: a flag from below-left up to the top of the stem, 25-45% of the height long; a base half the time.
  top_col, bottom_col = ink_col(top), ink_col(bottom - 1)
  flag_len = h * (0.3 + 0.2 * u[0])
  flag = _segment(pt(top + flag_len * 0.8, top_col - flag_len * 0.6), pt(top, top_col), pen, size)
  half_base = h * (0.15 + 0.1 * u[1])
  base = _segment(pt(bottom, bottom_col - half_base), pt(bottom, bottom_col + half_base), pen, size)
  one = jnp.maximum(flag, jnp.where(u[3] < 0.5, base, 0.0))
  # 7: a crossbar through the stem a little below the middle.
  bar_row = top + h * (0.5 + 0.1 * (u[2] - 0.5))
  bar_col = ink_col(bar_row)
  half_bar = jnp.maximum(w * (0.2 + 0.1 * u[3]), 3.0)
  seven = _segment(pt(bar_row, bar_col - half_bar), pt(bar_row, bar_col + half_bar), pen, size)
  extra = jnp.select([label == 0, label == 1, label == 7], [zero, one, seven], jnp.zeros_like(image))
  return jnp.maximum(image, extra)


def international_forms(key: jax.Array, images: jax.Array, labels: jax.Array, rate: float) -> jax.Array:
  """A `rate` share of the 0s, 1s and 7s in float images [B, H, W, 1] rewritten in continental forms
  (see `_international_form`); labels are unchanged and values stay in [0, 1]."""
  pick_key, form_key = jax.random.split(key)
  pick = jax.random.uniform(pick_key, (images.shape[0],)) < rate
  keys = jax.random.split(form_key, images.shape[0])
  formed = jax.vmap(_international_form)(keys, images[..., 0], labels)[..., None]
  return jnp.where(pick[:, None, None, None], formed, images)


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


def random_blur(key: jax.Array, images: jax.Array, soften: jax.Array, amount: float) -> jax.Array:
  """Softer strokes: each float image [B, H, W, 1] where `soften` [B] is true is blended towards its 3x3
  binomial blur by a fraction drawn uniformly in [0, amount]; the others are unchanged.

  MNIST's digits are sharper than anything fitted to 28x28 from a larger drawing or photo (a pen stroke's
  or an upscaled digit's soft edge shrinks to a pixel of grey), so a model trained on them unsoftened
  takes sharp edges as a sign of a digit and soft ones as a sign of a non-digit (benchmarks/README.md).
  """
  alpha = jax.random.uniform(key, (images.shape[0], 1, 1, 1), maxval=amount)
  alpha = jnp.where(soften[:, None, None, None], alpha, 0.0)
  kernel = jnp.array([0.25, 0.5, 0.25], images.dtype)
  padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = kernel[0] * padded[:, :-2] + kernel[1] * padded[:, 1:-1] + kernel[2] * padded[:, 2:]
  blurred = kernel[0] * rows[:, :, :-2] + kernel[1] * rows[:, :, 1:-1] + kernel[2] * rows[:, :, 2:]
  return images + alpha * (blurred - images)
