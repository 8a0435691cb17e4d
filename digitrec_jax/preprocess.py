"""Drawn image -> MNIST format: the digit fitted into 20x20, centred by mass in 28x28, white on black."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from digitrec_jax.model import IMAGE_SHAPE

# MNIST fits each digit into a 20x20 box and centres its mass in a 28x28 field.
FIT_SIZE = 20
# Pixels with less ink than this (in [0, 1]) count as background: paper texture, JPEG noise.
INK_THRESHOLD = 0.1
# The window keeps strokes in [0, 1] canvas units and renders them at this size for the model.
RENDER_SIZE = 280
STROKE_WIDTH = 0.065  # Fraction of the canvas side; close to MNIST's pen relative to its 20 px box.
# MNIST's strokes are about this share of a digit's ink height wide (the median over its training digits of
# ink area / skeleton length / height). A digit drawn small with the window's pen is far bolder: the model
# names 72% of digits written at a fifth of the canvas height against 96% from two fifths up
# (benchmarks/README.md), so the pen that renders strokes for the model is never wider than this share.
PEN_SHARE = 0.14
MIN_PEN = 0.25  # The thinnest pen, as a share of the window's: a dot or a flat dash keeps some ink.

Strokes = list[list[tuple[float, float]]]


class EmptyDrawingError(ValueError):
  """The image holds no strokes."""


def _to_grayscale(image: Image.Image | np.ndarray, background: int) -> np.ndarray:
  """float32 [H, W] in [0, 1]; transparent pixels take the `background` value (0 or 255)."""
  if isinstance(image, np.ndarray):
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
      array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
      raise ValueError(f'expected an image array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {array.shape}')
    if array.dtype != np.uint8:
      array = np.asarray(array, np.float64)
      scale = 255.0 if array.size and np.nanmax(array) <= 1.0 else 1.0
      array = np.clip(np.nan_to_num(array) * scale, 0, 255).round().astype(np.uint8)
    image = Image.fromarray(array)
  if not isinstance(image, Image.Image):
    raise TypeError(f'expected a PIL image or a numpy array, got {type(image).__name__}')
  if image.width == 0 or image.height == 0:
    raise EmptyDrawingError('the image has no pixels')
  if has_alpha(image):
    rgba = image.convert('RGBA')
    flat = Image.new('RGBA', rgba.size, (background, background, background, 255))
    image = Image.alpha_composite(flat, rgba)
  return np.asarray(image.convert('L'), np.float32) / 255.0


def window_pen(size: int = RENDER_SIZE) -> int:
  """Pixels of the window's pen on a canvas `size` pixels high."""
  return max(1, round(STROKE_WIDTH * size))


def pen_width(strokes: Strokes, size: int = RENDER_SIZE) -> int:
  """Pixels of the pen that renders `strokes` for the model: the window's pen, thinned for a drawing so
  small that its strokes would be wider than PEN_SHARE of its ink height (not below MIN_PEN of it).

  The height is the drawing's, so every digit of a number written on one line gets the same pen.
  """
  ys = [y for stroke in strokes for _, y in stroke]
  span = max(ys) - min(ys) if ys else 1.0
  # Pen p on points spanning `span`: ink height span + p, and p = PEN_SHARE * (span + p).
  pen = float(np.clip(PEN_SHARE / (1 - PEN_SHARE) * span, MIN_PEN * STROKE_WIDTH, STROKE_WIDTH))
  return max(1, round(pen * size))


def render_strokes(strokes: Strokes, size: int = RENDER_SIZE, width: int | None = None,
                   height: int | None = None, pen: int | None = None) -> Image.Image:
  """Dark round-capped strokes on white, drawn off-screen from unit coordinates, as the model reads them.

  `size` is the pixels per unit (the side of the window's square); `width` and `height` (default `size`)
  give a larger canvas for strokes beyond x or y = 1, as on the window's wide canvas. `pen` is the pen's
  width in pixels; by default `pen_width(strokes, size)`: the window's pen, thinner for a small drawing.
  """
  image = Image.new('L', (width or size, height or size), 255)
  draw = ImageDraw.Draw(image)
  width = pen_width(strokes, size) if pen is None else pen
  for stroke in strokes:
    points = [(x * size, y * size) for x, y in stroke]
    if len(points) > 1:
      draw.line(points, fill=0, width=width, joint='curve')
    for x, y in (points[0], points[-1]):  # Round caps (and a dot for a single click).
      draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
  return image


def has_alpha(image: Image.Image | np.ndarray) -> bool:
  """Whether `image` is a PIL image with transparency (a numpy array's fourth channel is composited as is)."""
  return isinstance(image, Image.Image) and (image.mode in ('RGBA', 'LA', 'PA')
                                             or (image.mode == 'P' and 'transparency' in image.info))


def border(array: np.ndarray) -> np.ndarray:
  """The values along an image's four edges (the corners twice)."""
  return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def looks_inverted(image: Image.Image | np.ndarray) -> bool:
  """Whether an image has a light background (dark strokes), judged by its border pixels.

  Where the border is transparent, the opaque pixels are the strokes: dark ones mean a light background.
  """
  if has_alpha(image):
    rgba = np.asarray(image.convert('RGBA'), np.float32) / 255.0
    alpha = rgba[..., 3]
    opaque = alpha > 0.5
    if np.median(border(alpha)) <= 0.5 and opaque.any():
      luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
      return float(luminance[opaque].mean()) < 0.5
  gray = _to_grayscale(image, background=255)
  return float(np.median(border(gray))) > 0.5


def preprocess_drawing(image: Image.Image | np.ndarray, invert: bool = True) -> np.ndarray:
  """An image of one digit -> float32 [28, 28, 1] in [0, 1], MNIST format.

  Args:
    image: a PIL image or numpy array of any size, mode L, RGB or RGBA (transparent counts as
      background).
    invert: True for dark strokes on a light background (a drawing); False for white on black.
  Raises:
    EmptyDrawingError: the image holds no strokes.
  """
  gray = _to_grayscale(image, background=255 if invert else 0)
  ink = 1.0 - gray if invert else gray
  rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
  cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
  if rows.size == 0:
    raise EmptyDrawingError('the image is blank: it holds no strokes')
  crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
  height, width = crop.shape
  scale = FIT_SIZE / max(height, width)
  size = (max(1, round(width * scale)), max(1, round(height * scale)))
  # Pillow's resampling filters widen with the scale factor when shrinking: anti-aliased.
  fitted = np.asarray(Image.fromarray(crop, mode='F').resize(size, Image.Resampling.LANCZOS), np.float32)
  fitted = np.clip(fitted, 0.0, 1.0)
  return _centre_by_mass(fitted)[..., None]


def _centre_by_mass(fitted: np.ndarray) -> np.ndarray:
  """Places `fitted` in a 28x28 field with its centre of mass at the centre.

  The shift is sub-pixel (bilinear), so the same digit drawn anywhere lands on the same pixels.
  """
  total = fitted.sum()
  ys, xs = np.indices(fitted.shape)
  out_h, out_w = IMAGE_SHAPE[:2]
  target_y = (out_h - 1) / 2 - (ys * fitted).sum() / total
  target_x = (out_w - 1) / 2 - (xs * fitted).sum() / total
  h, w = fitted.shape
  top, left = int(np.floor(target_y)), int(np.floor(target_x))
  fy, fx = target_y - top, target_x - left
  shifted = np.zeros((h + 1, w + 1), np.float32)
  shifted[:h, :w] += (1 - fy) * (1 - fx) * fitted
  shifted[1:, :w] += fy * (1 - fx) * fitted
  shifted[:h, 1:] += (1 - fy) * fx * fitted
  shifted[1:, 1:] += fy * fx * fitted
  # A digit whose mass sits near its edge would leave the field: keep it inside instead.
  top = int(np.clip(top, 0, out_h - h - 1))
  left = int(np.clip(left, 0, out_w - w - 1))
  out = np.zeros((out_h, out_w), np.float32)
  out[top:top + h + 1, left:left + w + 1] = shifted
  return out
