"""Synthetic "not a digit" images, made offline on the host: letters and symbols drawn with the window's
pen, font glyphs, scribbles, shapes, parts and overlaps of digits, and noise.

Each image goes through the window's own path (strokes -> `render_strokes` -> `preprocess_drawing`), so
it looks like what the model sees at inference. Training and validation use the same generators with
different seeds; `benchmarks.rejection` adds shapes and fonts that training never sees (`HELD_OUT_*`).
Characters that a careful reader would call a digit are left out: O o D Q C (0), l I | ! J t f T (1, 7),
S s $ (5), Z z ? (2), B (8), g q a y Y P (9, 4), b G (6).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from digitrec_jax.preprocess import (RENDER_SIZE, STROKE_WIDTH, EmptyDrawingError, Strokes, preprocess_drawing,
                                     render_strokes, window_pen)

# The label of a non-digit example: the 11th output of a model with `non_digit_class`.
NON_DIGIT_LABEL = 10
_RENDER = 140  # Canvas side for rendering; the window's is 280, and the 20 px fit hides the difference.


def _arc(cx, cy, rx, ry, a0, a1, n=12):
  """Points on an ellipse from angle a0 to a1 (degrees; 0 is right, 90 is down)."""
  t = np.radians(np.linspace(a0, a1, n))
  return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in t]


# Letters and symbols as pen strokes in a unit box (x right, y down).
SHAPES: dict[str, Strokes] = {
    'A': [[(0.1, 1), (0.5, 0), (0.9, 1)], [(0.27, 0.6), (0.73, 0.6)]],
    'E': [[(0.85, 0), (0.15, 0), (0.15, 1), (0.85, 1)], [(0.15, 0.5), (0.7, 0.5)]],
    'H': [[(0.15, 0), (0.15, 1)], [(0.85, 0), (0.85, 1)], [(0.15, 0.5), (0.85, 0.5)]],
    'K': [[(0.2, 0), (0.2, 1)], [(0.85, 0), (0.2, 0.55)], [(0.38, 0.42), (0.85, 1)]],
    'M': [[(0.05, 1), (0.15, 0), (0.5, 0.7), (0.85, 0), (0.95, 1)]],
    'N': [[(0.15, 1), (0.15, 0), (0.85, 1), (0.85, 0)]],
    'R': [[(0.2, 1), (0.2, 0)] + _arc(0.45, 0.25, 0.35, 0.25, -90, 90)[1:] + [(0.2, 0.5)], [(0.45, 0.5), (0.85, 1)]],
    'X': [[(0.1, 0), (0.9, 1)], [(0.9, 0), (0.1, 1)]],
    'V': [[(0.1, 0), (0.5, 1), (0.9, 0)]],
    'L': [[(0.2, 0), (0.2, 1), (0.85, 1)]],
    'U': [[(0.15, 0)] + _arc(0.5, 0.62, 0.35, 0.38, 180, 0)[::-1][::-1] + [(0.85, 0)]],
    'h': [[(0.2, 0), (0.2, 1)], [(0.2, 0.6)] + _arc(0.5, 0.65, 0.3, 0.22, 180, 360)[1:] + [(0.8, 1)]],
    'k': [[(0.2, 0), (0.2, 1)], [(0.75, 0.4), (0.2, 0.75)], [(0.4, 0.63), (0.8, 1)]],
    'm': [[(0.05, 1), (0.05, 0.4)] + _arc(0.27, 0.5, 0.22, 0.15, 180, 360)[1:] + [(0.49, 1)],
          [(0.49, 0.5)] + _arc(0.71, 0.5, 0.22, 0.15, 180, 360)[1:] + [(0.93, 1)]],
    'n': [[(0.2, 1), (0.2, 0.35)], [(0.2, 0.5)] + _arc(0.5, 0.5, 0.3, 0.18, 180, 360)[1:] + [(0.8, 1)]],
    'r': [[(0.3, 1), (0.3, 0.3)], [(0.3, 0.5)] + _arc(0.6, 0.5, 0.3, 0.2, 180, 300)[1:]],
    'u': [[(0.2, 0.3)] + _arc(0.5, 0.7, 0.3, 0.3, 180, 0)[::-1][::-1] + [(0.8, 0.3), (0.8, 1)]],
    'v': [[(0.15, 0.3), (0.5, 1), (0.85, 0.3)]],
    'w': [[(0.0, 0.3), (0.25, 1), (0.5, 0.5), (0.75, 1), (1.0, 0.3)]],
    'x': [[(0.2, 0.3), (0.8, 1)], [(0.8, 0.3), (0.2, 1)]],
    'e': [[(0.2, 0.65), (0.8, 0.65)] + _arc(0.5, 0.65, 0.3, 0.3, 0, -300)[1:]],
    'F': [[(0.85, 0), (0.2, 0), (0.2, 1)], [(0.2, 0.5), (0.7, 0.5)]],
    'W': [[(0.0, 0), (0.25, 1), (0.5, 0.35), (0.75, 1), (1.0, 0)]],
    '#': [[(0.35, 0), (0.25, 1)], [(0.75, 0), (0.65, 1)], [(0.05, 0.33), (0.95, 0.33)], [(0.05, 0.67), (0.95, 0.67)]],
    '%': [[(0.85, 0), (0.15, 1)], _arc(0.25, 0.18, 0.14, 0.16, 0, 360), _arc(0.75, 0.82, 0.14, 0.16, 0, 360)],
    '@': [_arc(0.5, 0.5, 0.18, 0.2, 0, 360) + [(0.68, 0.7), (0.85, 0.7)] + _arc(0.5, 0.5, 0.45, 0.45, 20, 320)],
    '&': [[(0.85, 1), (0.25, 0.35)] + _arc(0.4, 0.18, 0.17, 0.17, 150, 390)[1:] + [(0.2, 0.7)]
          + _arc(0.4, 0.75, 0.22, 0.23, 180, 60)[1:] + [(0.85, 0.55)]],
    '+': [[(0.5, 0.05), (0.5, 0.95)], [(0.05, 0.5), (0.95, 0.5)]],
    '*': [[(0.5, 0), (0.5, 1)], [(0.07, 0.25), (0.93, 0.75)], [(0.93, 0.25), (0.07, 0.75)]],
    '=': [[(0.05, 0.3), (0.95, 0.3)], [(0.05, 0.7), (0.95, 0.7)]],
    '<': [[(0.85, 0.05), (0.15, 0.5), (0.85, 0.95)]],
    '>': [[(0.15, 0.05), (0.85, 0.5), (0.15, 0.95)]],
    '~': [_arc(0.28, 0.55, 0.23, 0.2, 180, 360) + _arc(0.72, 0.45, 0.23, 0.2, 180, 0)[1:]],
    'triangle': [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]],
    'star': [[(0.5, 0), (0.8, 1), (0.02, 0.38), (0.98, 0.38), (0.2, 1), (0.5, 0)]],
    'check': [[(0, 0.55), (0.35, 1), (1, 0)]],
    'arrow': [[(0, 0.5), (1, 0.5)], [(0.7, 0.2), (1, 0.5), (0.7, 0.8)]],
    'heart': [[(0.5, 1)] + _arc(0.27, 0.3, 0.25, 0.25, 135, -180)[::-1][::-1] + _arc(0.73, 0.3, 0.25, 0.25, 180, 405)
              + [(0.5, 1)]],
    'zigzag': [[(0, 0.3), (0.2, 0.7), (0.4, 0.3), (0.6, 0.7), (0.8, 0.3), (1, 0.7)]],
}
# Digits drawn with the window's pen, several ways each, as positives: without them the "not a digit"
# output learns that pen-drawn strokes (which every synthetic non-digit has) mean "not a digit".
DIGIT_SHAPES: dict[int, list[Strokes]] = {
    0: [[_arc(0.5, 0.5, 0.3, 0.47, -90, 270, 20)], [_arc(0.5, 0.5, 0.3, 0.47, -60, 290, 20)]],
    1: [[[(0.5, 0.0), (0.5, 1.0)]], [[(0.25, 0.3), (0.55, 0.0), (0.55, 1.0)]],
        [[(0.25, 0.3), (0.55, 0.0), (0.55, 1.0)], [(0.3, 1.0), (0.8, 1.0)]]],
    2: [[_arc(0.5, 0.28, 0.32, 0.28, 200, 380, 12) + [(0.15, 1.0), (0.9, 1.0)]],
        [_arc(0.5, 0.28, 0.32, 0.28, 180, 400, 12) + [(0.2, 0.95)] + _arc(0.3, 0.9, 0.1, 0.1, 0, 360, 8)[::2]
         + [(0.9, 1.0)]]],
    3: [[_arc(0.45, 0.26, 0.32, 0.25, 210, 450, 14) + _arc(0.45, 0.74, 0.35, 0.26, -90, 150, 14)[1:]],
        [[(0.15, 0.0), (0.85, 0.0), (0.4, 0.4)] + _arc(0.45, 0.7, 0.35, 0.3, -90, 150, 14)[1:]]],
    4: [[[(0.6, 0.0), (0.1, 0.65), (0.9, 0.65)], [(0.65, 0.3), (0.65, 1.0)]],
        [[(0.2, 0.0), (0.15, 0.6), (0.85, 0.6)], [(0.7, 0.0), (0.7, 1.0)]],
        [[(0.65, 1.0), (0.65, 0.0), (0.1, 0.65), (0.9, 0.65)]]],
    5: [[[(0.85, 0.0), (0.25, 0.0), (0.2, 0.45)] + _arc(0.5, 0.68, 0.33, 0.3, 220, 500, 16)[1:]],
        [[(0.25, 0.0), (0.2, 0.45)] + _arc(0.5, 0.68, 0.33, 0.3, 220, 500, 16)[1:], [(0.25, 0.0), (0.85, 0.0)]]],
    6: [[[(0.7, 0.0), (0.3, 0.45)] + _arc(0.5, 0.7, 0.3, 0.3, 200, 560, 18)],
        [_arc(0.6, 0.5, 0.4, 0.5, 270, 180, 10) + _arc(0.5, 0.72, 0.3, 0.28, 180, 540, 18)[1:]]],
    7: [[[(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)]], [[(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)], [(0.35, 0.5), (0.85, 0.5)]],
        [[(0.1, 0.15), (0.1, 0.0), (0.9, 0.0), (0.5, 1.0)]]],
    8: [[_arc(0.5, 0.25, 0.25, 0.25, 90, 450, 16), _arc(0.5, 0.73, 0.3, 0.27, -90, 270, 16)],
        [_arc(0.5, 0.25, 0.27, 0.25, 90, 270, 8) + _arc(0.5, 0.73, 0.3, 0.27, -90, 90, 8)
         + _arc(0.5, 0.73, 0.3, 0.27, 90, 270, 8) + _arc(0.5, 0.25, 0.27, 0.25, 90, -90, 8)]],
    9: [[_arc(0.5, 0.3, 0.3, 0.3, 0, 360, 18) + [(0.8, 0.3), (0.8, 1.0)]],
        [_arc(0.5, 0.3, 0.3, 0.3, 0, 360, 18) + [(0.8, 0.3), (0.55, 1.0)]]],
}


def _extent(mask: np.ndarray) -> np.ndarray:
  """(height, width) of the ink in a boolean mask, from its first to its last row and column."""
  return np.array([np.ptp(np.flatnonzero(mask.any(1))), np.ptp(np.flatnonzero(mask.any(0)))], np.float64)


def redraw_with_pen(digit: np.ndarray, rng: np.random.Generator, soft_share: float = 0.3) -> np.ndarray:
  """An MNIST digit [28, 28(, 1)] uint8 through the window's path: its shape at a random size on the
  canvas, then `preprocess_drawing` (crop, 20 px fit, centring by mass). Float [28, 28, 1].

  Mostly as solid ink of the window's fixed pen width: the digit is scaled up, binarized, and its strokes
  grown or thinned to the pen's width (a Gaussian blur thresholded at the level that moves a straight
  edge by the needed distance), so digits drawn small get relatively thick strokes and large ones thin
  strokes, as in the window. A `soft_share` keep their own soft strokes, as a scan or photo gives. Either
  way the model sees real digits with the texture of the window's fit, which the non-digits made from
  parts of digits also have.
  """
  ink = np.asarray(digit, np.float32).reshape(28, 28) / 255.0
  rows, cols = np.flatnonzero((ink > 0.1).any(1)), np.flatnonzero((ink > 0.1).any(0))
  if rows.size == 0:
    raise EmptyDrawingError('blank digit')
  crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
  height = rng.uniform(0.25, 0.9) * RENDER_SIZE  # The digit's height on the window's canvas.
  scale = height / crop.shape[0]
  size = (max(1, round(crop.shape[1] * scale)), max(1, round(height)))
  big = np.asarray(Image.fromarray(crop, mode='F').resize(size, Image.Resampling.BILINEAR), np.float32)
  if rng.random() < soft_share:
    return preprocess_drawing(np.clip(big, 0, 1), invert=False)
  big = big > 0.5
  # The digit's own pen width, in canvas pixels: twice the ink's area over its outline's length (the
  # outline counted along rows and columns, times pi / 4 for strokes at every angle).
  edges = np.sum(big[:, 1:] != big[:, :-1]) + np.sum(big[1:] != big[:-1])
  own = 2.0 * big.sum() / max(edges * math.pi / 4, 1.0)
  # Per side; negative thins, by at most a third of the width so that thin parts of a stroke survive.
  grow = max((STROKE_WIDTH * RENDER_SIZE * rng.uniform(0.85, 1.15) - own) / 2, -own / 6)
  pad = int(abs(grow)) + 4
  mask = np.pad(big, pad).astype(np.float32)
  sigma = float(max(abs(grow), 1.5))
  blurred = np.asarray(Image.fromarray(mask * 255).convert('L').filter(ImageFilter.GaussianBlur(sigma)),
                       np.float32) / 255.0
  # A half-plane edge blurred by a Gaussian of sigma is Phi(x / sigma): thresholding at Phi(-grow / sigma)
  # moves the edge outwards by `grow`.
  level = 0.5 * (1.0 + math.erf(-grow / (sigma * math.sqrt(2.0))))
  drawn = blurred > np.clip(level, 0.02, 0.98)
  # Thinning pulls each end in by |grow|; more than that means a part of the digit vanished.
  if not drawn.any() or np.min((_extent(drawn) + 2 * max(-grow, 0.0)) / np.maximum(_extent(big), 1)) < 0.9:
    raise EmptyDrawingError('the pen thinned away part of the digit')
  return preprocess_drawing(drawn.astype(np.float32), invert=False)


def make_pen_digits(n: int, seed: int, digits: tuple[np.ndarray, np.ndarray] | None = None,
                    mnist_share: float = 0.0, soft_share: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [n, 28, 28, 1], labels [n]) of digits drawn with the window's pen.

  From `DIGIT_SHAPES`, with the same hand-like jitter as the non-digit shapes; a `mnist_share` of them
  are instead `digits` (MNIST images and labels of the split being generated for) redrawn with the pen
  (`redraw_with_pen`, `soft_share` of them with their own soft strokes): many hands' shapes with the
  window's look.
  """
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n).astype(np.int32)
  out = np.zeros((n, 28, 28, 1), np.uint8)
  if mnist_share and digits is None:
    raise ValueError('mnist_share > 0 needs the MNIST digits to redraw')
  redraw = np.random.default_rng([seed, 1]).random(n) < mnist_share
  which = np.random.default_rng([seed, 2]).integers(0, len(digits[1]), n) if mnist_share else None
  for i, digit in enumerate(labels):
    if redraw[i]:
      try:
        out[i] = np.round(redraw_with_pen(digits[0][which[i]], rng, soft_share) * 255).astype(np.uint8)
        labels[i] = digits[1][which[i]]
        continue
      except EmptyDrawingError:  # Thinned away: a template digit instead.
        pass
    variants = DIGIT_SHAPES[int(digit)]
    strokes = _jitter_strokes(rng, variants[rng.integers(len(variants))], mild=True)
    out[i] = np.round(_strokes_image(strokes) * 255).astype(np.uint8)
  return out, labels


# Never trained on: `benchmarks.rejection` measures how far rejection carries to shapes and fonts it has not seen.
HELD_OUT_SHAPES = ('F', 'W', 'u', '&', '<', 'heart')
TRAIN_SHAPES = tuple(s for s in SHAPES if s not in HELD_OUT_SHAPES)
# Glyphs rendered from fonts (matplotlib's, so they exist wherever the package is installed).
FONT_CHARS = 'AEFHKLMNRUVWXhkmnrsuvwxe#%@&+*=<>~'.replace('s', '')
TRAIN_FONTS = ('DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSans-Oblique.ttf', 'DejaVuSerif.ttf',
               'DejaVuSerif-Italic.ttf', 'DejaVuSerif-Bold.ttf')
HELD_OUT_FONTS = ('STIXGeneral.ttf', 'STIXGeneralItalic.ttf', 'DejaVuSansMono.ttf', 'cmss10.ttf')

# Share of each kind in a bank.
KINDS = {'shape': 0.36, 'font': 0.14, 'scribble': 0.16, 'part': 0.12, 'overlap': 0.10, 'noise': 0.12}


def _font_dir() -> Path:
  import matplotlib  # Only its data path: cheap, and no pyplot.
  return Path(matplotlib.get_data_path()) / 'fonts' / 'ttf'


def _jitter_strokes(rng: np.random.Generator, strokes: Strokes, mild: bool = False) -> Strokes:
  """A hand-drawn version: wobbly points, a random slant, aspect, rotation, size and place (`mild`: the
  ranges that keep a digit a digit)."""
  k = 0.6 if mild else 1.0
  angle = math.radians(rng.uniform(-15, 15) * k)
  shear = rng.uniform(-0.3, 0.3) * k
  aspect = math.exp(rng.uniform(-0.4, 0.4) * k)
  size = rng.uniform(0.3, 0.85)
  cx, cy = rng.uniform(0.35, 0.65, 2)
  c, s = math.cos(angle), math.sin(angle)
  out = []
  for stroke in strokes:
    p = np.asarray(stroke, np.float64) - 0.5
    p = p + rng.normal(0, 0.025, p.shape)
    p[:, 0] = (p[:, 0] + shear * p[:, 1]) * aspect
    p = p @ np.array([[c, s], [-s, c]])
    p = p * size + (cx, cy)
    out.append([tuple(q) for q in _densify(p)])
  return out


def _densify(points: np.ndarray, step: float = 0.02) -> np.ndarray:
  """Points spaced about `step` apart along the polyline, as a mouse delivers them."""
  if len(points) < 2:
    return points
  seg = np.diff(points, axis=0)
  lengths = np.hypot(seg[:, 0], seg[:, 1])
  t = np.concatenate([[0], np.cumsum(lengths)])
  n = max(2, int(t[-1] / step) + 1)
  u = np.linspace(0, t[-1], n)
  return np.stack([np.interp(u, t, points[:, 0]), np.interp(u, t, points[:, 1])], -1)


def _strokes_image(strokes: Strokes) -> np.ndarray:
  # The window's pen at every size, as the shipped model was trained (reading thins it for small drawings).
  return preprocess_drawing(render_strokes(strokes, _RENDER, pen=window_pen(_RENDER)))


def _shape(rng, names) -> np.ndarray:
  return _strokes_image(_jitter_strokes(rng, SHAPES[names[rng.integers(len(names))]]))


def _scribble(rng, _) -> np.ndarray:
  """One or two smooth random strokes through 4-9 points, or a cloud of dots and short dashes."""
  if rng.random() < 0.2:
    return _strokes_image([[tuple(p), tuple(p + rng.normal(0, 0.03, 2))] for p in rng.uniform(0.2, 0.8, (rng.integers(4, 12), 2))])
  strokes = []
  for _ in range(rng.integers(1, 3)):
    k = rng.integers(4, 10)
    p = np.cumsum(rng.normal(0, 0.18, (k, 2)), axis=0)
    p = (p - p.mean(0)) / max(np.ptp(p, axis=0).max(), 1e-6) * rng.uniform(0.3, 0.8) + 0.5
    # Catmull-Rom smoothing through the control points.
    pts = [p[0]] + [_catmull(p, i, t) for i in range(k - 1) for t in np.linspace(0, 1, 8)[1:]]
    strokes.append([tuple(q) for q in np.asarray(pts)])
  return _strokes_image(strokes)


def _catmull(p, i, t):
  p0, p1, p2, p3 = p[max(i - 1, 0)], p[i], p[i + 1], p[min(i + 2, len(p) - 1)]
  return 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3)


def _font(rng, fonts) -> np.ndarray:
  """A glyph from a font, at a random weight (dilation or erosion) and slant."""
  path = _font_dir() / fonts[rng.integers(len(fonts))]
  font = ImageFont.truetype(str(path), 80)
  char = FONT_CHARS[rng.integers(len(FONT_CHARS))]
  image = Image.new('L', (140, 140), 0)
  ImageDraw.Draw(image).text((30, 15), char, fill=255, font=font)
  array = np.asarray(image, np.float32) / 255.0
  shear = rng.uniform(-0.25, 0.25)
  image = Image.fromarray(array, mode='F').transform((140, 140), Image.Transform.AFFINE,
                                                     (1, shear, -shear * 70, 0, 1, 0), Image.Resampling.BILINEAR)
  array = np.asarray(image, np.float32)
  if array.max() <= 0.1:
    raise EmptyDrawingError('blank glyph')
  return preprocess_drawing(np.clip(array, 0, 1), invert=False)


def _part(rng, digits) -> np.ndarray:
  """Part of a digit (other than a 1): what lies on one side of a random line, 30-60% of its ink."""
  images, labels = digits
  for _ in range(20):
    i = rng.integers(len(labels))
    if labels[i] == 1:
      continue
    x = images[i, ..., 0].astype(np.float32) / 255.0
    ys, xs = np.indices(x.shape)
    angle = rng.uniform(0, 2 * math.pi)
    proj = (xs - 13.5) * math.cos(angle) + (ys - 13.5) * math.sin(angle)
    offset = rng.uniform(-3, 3)
    kept = x * (proj > offset)
    share = kept.sum() / max(x.sum(), 1e-6)
    if 0.3 <= share <= 0.6:
      return preprocess_drawing(kept, invert=False)
  raise EmptyDrawingError('no part found')


def _overlap(rng, digits) -> np.ndarray:
  """Two different digits on top of each other, offset by a few pixels."""
  images, labels = digits
  i, j = rng.integers(len(labels), size=2)
  a = images[i, ..., 0].astype(np.float32) / 255.0
  b = np.roll(images[j, ..., 0].astype(np.float32) / 255.0, rng.integers(-6, 7, 2), axis=(0, 1))
  return preprocess_drawing(np.maximum(a, b), invert=False)


def _noise(rng, _) -> np.ndarray:
  """Noise, blotches and paper texture, either raw at 28x28 or through preprocessing."""
  kind = rng.integers(4)
  if kind == 0:
    return rng.uniform(0, rng.uniform(0.2, 1.0), (28, 28, 1)).astype(np.float32)
  if kind == 1:  # Smooth blotches: low-resolution noise scaled up.
    low = rng.uniform(0, 1, (rng.integers(3, 8),) * 2).astype(np.float32)
    big = np.asarray(Image.fromarray(low, mode='F').resize((28, 28), Image.Resampling.BICUBIC), np.float32)
    return np.clip((big - rng.uniform(0.3, 0.7)) * 3, 0, 1)[..., None]
  if kind == 2:  # Salt noise through preprocessing, as a speckled photo gives.
    return preprocess_drawing((rng.random((120, 120)) < rng.uniform(0.002, 0.05)).astype(np.float32), invert=False)
  low = rng.uniform(0, 1, (rng.integers(4, 12),) * 2).astype(np.float32)
  big = np.asarray(Image.fromarray(low, mode='F').resize((120, 120), Image.Resampling.BICUBIC), np.float32)
  return preprocess_drawing(np.clip(big - rng.uniform(0.5, 0.8), 0, 1), invert=False)


_MAKERS = {'shape': _shape, 'font': _font, 'scribble': _scribble, 'part': _part, 'overlap': _overlap,
           'noise': _noise}


def make_non_digits(n: int, seed: int, digits: tuple[np.ndarray, np.ndarray], *,
                    held_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [n, 28, 28, 1], kinds [n] as indices into `KINDS`) of synthetic non-digits.

  `digits` (MNIST images and labels) supply the parts and overlaps: pass the split being generated for.
  `held_out` draws shapes and fonts from the sets that training never uses.
  """
  rng = np.random.default_rng(seed)
  names = list(KINDS)
  kinds = rng.choice(len(names), size=n, p=np.array(list(KINDS.values())) / sum(KINDS.values()))
  args = {'shape': HELD_OUT_SHAPES if held_out else TRAIN_SHAPES, 'font': HELD_OUT_FONTS if held_out else TRAIN_FONTS,
          'scribble': None, 'part': digits, 'overlap': digits, 'noise': None}
  out = np.zeros((n, 28, 28, 1), np.uint8)
  for i, k in enumerate(kinds):
    name = names[k]
    for _ in range(10):
      try:
        image = _MAKERS[name](rng, args[name])
        if not is_line(image):
          break
      except EmptyDrawingError:  # A generator drew nothing usable: draw again.
        continue
    else:
      image = np.zeros((28, 28, 1), np.float32)
    out[i] = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  return out, kinds


def is_line(image: np.ndarray) -> bool:
  """Whether the ink forms one thin straight bar (a 1 to a reader), from the spread of its mass."""
  ink = np.asarray(image, np.float64).reshape(28, 28)
  total = ink.sum()
  if total <= 0:
    return False
  ys, xs = np.indices(ink.shape)
  my, mx = (ys * ink).sum() / total, (xs * ink).sum() / total
  cov = np.cov(np.stack([ys.ravel() - my, xs.ravel() - mx]), aweights=ink.ravel())
  small, large = np.linalg.eigvalsh(cov)
  return small < 0.06 * large
