"""Development measures of a model: `python -m benchmarks.dev [--checkpoint DIR] [--limit N]`.

What to compare candidate models and `read_number` changes on, so that neither the MNIST test set nor
the benchmarks' seeds choose anything. Every digit comes from the validation split (held out from
training by `data.VALIDATION_SEED`), every generator runs at seeds that training, validation and the
benchmarks never use:
- "not a digit": the shares of held-out and training kinds of synthetic non-digits turned away;
- validation digits named correctly as MNIST frames them, and cropped and fitted again by
  `preprocess_drawing` (as every drawing and every part of a number is), with the share turned away;
- whole numbers of 2 to 6 validation digits, drawn and as photos, and single-digit photos: plain, of a
  sheet lying on a desk, of a page partly in a shadow, and written small on a notebook page photographed
  straight or askew (`benchmarks.numbers`' generators), with the wrong ones counted by kind: a wrong
  number of digits, a part turned away, or a digit misread;
- numbers and single digits written as the window's pen strokes (`benchmarks.pen`), through the
  window's path;
- the operating curve: both kinds of non-digits turned away at the thresholds where 2, 3 and 5% of
  single pen-written digits are, so that two models are compared at the same point of their trade
  between the two errors, not only at the point each one's calibration chose (`operating_point`).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

import numpy as np

from benchmarks import numbers as numbers_bench
from benchmarks.styles import crop_digit

DEV_SEED = 7_700_001  # Never used by training, validation or the benchmarks; nor are the next nine.
# Shares of single pen-written digits turned away at which the operating curve is read.
CURVE_SHARES = (0.02, 0.03, 0.05)


def measure(data_dir: str | None, limit: int | None = None, predictor=None) -> dict:
  from digitrec_jax import data as data_lib
  from digitrec_jax import load_mnist, load_predictor, nondigits, preprocess_drawing
  from digitrec_jax.config import TrainConfig
  from digitrec_jax.evaluate import predict_all
  from digitrec_jax.numbers import read_number
  predictor = predictor or load_predictor()
  train_images, train_labels = load_mnist('train', data_dir)
  # The presets' validation split (a model trained with a smaller `val_size` has seen some of it).
  _, (images, labels) = data_lib.split_validation(train_images, train_labels, TrainConfig().val_size)
  count = limit * 20 if limit else 2000
  result = {'checkpoint': predictor.info['path'].split('checkpoints/')[-1], 'seed': DEV_SEED}
  non_digit_scores = {}
  for name, seed, held_out in (('held_out', DEV_SEED, True), ('training_kinds', DEV_SEED + 1, False)):
    bank, _ = nondigits.make_non_digits(count, seed, (images, labels), held_out=held_out)
    read = predict_all(predictor, bank)
    result[f'{name}_rejected'] = float(np.mean(read.digits == -1))
    non_digit_scores[name] = read.digit_scores
  digits = images[:count]
  read = predict_all(predictor, digits)
  refit = (np.stack([preprocess_drawing(crop_digit(d), invert=False) for d in digits]) * 255).round()
  reread = predict_all(predictor, refit.astype(np.uint8))
  result.update(digits=len(digits), named=float(np.mean(read.digits == labels[:count])),
                refit_named=float(np.mean(reread.digits == labels[:count])),
                refit_turned_away=float(np.mean(reread.digits == -1)))
  rng = np.random.default_rng(DEV_SEED + 2)
  kinds = {'numbers_drawn': collections.Counter(), 'numbers_photo': collections.Counter()}
  for length in range(2, 7):
    for _ in range(limit or 80):
      idx = rng.integers(0, len(labels), length)
      truth = ''.join(str(d) for d in labels[idx])
      ink = numbers_bench.compose(images[idx], rng)
      for name, image in (('numbers_drawn', numbers_bench.as_drawing(ink)),
                          ('numbers_photo', numbers_bench.as_photo(ink, rng))):
        kinds[name][numbers_bench.miss_kind(read_number(predictor, image).text, truth)] += 1
  rng = np.random.default_rng(DEV_SEED + 3)
  singles = limit * 5 if limit else 1000
  kinds['single_photo'] = collections.Counter(numbers_bench.singles_read(
      predictor, images, labels, rng, singles, numbers_bench.as_photo))
  for name, offset in (('desk', 6), ('shadow', 7), ('notebook', 8), ('notebook_tilted', 9)):
    kinds[f'single_{name}'] = collections.Counter(numbers_bench.singles_read(
        predictor, images, labels, np.random.default_rng(DEV_SEED + offset), singles // 2,
        numbers_bench.SCENES[name]))
  for name, counter in kinds.items():
    result[name] = {'total': sum(counter.values()),
                    **{k: counter[k] for k in ('right', *numbers_bench.MISSES)}}
  result.update(numbers_bench.measure_pen(images, labels, predictor, limit or 80, limit * 5 if limit else 1000,
                                          seed=DEV_SEED + 4))
  scores, named = numbers_bench.pen_singles(predictor, images, labels, np.random.default_rng(DEV_SEED + 5),
                                            count // 2)
  result['operating_point'] = operating_point(non_digit_scores, scores, named, predictor.threshold)
  result['operating_curve'] = operating_curve(non_digit_scores, scores, named)
  return result


def operating_point(non_digit_scores: dict[str, np.ndarray], digit_scores: np.ndarray, named: np.ndarray,
                    threshold: float) -> dict:
  """At `threshold`: the share of the digits turned away, of each kind of non-digit turned away (score
  below the threshold, as `decide` does), and of the digits named correctly."""
  point = {'threshold': threshold, 'digits_turned_away': float(np.mean(digit_scores < threshold))}
  point.update({f'{name}_rejected': float(np.mean(s < threshold)) for name, s in non_digit_scores.items()})
  point['digits_named'] = float(np.mean(named & (digit_scores >= threshold)))
  return point


def operating_curve(non_digit_scores: dict[str, np.ndarray], digit_scores: np.ndarray, named: np.ndarray,
                    shares: tuple[float, ...] = CURVE_SHARES) -> list[dict]:
  """`operating_point` at the thresholds that turn away each share of the digits: the digit score with
  that share of the digits below it (0 where more than that share are wrong at every threshold)."""
  ordered = np.sort(digit_scores)
  return [operating_point(non_digit_scores, digit_scores, named,
                          max(float(ordered[min(int(share * len(ordered)), len(ordered) - 1)]), 0.0))
          for share in shares]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.dev', description=__doc__.splitlines()[0])
  parser.add_argument('--limit', type=int, default=None,
                      help='numbers per length (default 80); 20x as many non-digits and digits, 10x pen digits '
                      'for the operating curve, 5x photos')
  parser.add_argument('--data-dir', default=os.environ.get('DIGITREC_DATA_DIR'))
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  args = parser.parse_args(argv)
  if not args.data_dir:
    parser.error('pass --data-dir or set DIGITREC_DATA_DIR to the MNIST folder')
  from digitrec_jax import load_predictor
  print(json.dumps(measure(args.data_dir, args.limit, load_predictor(args.checkpoint)), indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
