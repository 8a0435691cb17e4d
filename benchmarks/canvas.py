"""Canvas robustness: `python -m benchmarks.canvas [--limit N] [--figure PNG]`.

Draws each MNIST test digit as a user would in the window: dark on a light 280x280 canvas, at a
random position and size (digit height 25-90% of the canvas), with randomly thickened strokes.
Reports the shipped model's accuracy through `preprocess_drawing` (what the GUI does) and through
a naive resize of the whole canvas to 28x28, for comparison. Used by `python -m benchmarks.run`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

CANVAS = 280
HEIGHT_RANGE = (0.25, 0.90)  # digit height as a fraction of the canvas
# Extra stroke radius, as a fraction of the drawn digit's height (MNIST strokes are about 1/10 of it).
THICKEN_RANGE = (0.0, 0.04)


def draw_on_canvas(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, dict]:
  """One MNIST digit [28, 28(, 1)] uint8, white on black -> a 280x280 'L' canvas, dark on light."""
  ink = np.asarray(digit, np.float32).reshape(28, 28) / 255.0
  rows = np.flatnonzero((ink > 0.1).any(1))
  cols = np.flatnonzero((ink > 0.1).any(0))
  crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
  height_frac = rng.uniform(*HEIGHT_RANGE)
  scale = height_frac * CANVAS / crop.shape[0]
  scale = min(scale, 0.95 * CANVAS / crop.shape[1])  # A wide digit still fits the canvas.
  h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
  big = Image.fromarray(np.clip(crop * 255, 0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
  radius = int(round(rng.uniform(*THICKEN_RANGE) * h))
  if radius:
    big = Image.fromarray(np.pad(np.asarray(big), radius))
    for _ in range(radius):  # Repeated 3x3 dilation: each pass widens the stroke by 1 px per side.
      big = big.filter(ImageFilter.MaxFilter(3))
  strokes = np.asarray(big)
  h, w = strokes.shape
  h, w = min(h, CANVAS), min(w, CANVAS)
  top, left = rng.integers(0, CANVAS - h + 1), rng.integers(0, CANVAS - w + 1)
  canvas = np.zeros((CANVAS, CANVAS), np.uint8)
  canvas[top:top + h, left:left + w] = strokes[:h, :w]
  return Image.fromarray(255 - canvas), {'height_frac': height_frac, 'radius': radius}


def naive_resize(canvas: Image.Image) -> np.ndarray:
  """The whole canvas shrunk to 28x28 and inverted: what a pipeline without MNIST preprocessing does."""
  small = np.asarray(canvas.resize((28, 28), Image.Resampling.BILINEAR), np.float32) / 255.0
  return (1.0 - small)[..., None]


def measure(data_dir: str | None, limit: int | None = None, seed: int = 0, figure: Path | None = None) -> dict:
  """Accuracy of the shipped model on canvas-drawn test digits: with preprocess_drawing and naive."""
  from digitrec_jax import load_mnist, load_predictor, preprocess_drawing
  from digitrec_jax.evaluate import predict_all
  images, labels = load_mnist('test', data_dir)
  if limit:
    images, labels = images[:limit], labels[:limit]
  predictor = load_predictor()
  rng = np.random.default_rng(seed)
  t0 = time.perf_counter()
  ours = np.empty((len(labels), 28, 28, 1), np.float32)
  naive = np.empty_like(ours)
  facts = []
  examples = []
  for i, digit in enumerate(images):
    canvas, fact = draw_on_canvas(digit, rng)
    ours[i] = preprocess_drawing(canvas, invert=True)
    naive[i] = naive_resize(canvas)
    facts.append(fact)
    if len(examples) < 8:
      examples.append(canvas)
  seconds = time.perf_counter() - t0
  # Float inputs, exactly what the GUI hands the predictor.
  pred_ours = predict_all(predictor, ours).probs.argmax(-1)
  pred_naive = predict_all(predictor, naive).probs.argmax(-1)
  heights = np.array([f['height_frac'] for f in facts])
  by_height = {}
  for lo, hi in ((0.25, 0.45), (0.45, 0.65), (0.65, 0.9)):
    sel = (heights >= lo) & (heights < hi + 1e-9)
    by_height[f'{lo:.2f}-{hi:.2f}'] = {
        'count': int(sel.sum()),
        'preprocess_accuracy': float(np.mean(pred_ours[sel] == labels[sel])) if sel.any() else None,
        'naive_accuracy': float(np.mean(pred_naive[sel] == labels[sel])) if sel.any() else None}
  result = {'count': int(len(labels)), 'seed': seed,
            'preprocess_accuracy': float(np.mean(pred_ours == labels)),
            'naive_resize_accuracy': float(np.mean(pred_naive == labels)),
            'by_height': by_height, 'draw_and_preprocess_seconds': round(seconds, 1),
            'checkpoint': predictor.info['path'].split('checkpoints/')[-1]}
  if figure is not None:
    _figure(examples, ours[:len(examples)], naive[:len(examples)], labels, pred_ours, pred_naive, result, figure)
  return result


def _figure(canvases, ours, naive, labels, pred_ours, pred_naive, result, path: Path) -> None:
  from digitrec_jax.evaluate import _pyplot
  plt = _pyplot()
  n = len(canvases)
  fig, axes = plt.subplots(3, n, figsize=(1.5 * n, 4.9), dpi=100, squeeze=False)
  for j in range(n):
    axes[0, j].imshow(np.asarray(canvases[j]), cmap='gray', vmin=0, vmax=255)
    axes[0, j].set_title(f'drawn {labels[j]}', fontsize=8)
    axes[1, j].imshow(ours[j, ..., 0], cmap='gray', vmin=0, vmax=1)
    axes[1, j].set_title(f'preprocess → {pred_ours[j]}', fontsize=8, color='black' if pred_ours[j] == labels[j] else 'red')
    axes[2, j].imshow(naive[j, ..., 0], cmap='gray', vmin=0, vmax=1)
    axes[2, j].set_title(f'naive → {pred_naive[j]}', fontsize=8, color='black' if pred_naive[j] == labels[j] else 'red')
  for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(f'{result["count"]:,} test digits drawn on a 280x280 canvas: preprocess_drawing '
               f'{result["preprocess_accuracy"]:.2%}, naive resize {result["naive_resize_accuracy"]:.2%}',
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.canvas', description=__doc__.splitlines()[0])
  parser.add_argument('--limit', type=int, default=None, help='first N test digits (default: all 10,000)')
  parser.add_argument('--data-dir', default=os.environ.get('DIGITREC_DATA_DIR'))
  parser.add_argument('--figure', default=None, help='write example canvases and their 28x28 inputs to this PNG')
  args = parser.parse_args(argv)
  print(json.dumps(measure(args.data_dir, args.limit, figure=Path(args.figure) if args.figure else None), indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
