"""Inference: `load_predictor` and `python -m digitrec_jax.predict IMG [IMG ...]`."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from digitrec_jax.checkpoint import CheckpointError, restore_for_inference, restore_params
from digitrec_jax.config import TrainConfig
from digitrec_jax.model import CNN, IMAGE_SHAPE, ApplyFn, make_apply_fn

CHECKPOINTS_DIR = Path(__file__).resolve().parents[1] / 'checkpoints'
PRETRAINED_DIR = CHECKPOINTS_DIR / 'pretrained'
# Images larger than this many pixels are refused before decoding (a decompression-bomb guard).
MAX_IMAGE_PIXELS = 40_000_000


def default_checkpoint_dir() -> Path:
  """The shipped pretrained checkpoint, else the newest run under checkpoints/."""
  if (PRETRAINED_DIR / 'best').is_dir():
    return PRETRAINED_DIR
  runs = [d for d in CHECKPOINTS_DIR.glob('*') if (d / 'best').is_dir() or (d / 'state').is_dir()]
  if not runs:
    raise CheckpointError(f'no checkpoint under {CHECKPOINTS_DIR}; train one with `python train.py`')
  return max(runs, key=lambda d: d.stat().st_mtime)


def load_model(checkpoint_dir: str | Path | None = None) -> tuple[ApplyFn, Any]:
  """(apply_fn, params): the pure `apply_fn(params, images) -> logits` and its weights."""
  root = default_checkpoint_dir() if checkpoint_dir is None else Path(checkpoint_dir)
  params, config = restore_params(root)
  return make_apply_fn(CNN.from_config(config.model)), params


def input_saliency(apply_fn: ApplyFn, params: Any, image: jax.Array) -> jax.Array:
  """d(logit of the predicted class)/d(pixel) for one image [28, 28, 1] -> [28, 28]."""
  def top_logit(x):
    logits = apply_fn(params, x[None])[0]
    return logits[jnp.argmax(jax.lax.stop_gradient(logits))]
  return jax.grad(top_logit)(image)[..., 0]


class Predictor:
  """A restored model with jitted `predict_proba` and `saliency`; one image at a time compiles once."""

  def __init__(self, params: Any, config: TrainConfig, info: dict[str, Any]):
    self.params, self.config, self.info = params, config, info
    self.trace_count = 0
    self.apply_fn = make_apply_fn(CNN.from_config(config.model))

    def proba(params, images):
      self.trace_count += 1  # Runs only while tracing: counts compilations.
      return jax.nn.softmax(self.apply_fn(params, images), axis=-1)

    self._proba = jax.jit(proba)
    self._saliency = jax.jit(functools.partial(input_saliency, self.apply_fn))
    self.predict_proba(np.zeros((1, *IMAGE_SHAPE), np.float32))  # Warm up the GUI's shape.

  def saliency(self, image: np.ndarray) -> np.ndarray:
    """Input-gradient saliency [28, 28] of the predicted class for one image [28, 28, 1]."""
    image = np.asarray(image, np.float32)
    if image.shape != IMAGE_SHAPE:
      raise ValueError(f'expected one image of shape [28, 28, 1], got {list(image.shape)}')
    return np.asarray(self._saliency(self.params, image))

  def predict_proba(self, images: np.ndarray) -> np.ndarray:
    """Probabilities [B, 10] for float32 images [B, 28, 28, 1] in [0, 1]."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
      raise ValueError(f'expected images of shape [B, 28, 28, 1], got {list(images.shape)}')
    return np.asarray(self._proba(self.params, images))

  def describe(self) -> str:
    accuracy = self.info.get('test_accuracy')
    acc = f'test accuracy {accuracy:.2%}' if accuracy is not None else 'test accuracy unknown'
    device = jax.devices()[0]
    path = Path(self.info['path'])
    if path.is_relative_to(Path.cwd()):
      path = path.relative_to(Path.cwd())
    return f'{path} · step {self.info["step"]} · {acc} · {device.platform}' + (
        f' ({device.device_kind})' if device.device_kind != device.platform else '')


def load_predictor(checkpoint_dir: str | Path | None = None) -> Predictor:
  """A Predictor for `checkpoint_dir` (default: the shipped pretrained checkpoint)."""
  root = default_checkpoint_dir() if checkpoint_dir is None else Path(checkpoint_dir)
  params, config, info = restore_for_inference(root)
  return Predictor(params, config, info)


class ImageFileError(ValueError):
  """A file that cannot be used as a digit image."""


def read_image_file(path: str | Path):
  """Opens an image file for prediction, refusing empty, non-image and oversized files."""
  from PIL import Image
  path = Path(path)
  if path.is_dir():
    raise ImageFileError(f'{path} is a directory; pass image files')
  if not path.exists():
    raise ImageFileError(f'{path} does not exist')
  if path.stat().st_size == 0:
    raise ImageFileError(f'{path} is an empty file')
  try:
    with Image.open(path) as image:
      if image.width * image.height > MAX_IMAGE_PIXELS:
        raise ImageFileError(f'{path} is {image.width}x{image.height} pixels, over the '
                             f'{MAX_IMAGE_PIXELS:,}-pixel limit; scale it down')
      image.load()
      return image.copy()
  except ImageFileError:
    raise
  except Exception as e:  # Pillow signals undecodable data with several exception types.
    raise ImageFileError(f'{path} is not a readable image ({type(e).__name__}); pass a PNG, JPEG or '
                         'other image file') from None


def looks_inverted(image) -> bool:
  """Whether an image has a light background (dark strokes), judged by its border pixels."""
  from digitrec_jax.preprocess import _to_grayscale
  gray = _to_grayscale(image, background=255)
  border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
  return float(np.median(border)) > 0.5


def main(argv: list[str] | None = None) -> int:
  from digitrec_jax.preprocess import EmptyDrawingError, preprocess_drawing

  parser = argparse.ArgumentParser(prog='python -m digitrec_jax.predict',
                                   description='Recognise the digit in each image file.')
  parser.add_argument('images', nargs='+', metavar='IMG')
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped pretrained model)')
  parser.add_argument('--json', action='store_true', help='print one JSON object per line')
  args = parser.parse_args(argv)
  try:
    predictor = load_predictor(args.checkpoint)
  except CheckpointError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  failed = False
  for name in args.images:
    try:
      image = read_image_file(name)
      x = preprocess_drawing(image, invert=looks_inverted(image))
    except (ImageFileError, EmptyDrawingError) as e:
      failed = True
      message = str(e) if isinstance(e, ImageFileError) else f'{name}: {e}'
      print(json.dumps({'file': name, 'error': message}) if args.json else f'error: {message}',
            file=sys.stdout if args.json else sys.stderr)
      continue
    probs = predictor.predict_proba(x[None])[0]
    top = np.argsort(probs)[::-1][:3]
    if args.json:
      print(json.dumps({'file': name, 'digit': int(top[0]),
                        'top3': [{'digit': int(k), 'probability': round(float(probs[k]), 6)} for k in top]}))
    else:
      print(f'{name}: {top[0]}  (' + ', '.join(f'{k} {probs[k]:.1%}' for k in top) + ')')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
