"""Writer styles: `python -m benchmarks.styles [--limit N]`.

MNIST test digits redrawn in conventions that MNIST rarely holds, each on the window's 280x280 canvas
and through `preprocess_drawing`, as the window does: slashed and dotted zeros, continental ones (flag
and base), crossed sevens, digits stretched wider or narrower, thick and thin pens, and shaky lines.
The generator is its own (PIL on the canvas, sinusoidal wobble) with its own seeds: it is not the
training augmentation, which works on 28x28 images on the device. A development aid, not a held-out
measure. Reports accuracy per form (the best of the ten digits) and the share named correctly when
"not a digit" counts as an error. Used by `python -m benchmarks.run`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CANVAS = 280
SEED = 424242  # Never used by training.
FORMS = ('plain', 'slashed_zero', 'dotted_zero', 'continental_one', 'crossed_seven', 'wide', 'narrow',
         'thick_pen', 'thin_pen', 'shaky')
_CLASS = {'slashed_zero': 0, 'dotted_zero': 0, 'continental_one': 1, 'crossed_seven': 7}


def crop_digit(digit: np.ndarray) -> np.ndarray:
  """An MNIST digit [28, 28(, 1)] uint8 -> its ink in [0, 1], cropped to the strokes."""
  ink = np.asarray(digit, np.float32).reshape(28, 28) / 255.0
  rows, cols = np.flatnonzero((ink > 0.1).any(1)), np.flatnonzero((ink > 0.1).any(0))
  return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _pen(crop: np.ndarray) -> float:
  """MNIST pen width in crop pixels: ink pixels per ink run, over the rows."""
  on = crop > 0.5
  runs = np.sum(on[:, 1:] & ~on[:, :-1]) + np.sum(on[:, 0])
  return float(max(on.sum() / max(runs, 1), 1.0))


def draw(digit: np.ndarray, form: str, rng: np.random.Generator) -> Image.Image:
  """One MNIST test digit drawn on a light canvas in `form`."""
  crop = crop_digit(digit)
  aspect = {'wide': rng.uniform(1.5, 2.2), 'narrow': rng.uniform(0.45, 0.65)}.get(form, 1.0)
  height = rng.uniform(0.3, 0.85) * CANVAS
  width = min(crop.shape[1] * height / crop.shape[0] * aspect, 0.95 * CANVAS)
  h, w = max(1, round(height)), max(1, round(width))
  big = np.asarray(Image.fromarray(crop, mode='F').resize((w, h), Image.Resampling.BILINEAR), np.float32)
  pen = _pen(crop) * h / crop.shape[0]
  image = Image.fromarray(np.clip(big * 255, 0, 255).astype(np.uint8))
  if form == 'thick_pen':
    for _ in range(max(1, round(pen * rng.uniform(0.15, 0.3)))):
      image = image.filter(ImageFilter.MaxFilter(3))
  if form == 'thin_pen':
    for _ in range(max(1, round(pen * rng.uniform(0.12, 0.2)))):
      image = image.filter(ImageFilter.MinFilter(3))
  top, left = rng.integers(0, CANVAS - h + 1), rng.integers(0, CANVAS - w + 1)
  canvas = Image.new('L', (CANVAS, CANVAS), 0)
  canvas.paste(image, (int(left), int(top)))
  d = ImageDraw.Draw(canvas)
  pw = max(2, round(pen))
  l, t, r, b = left, top, left + w, top + h
  if form == 'slashed_zero':
    d.line([(l - 0.05 * w + rng.uniform(0, 0.15) * w, b + 0.05 * h), (r + 0.05 * w - rng.uniform(0, 0.15) * w, t - 0.05 * h)],
           fill=255, width=pw)
  elif form == 'dotted_zero':
    cx, cy, rad = (l + r) / 2, (t + b) / 2, pw * 0.8
    d.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=255)
  elif form in ('continental_one', 'crossed_seven'):
    ink = np.asarray(canvas, np.float32) > 128
    def stem(y):  # The ink's mean column on canvas row y.
      xs = np.flatnonzero(ink[int(np.clip(y, 0, CANVAS - 1))])
      return float(xs.mean()) if xs.size else (l + r) / 2
    if form == 'continental_one':
      x0, length = stem(t + 2), h * rng.uniform(0.3, 0.5)
      angle = math.radians(rng.uniform(25, 50))
      d.line([(x0 - length * math.cos(angle), t + length * math.sin(angle)), (x0, t)], fill=255, width=pw)
      if rng.random() < 0.6:
        xb, half = stem(b - 2), h * rng.uniform(0.15, 0.25)
        d.line([(xb - half, b - pw / 2), (xb + half, b - pw / 2)], fill=255, width=pw)
    else:
      y = t + h * rng.uniform(0.45, 0.6)
      xm, half = stem(y), max(w * rng.uniform(0.2, 0.3), 2 * pw)
      d.line([(xm - half, y), (xm + half, y + rng.uniform(-0.05, 0.05) * h)], fill=255, width=pw)
  ink = np.asarray(canvas, np.float32)
  if form == 'shaky':  # A wobble of a few sinusoids, unlike training's blurred noise.
    ys, xs = np.indices(ink.shape, dtype=np.float32)
    dy = dx = 0.0
    for _ in range(3):
      k, phase, amp = rng.uniform(0.03, 0.09), rng.uniform(0, 2 * math.pi, 2), pen * rng.uniform(0.08, 0.16)
      dy = dy + amp * np.sin(k * xs + phase[0])
      dx = dx + amp * np.sin(k * ys + phase[1])
    sy, sx = np.clip(np.round(ys + dy), 0, CANVAS - 1).astype(int), np.clip(np.round(xs + dx), 0, CANVAS - 1).astype(int)
    ink = ink[sy, sx]
  return Image.fromarray(255 - np.clip(ink, 0, 255).astype(np.uint8))


def measure(data_dir: str | None, limit: int | None = None, predictor=None) -> dict:
  """Accuracy and named-correctly share per form, on the shipped model (or `predictor`)."""
  from digitrec_jax import load_mnist, load_predictor, preprocess_drawing
  from digitrec_jax.evaluate import predict_all
  from digitrec_jax.model import NOT_A_DIGIT
  images, labels = load_mnist('test', data_dir)
  predictor = predictor or load_predictor()
  n = limit or 2000
  results = {}
  for i, form in enumerate(FORMS):
    rng = np.random.default_rng([SEED, i])
    idx = np.flatnonzero(labels == _CLASS[form]) if form in _CLASS else np.arange(len(labels))
    idx = idx[:n]
    x = np.stack([preprocess_drawing(draw(images[j], form, rng)) for j in idx])
    result = predict_all(predictor, x)
    y = labels[idx]
    results[form] = {'count': int(len(idx)), 'accuracy': float(np.mean(result.probs.argmax(-1) == y)),
                     'named_correctly': float(np.mean(result.digits == y)),
                     'rejected': float(np.mean(result.digits == NOT_A_DIGIT))}
  return {'forms': results, 'seed': SEED, 'checkpoint': predictor.info['path'].split('checkpoints/')[-1]}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.styles', description=__doc__.splitlines()[0])
  parser.add_argument('--limit', type=int, default=None, help='digits per form (default 2000; a class form '
                      'uses that class only)')
  parser.add_argument('--data-dir', default=os.environ.get('DIGITREC_DATA_DIR'))
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  args = parser.parse_args(argv)
  from digitrec_jax import load_predictor
  print(json.dumps(measure(args.data_dir, args.limit, load_predictor(args.checkpoint)), indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
