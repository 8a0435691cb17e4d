"""MNIST digits written with the window's pen: each digit's skeleton traced into strokes.

A digit is scaled up 4x, binarized and thinned to one-pixel lines (Zhang and Suen 1984); the lines are
walked into polylines, as a pen would draw them, and the window renders them with its own round pen.
Numbers are laid out as people write them: the gap between two digits is measured between their ink,
row by row, so slanted digits may overlap in x as handwriting does. A benchmark generator of its own;
training's pen digits (`nondigits.redraw_with_pen`) are made another way.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from digitrec_jax.preprocess import STROKE_WIDTH, Strokes

_UPSCALE = 4
# The 8 neighbours of a pixel, clockwise from north (Zhang and Suen's P2 to P9).
_AROUND = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def thin(mask: np.ndarray) -> np.ndarray:
  """Zhang-Suen thinning of a boolean mask [H, W] to lines one pixel wide."""
  image = np.pad(mask.astype(np.uint8), 1)
  h, w = image.shape
  while True:
    changed = False
    for first in (True, False):
      padded = np.pad(image, 1)
      n = [padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _AROUND]
      count = sum(n)
      crossings = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.uint8) for i in range(8))
      if first:
        side = (n[0] * n[2] * n[4] == 0) & (n[2] * n[4] * n[6] == 0)
      else:
        side = (n[0] * n[2] * n[6] == 0) & (n[0] * n[4] * n[6] == 0)
      remove = (image == 1) & (count >= 2) & (count <= 6) & (crossings == 1) & side
      if remove.any():
        image[remove] = 0
        changed = True
    if not changed:
      return image[1:-1, 1:-1].astype(bool)


def trace(skeleton: np.ndarray) -> list[list[tuple[int, int]]]:
  """Polylines of (row, col) pixels that cover every link of a skeleton, walked from line ends first and
  as straight as possible through junctions."""
  pixels = set(zip(*(a.tolist() for a in np.nonzero(skeleton))))

  def neighbours(p):
    r, c = p
    out = [(r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)) if (r + dr, c + dc) in pixels]
    # A diagonal link only where no pixel beside both already joins them (no little triangles).
    out += [(r + dr, c + dc) for dr, dc in ((-1, -1), (-1, 1), (1, -1), (1, 1))
            if (r + dr, c + dc) in pixels and (r + dr, c) not in pixels and (r, c + dc) not in pixels]
    return out

  links = {p: neighbours(p) for p in pixels}
  used: set[frozenset] = set()
  free = lambda p: [q for q in links[p] if frozenset((p, q)) not in used]
  lines = []
  for start in sorted(pixels, key=lambda p: (len(links[p]) != 1, p)):
    while free(start):
      line, prev, p = [start], None, start
      while options := free(p):
        if prev is not None:
          heading = (p[0] - prev[0], p[1] - prev[1])
          options.sort(key=lambda q: -((q[0] - p[0]) * heading[0] + (q[1] - p[1]) * heading[1]))
        used.add(frozenset((p, options[0])))
        prev, p = p, options[0]
        line.append(p)
      lines.append(line)
  return lines + [[p] for p in sorted(pixels) if not links[p]]


# A digit whose strokes are wider than this share of its height is a blot that no pen line redraws (a
# filled loop thins to a single arc); about 1.5% of MNIST's digits. `usable` leaves them out.
MAX_STROKE_SHARE = 0.25


# Pieces of a digit's skeleton shorter than this share of its height are specks, not strokes.
SPECK_SHARE = 0.1


def usable(digit: np.ndarray) -> bool:
  """Whether a pen can redraw the digit: its strokes are at most MAX_STROKE_SHARE of its height wide."""
  try:
    digit_strokes(digit)
  except ValueError:
    return False
  return True


def digit_strokes(digit: np.ndarray) -> list[np.ndarray]:
  """An MNIST digit [28, 28(, 1)] uint8 -> its strokes, each [N, 2] of (x, y) in units of the digit's
  ink height (the top of the ink at y = 0, its left at x = 0). Raises ValueError for a blank or blotted
  digit (see MAX_STROKE_SHARE)."""
  ink = np.asarray(digit, np.float32).reshape(28, 28) / 255.0
  size = 28 * _UPSCALE
  big = np.asarray(Image.fromarray(ink, mode='F').resize((size, size), Image.Resampling.BILINEAR), np.float32)
  mask = big > 0.5
  skeleton = thin(mask)
  rows = np.flatnonzero(mask.any(1))
  if not skeleton.any():
    raise ValueError('the digit has no ink')
  # The mean stroke width is the ink's area over the length of its centre line.
  if mask.sum() / skeleton.sum() > MAX_STROKE_SHARE * (rows[-1] - rows[0] + 1):
    raise ValueError('the digit is a blot that a pen line cannot redraw')
  # Specks of the scan (a piece of skeleton shorter than SPECK_SHARE of the height, apart from the rest)
  # are not strokes anyone drew.
  pieces, count = ndimage.label(skeleton, structure=np.ones((3, 3)))
  for box, label in zip(ndimage.find_objects(pieces), range(1, count + 1)):
    if count > 1 and max(box[0].stop - box[0].start, box[1].stop - box[1].start) < SPECK_SHARE * (rows[-1] - rows[0] + 1):
      skeleton = skeleton & (pieces != label)
  lines = [np.asarray(line, np.float64)[::2 if len(line) > 4 else 1] for line in trace(skeleton)]
  points = np.concatenate(lines)
  top, left = points.min(0)
  height = max(np.ptp(points[:, 0]), 1.0)
  return [np.stack([(line[:, 1] - left) / height, (line[:, 0] - top) / height], -1) for line in lines]


HEIGHTS = (0.35, 0.6)  # Shares of the window's height a number is written at.
# Ink gaps (canvas units) of numbers written with their digits touching or overlapping: up to half the
# window's pen either way.
TOUCHING = (-0.03, 0.03)


def compose(digits: np.ndarray, rng: np.random.Generator, heights: tuple[float, float] = HEIGHTS,
            gaps: tuple[float, float] | None = None) -> Strokes:
  """Window strokes (canvas units: the window's height is 1) of MNIST digits written left to right at
  random heights (a share of the window's, drawn from `heights`) and baselines, with random ink gaps,
  some of them small; or, given `gaps`, ink gaps drawn uniformly from that range of canvas units
  (TOUCHING: digits written touching or overlapping, as a hurried hand writes them)."""
  height = rng.uniform(*heights)
  pen = STROKE_WIDTH
  strokes: Strokes = []
  placed: list[np.ndarray] = []  # Points of the digits so far.
  for digit in digits:
    h = height * rng.uniform(0.85, 1.15)
    top = 0.5 - h / 2 + rng.uniform(-0.12, 0.12) * height
    # The skeleton is drawn with the pen, so the ink reaches pen / 2 beyond it on every side.
    lines = [line * (h - pen) + (0.0, top + pen / 2) for line in digit_strokes(digit)]
    if gaps is None:
      gap = height * (rng.uniform(0.04, 0.1) if rng.random() < 0.3 else rng.uniform(0.12, 0.45))
    else:
      gap = rng.uniform(*gaps)
    shift = 0.05 + pen / 2
    if placed:
      shift = _shift_for_gap(np.concatenate(placed), np.concatenate(lines), gap + pen, pen)
    lines = [line + (shift, 0.0) for line in lines]
    placed.append(np.concatenate(lines))
    strokes += [[(float(x), float(y)) for x, y in line] for line in lines]
  return strokes


def _shift_for_gap(before: np.ndarray, new: np.ndarray, gap: float, band: float) -> float:
  """The x shift that leaves `gap` between the rightmost point of `before` and the leftmost of `new` in
  the closest band of rows `band` high (or between their extents where no rows are shared)."""
  rows = lambda pts: np.floor(pts[:, 1] / band).astype(int)
  right, left = {}, {}
  for r, x in zip(rows(before), before[:, 0]):
    right[r] = max(right.get(r, -np.inf), x)
  for r, x in zip(rows(new), new[:, 0]):
    left[r] = min(left.get(r, np.inf), x)
  shared = [r for r in left if any(k in right for k in (r - 1, r, r + 1))]
  if not shared:
    return before[:, 0].max() + gap - new[:, 0].min()
  return max(max(right.get(k, -np.inf) for k in (r - 1, r, r + 1)) + gap - left[r] for r in shared)


def pick(labels: np.ndarray, images: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
  """`count` random indices of digits a pen can redraw (`usable`), drawn from `rng`."""
  out = []
  while len(out) < count:
    i = int(rng.integers(0, len(labels)))
    if usable(images[i]):
      out.append(i)
  return np.asarray(out)
