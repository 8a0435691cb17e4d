"""Inference: load a checkpoint's variables, the jitted `Predictor`, and `digitrec-predict IMG [IMG ...]`."""

from __future__ import annotations

import argparse
import functools
import importlib.resources
import json
import signal
import stat
import sys
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from digitrec_jax import checkpoint as ckpt_lib
from digitrec_jax import model as model_lib
from digitrec_jax import training
from digitrec_jax.checkpoint import CheckpointError
from digitrec_jax.config import TrainConfig
from digitrec_jax.model import CNN, IMAGE_SHAPE, NOT_A_DIGIT, ApplyFn, Variables, make_apply_fn
from digitrec_jax.numbers import read_number
from digitrec_jax.preprocess import EmptyDrawingError

# Images larger than this many pixels are refused before decoding (a decompression-bomb guard).
MAX_IMAGE_PIXELS = 40_000_000
# What each command-line tool adds to a checkpoint error.
CHECKPOINT_FIX = 'pass --checkpoint DIR of a run that digitrec-train wrote, or leave it out for the shipped model'


def pretrained_dir() -> Path:
  """The shipped model: package data, which `checkpoints/pretrained` is in a source checkout."""
  return Path(str(importlib.resources.files('digitrec_jax') / 'pretrained'))


def _summary_accuracy(root: Path, step: int) -> float | None:
  """The test accuracy that the run's summary.json records for `step`, if it has one for that step."""
  if not (root / 'summary.json').is_file():
    return None
  summary = ckpt_lib.read_json_file(root / 'summary.json')
  return summary.get('test_accuracy') if isinstance(summary, dict) and summary.get('step') == step else None


def _restore(root: Path) -> tuple[Variables, TrainConfig, dict[str, Any]]:
  checkpoints, step = ckpt_lib.open_for_inference(root)
  try:
    return _restore_step(root, checkpoints, step)
  except CheckpointError as e:
    if not checkpoints.step_dir(step).exists():
      raise _Rotated from e
    raise
  finally:
    checkpoints.close()


def _restore_step(root: Path, checkpoints: ckpt_lib.Checkpoints,
                  step: int) -> tuple[Variables, TrainConfig, dict[str, Any]]:
  raw = checkpoints.read_json(step, 'config')
  try:
    config = TrainConfig.from_dict(raw)
  except (TypeError, ValueError) as e:
    raise CheckpointError(f'the config of checkpoint {checkpoints.step_dir(step)} is not valid ({e})') from e
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  place = lambda tree: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)
  if checkpoints.directory.name == ckpt_lib.BEST:
    model = CNN.from_config(config.model)
    abstract = jax.eval_shape(lambda: model_lib.init_variables(model, jax.random.key(0)))
    variables = checkpoints.restore(step, 'variables', place(abstract))
    accuracy = _check_accuracy(checkpoints.read_json(step, 'metrics'), checkpoints.step_dir(step))
    calibration = _check_calibration(checkpoints.read_json(step, 'calibration'), checkpoints.step_dir(step))
  else:
    abstract = jax.eval_shape(lambda: training.create_train_state(config))
    variables = training.eval_variables(checkpoints.restore(step, 'state', place(abstract)))
    accuracy = _summary_accuracy(root, step)
    calibration = dict(UNCALIBRATED)  # A run stopped before its first evaluation has no fitted calibration.
  return variables, config, {'path': str(checkpoints.step_dir(step)), 'step': step, 'test_accuracy': accuracy,
                             'calibration': calibration}


def _check_accuracy(metrics: Any, where: Path) -> float | None:
  accuracy = metrics.get('test_accuracy') if isinstance(metrics, dict) else 'missing'
  if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                               or not 0.0 <= accuracy <= 1.0):
    raise CheckpointError(f'the metrics of checkpoint {where} hold no test accuracy in [0, 1] (got {accuracy!r:.40})')
  return accuracy


# Raw softmax, and every input named as a digit.
UNCALIBRATED = {'temperature': 1.0, 'threshold': 0.0}


def _check_calibration(calibration: Any, where: Path) -> dict[str, Any]:
  ok = (isinstance(calibration, dict)
        and all(isinstance(calibration.get(k), (int, float)) and not isinstance(calibration.get(k), bool)
                for k in ('temperature', 'threshold'))
        and 0.0 < calibration['temperature'] < float('inf') and 0.0 <= calibration['threshold'] <= 1.0)
  if not ok:
    raise CheckpointError(f'the calibration of checkpoint {where} is not a positive temperature and a threshold '
                          'in [0, 1]')
  return calibration


def load_variables(checkpoint_dir: str | Path | None = None) -> tuple[Variables, TrainConfig, dict[str, Any]]:
  """(variables, config, info) of a run dir's best checkpoint, else its latest state's weights.

  `checkpoint_dir` None means the shipped model. `info` holds the checkpoint's path, step and test
  accuracy. Variables land on the first local device.
  """
  root = pretrained_dir() if checkpoint_dir is None else Path(checkpoint_dir).expanduser().absolute()
  for _ in range(3):
    try:
      return _restore(root)
    except _Rotated:
      continue
  raise CheckpointError(f'the checkpoints in {root} kept changing while they were read; try again')


class _Rotated(Exception):
  """The step being read was deleted meanwhile: a running training keeps only its newest checkpoints."""


def load_model(checkpoint_dir: str | Path | None = None) -> tuple[ApplyFn, Variables]:
  """(apply_fn, variables): the pure `apply_fn(variables, images) -> logits` and its weights."""
  variables, config, _ = load_variables(checkpoint_dir)
  return make_apply_fn(CNN.from_config(config.model)), variables


def input_saliency(apply_fn: ApplyFn, variables: Variables, image: jax.Array) -> jax.Array:
  """d(logit of the predicted class)/d(pixel) for one image [28, 28, 1] -> [28, 28]."""
  def top_logit(x):
    logits = apply_fn(variables, x[None])[0]
    return logits[jax.numpy.argmax(jax.lax.stop_gradient(logits))]
  return jax.grad(top_logit)(image)[..., 0]


class Prediction(NamedTuple):
  """What a Predictor says about a batch of images."""
  digits: np.ndarray  # int32 [B]: the digit, or NOT_A_DIGIT
  probs: np.ndarray  # float32 [B, 10]: calibrated probabilities of the ten digits, given a digit
  digit_scores: np.ndarray  # float32 [B]: the score behind the decision; below `threshold` is not a digit


class Predictor:
  """A model with its calibration: jitted `classify`, `predict`, `predict_proba` and `saliency`.

  Each input shape compiles once. The temperature and the "not a digit" threshold come from the
  checkpoint (`info['calibration']`), where training fitted them on the validation split.
  """

  def __init__(self, apply_fn: ApplyFn, variables: Variables, info: dict[str, Any] | None = None):
    self.apply_fn, self.variables = apply_fn, variables
    self.info = dict(info or {})
    calibration = self.info.get('calibration') or UNCALIBRATED
    self.temperature = float(calibration['temperature'])
    self.threshold = float(calibration['threshold'])
    self.trace_count = 0

    def outputs(variables, images):
      self.trace_count += 1  # Runs only while tracing: counts compilations.
      probs, scores = model_lib.calibrated(apply_fn(variables, images), self.temperature)
      return model_lib.decide(probs, scores, self.threshold), probs, scores

    self._outputs = jax.jit(outputs)
    self._saliency = jax.jit(functools.partial(input_saliency, apply_fn))

  def saliency(self, image: np.ndarray) -> np.ndarray:
    """Input-gradient saliency [28, 28] of the predicted class for one image [28, 28, 1]."""
    image = np.asarray(image, np.float32)
    if image.shape != IMAGE_SHAPE:
      raise ValueError(f'expected one image of shape [28, 28, 1], got {list(image.shape)}')
    return np.asarray(self._saliency(self.variables, image))

  def classify(self, images: np.ndarray) -> Prediction:
    """Digits (or NOT_A_DIGIT), probabilities and digit scores for float32 images [B, 28, 28, 1] in [0, 1]."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
      raise ValueError(f'expected images of shape [B, 28, 28, 1], got {list(images.shape)}')
    return Prediction(*(np.asarray(a) for a in self._outputs(self.variables, images)))

  def predict(self, images: np.ndarray) -> np.ndarray:
    """int32 [B]: each image's digit, or NOT_A_DIGIT (-1) when it is not a digit the model can name."""
    return self.classify(images).digits

  def predict_proba(self, images: np.ndarray) -> np.ndarray:
    """Calibrated probabilities [B, 10] of the ten digits for float32 images [B, 28, 28, 1] in [0, 1]."""
    return self.classify(images).probs


def load_predictor(checkpoint_dir: str | Path | None = None) -> Predictor:
  """A Predictor for `checkpoint_dir` (default: the shipped model), warmed up for one image."""
  variables, config, info = load_variables(checkpoint_dir)
  predictor = Predictor(make_apply_fn(CNN.from_config(config.model)), variables, info)
  predictor.predict_proba(np.zeros((1, *IMAGE_SHAPE), np.float32))
  return predictor


class ImageFileError(ValueError):
  """A file that cannot be used as a digit image."""


def _to_8bit(image):
  """Pillow image in a mode preprocessing reads: 32-bit and float images scaled by their range."""
  from PIL import Image
  if image.mode in ('F', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N'):
    array = np.asarray(image, np.float64)
    top = float(np.nanmax(array)) if array.size else 0.0
    scale = 255.0 if top <= 1.0 else 255.0 / top
    return Image.fromarray(np.clip(np.nan_to_num(array) * scale, 0, 255).round().astype(np.uint8))
  if image.mode in ('1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA'):
    return image
  return image.convert('RGB')  # CMYK, YCbCr, LAB, HSV: Pillow raises ValueError where it has no conversion.


def read_image_file(path: str | Path):
  """Opens an image file for prediction: upright (EXIF), 8-bit, refusing non-image and oversized files."""
  from PIL import Image, ImageOps
  path = Path(path)
  try:
    mode = path.stat().st_mode
  except FileNotFoundError as e:
    raise ImageFileError(f'{path} does not exist') from e
  except OSError as e:  # Permission denied on a folder, a name too long, ...
    raise ImageFileError(f'cannot open {path} ({e.strerror or type(e).__name__})') from e
  if stat.S_ISDIR(mode):
    raise ImageFileError(f'{path} is a directory; pass image files')
  if not stat.S_ISREG(mode):
    raise ImageFileError(f'{path} is not a regular file (a FIFO, device or socket); pass an image file')
  if path.stat().st_size == 0:
    raise ImageFileError(f'{path} is an empty file')
  try:
    with Image.open(path) as image:
      if image.width * image.height > MAX_IMAGE_PIXELS:
        raise ImageFileError(f'{path} is {image.width}x{image.height} pixels, over the '
                             f'{MAX_IMAGE_PIXELS:,}-pixel limit; scale it down')
      image.load()
      return _to_8bit(ImageOps.exif_transpose(image))
  except ImageFileError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise ImageFileError(f'{path} is over the {MAX_IMAGE_PIXELS:,}-pixel limit; scale it down') from e
  except OSError as e:  # Pillow's UnidentifiedImageError and truncated files, and read errors.
    raise ImageFileError(f'{path} is not a readable image ({type(e).__name__}); pass a PNG, JPEG or '
                         'other image file') from e
  except ValueError as e:  # Modes that Pillow cannot convert.
    raise ImageFileError(f'{path} uses an unsupported image mode ({e}); save it as RGB or greyscale') from e


def _text_row(name: str, reading) -> str:
  """One digit: it and the top 3 (or `not a digit`); several: the number and each digit's probability."""
  if len(reading.digits) == 1:
    d = reading.digits[0]
    top = np.argsort(d.probs)[::-1][:3]
    listed = ', '.join(f'{k} {d.probs[k]:.1%}' for k in top)
    if d.digit == NOT_A_DIGIT:
      return f'{name}: not a digit  (digit score {d.digit_score:.1%}; closest {listed})'
    return f'{name}: {d.digit}  ({listed})'
  each = ', '.join('? not a digit' if d.digit == NOT_A_DIGIT else f'{d.digit} {d.probs.max():.1%}'
                   for d in reading.digits)
  return f'{name}: {reading.text}  ({each})'


def _json_row(name: str, reading) -> dict[str, Any]:
  digits = [{'digit': None if d.digit == NOT_A_DIGIT else d.digit, 'digit_score': round(d.digit_score, 6),
             'probability': round(float(d.probs.max()), 6), 'box': list(d.box)} for d in reading.digits]
  row = {'file': name, 'number': reading.text, 'confidence': round(reading.confidence, 6), 'digits': digits}
  if len(reading.digits) == 1:  # The single-digit fields, as before numbers were read.
    d = reading.digits[0]
    top = np.argsort(d.probs)[::-1][:3]
    row.update(digit=digits[0]['digit'], digit_score=digits[0]['digit_score'],
               top3=[{'digit': int(k), 'probability': round(float(d.probs[k]), 6)} for k in top])
  return row


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='digitrec-predict',
                                   description='Read the digit, or the number, in each image file.')
  parser.add_argument('images', nargs='+', metavar='IMG')
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  parser.add_argument('--json', action='store_true', help='print one JSON object per line')
  args = parser.parse_args(argv)
  try:
    predictor = load_predictor(args.checkpoint)
  except CheckpointError as e:
    print(f'error: {e}; {CHECKPOINT_FIX}', file=sys.stderr)
    return 1
  failed = False
  for name in args.images:
    try:
      reading = read_number(predictor, read_image_file(name))
      if not reading.digits:
        raise EmptyDrawingError('the image is blank: it holds no strokes')
    except (ImageFileError, EmptyDrawingError) as e:
      failed = True
      message = str(e) if isinstance(e, ImageFileError) else f'{name}: {e}'
      print(json.dumps({'file': name, 'error': message}) if args.json else f'error: {message}',
            file=sys.stdout if args.json else sys.stderr)
      continue
    print(json.dumps(_json_row(name, reading)) if args.json else _text_row(name, reading))
  return 1 if failed else 0


def run() -> None:
  """Console-script entry: a closed pipe (`| head`) ends the output quietly, as for other Unix tools."""
  signal.signal(signal.SIGPIPE, signal.SIG_DFL)
  sys.exit(main())


if __name__ == '__main__':
  run()
