"""Not a digit: `python -m benchmarks.rejection [--limit N] [--figure PNG]`.

On synthetic non-digits that training never sees, the share the shipped model rejects: shapes and fonts
held out from training (`nondigits.HELD_OUT_SHAPES`, `HELD_OUT_FONTS`), and the training kinds drawn with a
seed no run uses (parts and overlaps come from MNIST test digits). On the MNIST test set, and on digits drawn
with the window's pen from `nondigits.DIGIT_SHAPES` (a seed no run uses; the shapes are trained on), the
share named correctly when "not a digit" counts as an error. The curve of both against the threshold goes to a PNG,
with the operating point stored in the checkpoint marked. Used by `python -m benchmarks.run`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

SEED_HELD_OUT, SEED_KINDS, SEED_PEN = 9_100_001, 9_100_002, 9_100_003  # Never used by training or validation.


def measure(data_dir: str | None, limit: int | None = None, predictor=None, figure: Path | None = None) -> dict:
  from digitrec_jax import load_mnist, load_predictor, nondigits
  from digitrec_jax.evaluate import predict_all
  images, labels = load_mnist('test', data_dir)
  predictor = predictor or load_predictor()
  n = limit or 3000
  held_out, _ = nondigits.make_non_digits(n, SEED_HELD_OUT, (images, labels), held_out=True)
  kinds_images, kinds = nondigits.make_non_digits(n, SEED_KINDS, (images, labels))
  digits = predict_all(predictor, images[:limit] if limit else images)
  y = labels[:len(digits.digits)]
  on_held = predict_all(predictor, held_out)
  pen_images, pen_labels = nondigits.make_pen_digits(n, SEED_PEN)
  on_pen = predict_all(predictor, pen_images)
  on_kinds = predict_all(predictor, kinds_images)
  t = predictor.threshold
  per_kind = {name: float(np.mean(on_kinds.digit_scores[kinds == k] < t)) for k, name in enumerate(nondigits.KINDS)}
  result = {
      'threshold': t, 'score': predictor.info.get('calibration', {}).get('score', 'max_probability'),
      'held_out_rejected': float(np.mean(on_held.digit_scores < t)), 'held_out_count': n,
      'new_seed_rejected': float(np.mean(on_kinds.digit_scores < t)), 'new_seed_by_kind': per_kind,
      'mnist_test_named_correctly': float(np.mean(digits.digits == y)),
      'pen_digits_named_correctly': float(np.mean(on_pen.digits == pen_labels)),
      'pen_digits_rejected': float(np.mean(on_pen.digit_scores < t)),
      'mnist_test_rejected': float(np.mean(digits.digit_scores < t)),
      'mnist_test_accuracy': float(np.mean(digits.probs.argmax(-1) == y)), 'mnist_test_count': int(len(y)),
      'checkpoint': predictor.info['path'].split('checkpoints/')[-1]}
  if figure is not None:
    _figure(digits, y, on_held, on_kinds, t, figure)
  return result


def _figure(digits, y, on_held, on_kinds, t, path: Path) -> None:
  from digitrec_jax.evaluate import _pyplot
  plt = _pyplot()
  grid = np.linspace(0, 1, 201)
  named = [np.mean((digits.digit_scores >= g) & (digits.probs.argmax(-1) == y)) for g in grid]
  fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
  ax.plot(grid, [100 * np.mean(on_held.digit_scores < g) for g in grid], label='held-out non-digits rejected')
  ax.plot(grid, [100 * np.mean(on_kinds.digit_scores < g) for g in grid], label='non-digits, new seed, rejected')
  ax.plot(grid, 100 * np.array(named), label='MNIST test named correctly')
  ax.axvline(t, color='#999', ls='--', lw=1, label=f'stored threshold {t:.3f}')
  ax.set_xlabel('threshold on the digit score')
  ax.set_ylabel('%')
  ax.set_ylim(0, 101)
  ax.legend(fontsize=8, loc='lower left')
  ax.set_title('"not a digit": rejection against the threshold', fontsize=10)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.rejection', description=__doc__.splitlines()[0])
  parser.add_argument('--limit', type=int, default=None, help='non-digits per set (default 3000) and MNIST '
                      'test digits (default all)')
  parser.add_argument('--data-dir', default=os.environ.get('DIGITREC_DATA_DIR'))
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  parser.add_argument('--figure', default=None, help='write the rejection curve to this PNG')
  args = parser.parse_args(argv)
  from digitrec_jax import load_predictor
  result = measure(args.data_dir, args.limit, load_predictor(args.checkpoint),
                   Path(args.figure) if args.figure else None)
  print(json.dumps(result, indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
