"""Whole numbers: `python -m benchmarks.numbers [--limit N]`.

Numbers of 2 to 6 digits made from MNIST test digits, drawn dark on a light canvas at the window's
scale: random gaps (some nearly touching), sizes and baselines. The same numbers are also rendered as
photos: darker ink on light-grey or beige paper under an illumination gradient, with noise and JPEG
compression; and single digits as photos, also written small on ruled or squared notebook pages, photographed
straight or askew, on a sheet lying on a darker desk, or partly in a shadow with a sharp edge.
Reports whole-number accuracy by length through `read_number`, the library's path for files. Other
numbers, and single digits, are written as the window's pen strokes (`benchmarks.pen`: each digit's
skeleton traced into strokes) and read as the window reads them; single digits also written small. A
development aid with its own seeds, not a held-out measure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

import numpy as np
from PIL import Image

from benchmarks.styles import crop_digit

SEED = 5_150_001  # Never used by training.
HEIGHT = 280
SMALL_HEIGHTS = (0.15, 0.33)  # Of the window's height, for single pen-written digits written small.
TILT = 5.0  # Degrees either way, for notebook pages photographed askew.


def compose(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Ink [H, W] in [0, 1] of MNIST digits written left to right."""
  height = rng.uniform(0.35, 0.6) * HEIGHT
  pieces, x = [], 20
  for digit in digits:
    crop = crop_digit(digit)
    h = max(8, int(height * rng.uniform(0.85, 1.15)))
    w = max(3, int(crop.shape[1] * h / crop.shape[0]))
    big = np.asarray(Image.fromarray(crop, mode='F').resize((w, h), Image.Resampling.BILINEAR), np.float32)
    top = int(HEIGHT / 2 - h / 2 + rng.uniform(-0.12, 0.12) * height)
    pieces.append((x, max(0, top), big))
    gap = height * (rng.uniform(0.04, 0.1) if rng.random() < 0.3 else rng.uniform(0.12, 0.45))
    x += w + int(gap)
  canvas = np.zeros((HEIGHT, x + 20), np.float32)
  for left, top, big in pieces:
    h, w = big.shape
    region = canvas[top:top + h, left:left + w]
    region[...] = np.maximum(region, big[:region.shape[0], :region.shape[1]])
  return canvas


def as_drawing(ink: np.ndarray) -> np.ndarray:
  return (255 * (1 - np.clip(ink, 0, 1))).astype(np.uint8)


def as_photo(ink: np.ndarray, rng: np.random.Generator, scene=None) -> np.ndarray:
  """Ink on grey or beige paper, lit unevenly, with sensor noise and JPEG compression (RGB uint8);
  `scene(rgb, rng)`, if given, changes the lit page before the noise (`on_desk`, `in_shadow`)."""
  h, w = ink.shape
  paper = np.array([0.82, 0.8, 0.78]) if rng.random() < 0.5 else np.array([0.9, 0.84, 0.7])
  paper = paper * rng.uniform(0.8, 1.05)
  angle = rng.uniform(0, 2 * np.pi)
  ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
  light = 1 + rng.uniform(0.1, 0.3) * ((xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle))
  strength = rng.uniform(0.55, 0.85)
  rgb = paper[None, None] * light[..., None] * (1 - strength * np.clip(ink, 0, 1)[..., None])
  if scene is not None:
    rgb = scene(rgb, rng)
  rgb = rgb + rng.normal(0, 0.02, rgb.shape)
  image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG', quality=int(rng.integers(60, 90)))
  return np.asarray(Image.open(buffer).convert('RGB'))


def on_notebook_page(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """`ink` written small on a page of a ruled or squared notebook: printed lines a tenth to a fifth of
  the page apart, fainter than the ink (a sixth to two fifths of its darkness), 1-3 px wide. Ink [H, W]."""
  h, w = ink.shape
  page = np.pad(ink, ((h // 2, h // 2), (w // 2 + 40, w // 2 + 40)))
  gap = rng.uniform(0.1, 0.2) * page.shape[0]
  width, faint = int(rng.integers(1, 4)), rng.uniform(0.17, 0.4)
  lines = np.zeros_like(page)
  for at in np.arange(rng.uniform(0, gap), page.shape[0], gap).astype(int):
    lines[at:at + width] = faint
  if rng.random() < 0.5:  # Squared paper.
    for at in np.arange(rng.uniform(0, gap), page.shape[1], gap).astype(int):
      lines[:, at:at + width] = faint
  return np.maximum(page, lines)


def on_desk(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A lit page [H, W, 3] as a sheet lying on a darker desk: the sheet a rectangle turned up to 15 degrees,
  each of its sides in the photo with probability 0.6 (one at least), between the writing and the image's
  edge; beyond them the desk, a darker tint of the same light (a fifth to three fifths as bright)."""
  h, w, _ = rgb.shape
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  turn = np.radians(rng.uniform(-15, 15))
  along = (xs - w / 2) * np.cos(turn) + (ys - h / 2) * np.sin(turn)
  across = -(xs - w / 2) * np.sin(turn) + (ys - h / 2) * np.cos(turn)
  shown = rng.random(4) < 0.6
  shown[rng.integers(4)] = True
  # The writing fills about the central half of each side (`sheet_photo` pads it by a half).
  reach = np.where(shown, rng.uniform(0.58, 0.9, 4), 10.0)
  sheet = ((along > -reach[0] * w / 2) & (along < reach[1] * w / 2)
           & (across > -reach[2] * h / 2) & (across < reach[3] * h / 2))
  tint = rng.uniform(0.2, 0.6) * rng.uniform(0.75, 1.0, 3)
  return np.where(sheet[..., None], rgb, rgb * tint)


def in_shadow(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A lit page [H, W, 3] partly in a shadow: a half-plane at any angle, its edge up to a third of the short
  side from the page's centre (through the writing or beside it) and blurred over 1-10 px, in which the
  page is 30-60% darker."""
  h, w, _ = rgb.shape
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  offset = rng.uniform(-1 / 3, 1 / 3) * min(h, w)
  distance = (xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle) - offset
  inside = 1 / (1 + np.exp(-np.clip(distance / rng.uniform(1, 10), -50, 50)))
  return rgb * (1 - rng.uniform(0.3, 0.6) * inside)[..., None]


def sheet_photo(ink: np.ndarray, rng: np.random.Generator, scene) -> np.ndarray:
  """`ink` [H, W] on a page padded by half its size each way, photographed (`as_photo`) with `scene`."""
  h, w = ink.shape
  return as_photo(np.pad(ink, ((h // 2, h // 2), (w // 2, w // 2))), rng, scene)


def notebook_photo(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  return as_photo(on_notebook_page(ink, rng), rng)


def tilted_notebook_photo(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """The same kind of page photographed askew, as a phone held by hand takes it."""
  return as_photo(tilted(on_notebook_page(ink, rng), rng), rng)


def desk_photo(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  return sheet_photo(ink, rng, on_desk)


def shadow_photo(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  return sheet_photo(ink, rng, in_shadow)


# The scenes single digits are photographed in besides plain paper, each `photograph(ink, rng)` for
# `singles_read`; `measure` reads them at SEED + 2, 3, 4, 5 in this order.
SCENES = {'notebook': notebook_photo, 'notebook_tilted': tilted_notebook_photo, 'desk': desk_photo,
          'shadow': shadow_photo}


def tilted(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Ink [H, W] turned by up to TILT degrees either way (the whole turned page, corners left blank)."""
  angle = rng.uniform(-TILT, TILT)
  return np.asarray(Image.fromarray(ink, mode='F').rotate(angle, Image.Resampling.BILINEAR, expand=True), np.float32)


def miss_kind(got: str, truth: str) -> str:
  """How a reading `got` of the number `truth` went: 'right', 'wrong_count' (another number of digits),
  'turned_away' (a part read as not a digit) or 'misread' (a digit read as another)."""
  if got == truth:
    return 'right'
  if len(got) != len(truth):
    return 'wrong_count'
  return 'turned_away' if '?' in got else 'misread'


MISSES = ('wrong_count', 'turned_away', 'misread')


def _misses(kinds: list[str]) -> dict[str, int]:
  return {k: kinds.count(k) for k in MISSES}


def _right(kinds: list[str]) -> float:
  """The share of `miss_kind`s that are 'right'."""
  return float(np.mean([k == 'right' for k in kinds]))


def singles_read(predictor, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, count: int,
                 photograph) -> list[str]:
  """`miss_kind` of each of `count` random digits of `images`, each written alone (`compose`), turned
  into an image by `photograph(ink, rng)` and read by `read_number`."""
  from digitrec_jax.numbers import read_number
  idx = rng.integers(0, len(labels), count)
  return [miss_kind(read_number(predictor, photograph(compose(images[i:i + 1], rng), rng)).text, str(labels[i]))
          for i in idx]


def measure(data_dir: str | None, limit: int | None = None, predictor=None) -> dict:
  from digitrec_jax import load_mnist, load_predictor
  from digitrec_jax.numbers import read_number
  images, labels = load_mnist('test', data_dir)
  predictor = predictor or load_predictor()
  per_length = limit or 100
  rng = np.random.default_rng(SEED)
  result = {'drawn': {}, 'photo': {}}
  kinds = {'drawn': [], 'photo': []}
  for length in range(2, 7):
    for _ in range(per_length):
      idx = rng.integers(0, len(labels), length)
      truth = ''.join(str(d) for d in labels[idx])
      ink = compose(images[idx], rng)
      for kind, image in (('drawn', as_drawing(ink)), ('photo', as_photo(ink, rng))):
        kinds[kind].append(miss_kind(read_number(predictor, image).text, truth))
    for kind in kinds:
      result[kind][str(length)] = _right(kinds[kind][-per_length:])
  for kind in kinds:
    result[kind]['all'] = float(np.mean([result[kind][str(n)] for n in range(2, 7)]))
    result[f'{kind}_misses'] = _misses(kinds[kind])
  singles = limit * 5 if limit else 1000
  single_kinds = singles_read(predictor, images, labels, rng, singles, as_photo)
  result['photo_single_digit'] = _right(single_kinds)
  result['photo_single_digit_misses'] = _misses(single_kinds)
  result.update(measure_pen(images, labels, predictor, per_length, singles))
  for offset, (name, photograph) in enumerate(SCENES.items(), 2):
    result[f'{name}_single_digit'] = _right(singles_read(
        predictor, images, labels, np.random.default_rng(SEED + offset), singles // 2, photograph))
  result.update(numbers_per_length=per_length, single_digit_photos=singles, notebook_tilt_degrees=TILT, seed=SEED,
                checkpoint=predictor.info['path'].split('checkpoints/')[-1])
  return result


def measure_pen(images: np.ndarray, labels: np.ndarray, predictor, per_length: int, singles: int,
                seed: int = SEED + 1) -> dict:
  """Numbers and single digits written as the window's strokes (`benchmarks.pen`) and read through the
  window's own path, `read_number` of the strokes: whole-number accuracy by length, written apart and
  with the digits touching, and the share of single digits named correctly and turned away."""
  from benchmarks import pen
  from digitrec_jax.numbers import read_number
  rng = np.random.default_rng(seed)

  def by_length(rng: np.random.Generator, gaps: tuple[float, float] | None = None) -> dict[str, float]:
    shares = {}
    for length in range(2, 7):
      right = 0
      for _ in range(per_length):
        idx = pen.pick(labels, images, rng, length)
        strokes = pen.compose(images[idx], rng, gaps=gaps)
        right += read_number(predictor, strokes).text == ''.join(str(d) for d in labels[idx])
      shares[str(length)] = right / per_length
    shares['all'] = float(np.mean(list(shares.values())))
    return shares

  pen_numbers = by_length(rng)
  # The same lengths written with their digits touching (`pen.TOUCHING`), from a stream of their own so
  # that the other figures stay as they were.
  touching = by_length(np.random.default_rng([seed, 1]), pen.TOUCHING)
  threshold = predictor.threshold
  read = {'single': pen_singles(predictor, images, labels, rng, singles),
          # Digits written small, 0.15-0.33 of the window's height: the window's pen is bold on them.
          'small': pen_singles(predictor, images, labels, rng, singles // 2, SMALL_HEIGHTS)}
  result = {'pen': pen_numbers, 'pen_touching': touching}
  for name, (scores, named) in read.items():
    result[f'pen_{name}_digit'] = float(np.mean(named & (scores >= threshold)))
    result[f'pen_{name}_digit_turned_away'] = float(np.mean(np.isfinite(scores) & (scores < threshold)))
  return result


def pen_singles(predictor, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, count: int,
                heights: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """`count` random digits of `images` written alone as the window's pen strokes (at `heights` of the
  window, `benchmarks.pen`'s by default) and read through the window's path, `read_number`: each one's
  digit score [count] (-inf where it reads as other than one part: wrong at every threshold), and
  whether its likeliest digit is the right one [count]. Named correctly = right and the score at least
  the threshold; turned away ('?') = a finite score under it."""
  from benchmarks import pen
  from digitrec_jax.numbers import read_number
  scores, named = [], []
  for i in pen.pick(labels, images, rng, count):
    parts = read_number(predictor, pen.compose(images[i:i + 1], rng, heights or pen.HEIGHTS)).digits
    one = len(parts) == 1
    scores.append(parts[0].digit_score if one else -np.inf)
    named.append(one and int(np.argmax(parts[0].probs)) == labels[i])
  return np.asarray(scores, np.float64), np.asarray(named, bool)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.numbers', description=__doc__.splitlines()[0])
  parser.add_argument('--limit', type=int, default=None, help='numbers per length (default 100)')
  parser.add_argument('--data-dir', default=os.environ.get('DIGITREC_DATA_DIR'))
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  args = parser.parse_args(argv)
  from digitrec_jax import load_predictor
  print(json.dumps(measure(args.data_dir, args.limit, load_predictor(args.checkpoint)), indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
