"""Serialise the model for serving without this package: `digitrec-export --out FILE`.

The artifact is a `jax.export` of `images [b, 28, 28, 1] float32 -> (digits [b] int32, probabilities
[b, 10], digit scores [b])` with the variables, the temperature and the "not a digit" threshold baked
in (the same rule as `Predictor.classify`; a digit of -1 means not a digit), and a symbolic batch size
`b`, lowered for CPU, CUDA and TPU. Loading needs jax alone:

    exported = jax.export.deserialize(bytearray(open(FILE, 'rb').read()))
    digits, probabilities, digit_scores = exported.call(images)
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from digitrec_jax import checkpoint as ckpt_lib
from digitrec_jax import model as model_lib
from digitrec_jax.checkpoint import CheckpointError
from digitrec_jax.model import CNN, IMAGE_SHAPE, NOT_A_DIGIT, NUM_CLASSES, ApplyFn, Variables, make_apply_fn
from digitrec_jax.predict import CHECKPOINT_FIX, load_variables

PLATFORMS = ('cpu', 'cuda', 'tpu')


class OutputError(ValueError):
  """The output path cannot be written without losing something; the message says why."""


def export_predict(variables: Variables, apply_fn: ApplyFn, calibration: dict[str, Any] | None = None,
                   platforms: tuple[str, ...] = PLATFORMS) -> jax.export.Exported:
  """jax.export of the jitted, calibrated classify function for any batch size."""
  calibration = calibration or {'temperature': 1.0, 'threshold': 0.0}

  def classify(images):
    probs, scores = model_lib.calibrated(apply_fn(variables, images), calibration['temperature'])
    return model_lib.decide(probs, scores, calibration['threshold']), probs, scores

  predict = jax.jit(classify)
  batch, = jax.export.symbolic_shape('b')
  return jax.export.export(predict, platforms=platforms)(jax.ShapeDtypeStruct((batch, *IMAGE_SHAPE), jnp.float32))


def _check_output(path: Path, force: bool) -> None:
  """Refuses anything but a new file, or (with `force`) an existing regular file."""
  try:
    mode = path.lstat().st_mode
  except FileNotFoundError:
    return
  except OSError as e:
    raise OutputError(f'cannot use {path} ({e.strerror})') from e
  if not stat.S_ISREG(mode):
    raise OutputError(f'{path} exists and is not a regular file; choose another --out')
  if not force:
    raise OutputError(f'{path} exists; pass --force to replace it, or choose another --out')


def write_artifact(checkpoint_dir: str | Path | None, out: str | Path, *, force: bool = False) -> dict[str, Any]:
  """Writes `out` (the serialized export) and `out`.json (its spec); returns the spec.

  Both are written to temporary files first and renamed, so an existing file is replaced whole or not
  at all, and only with `force`.
  """
  out = Path(out).expanduser().absolute()
  spec_path = Path(f'{out}.json')
  for path in (out, spec_path):
    _check_output(path, force)
  if not out.parent.is_dir():
    raise OutputError(f'folder {out.parent} does not exist; create it or choose another --out')
  variables, config, info = load_variables(checkpoint_dir)
  exported = export_predict(variables, make_apply_fn(CNN.from_config(config.model)), info['calibration'])
  spec = {
      'input': {'shape': ['b', *IMAGE_SHAPE], 'dtype': 'float32',
                'meaning': 'MNIST-format images in [0, 1], white digit on black (see preprocess_drawing)'},
      'output': [
          {'name': 'digits', 'shape': ['b'], 'dtype': 'int32', 'meaning': f'the digit, or {NOT_A_DIGIT} for not a digit'},
          {'name': 'probabilities', 'shape': ['b', NUM_CLASSES], 'dtype': 'float32',
           'meaning': 'calibrated probabilities of the ten digits, given a digit'},
          {'name': 'digit_scores', 'shape': ['b'], 'dtype': 'float32',
           'meaning': 'the score behind the decision: below the threshold is not a digit'}],
      'calibration': info['calibration'],
      'platforms': list(exported.platforms),
      'checkpoint': info['path'], 'step': info['step'], 'test_accuracy': info['test_accuracy'],
      'jax_version': jax.__version__, 'model': config.to_dict()['model'],
  }
  for target, write in ((out, lambda: ckpt_lib.write_file_atomically(out, exported.serialize())),
                        (spec_path, lambda: ckpt_lib.write_json(spec_path, spec))):
    try:
      write()  # Through a temporary file beside `target`; the message names the target.
    except OSError as e:
      raise OutputError(f'cannot write {target} ({e.strerror}); free space or choose another --out') from e
  return spec


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='digitrec-export', description=__doc__.splitlines()[0])
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  parser.add_argument('--out', required=True, help='artifact file to write; FILE.json gets the spec')
  parser.add_argument('--force', action='store_true', help='replace an existing FILE and FILE.json')
  args = parser.parse_args(argv)
  try:
    spec = write_artifact(args.checkpoint, args.out, force=args.force)
  except CheckpointError as e:
    print(f'error: {e}; {CHECKPOINT_FIX}', file=sys.stderr)
    return 1
  except OutputError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {args.out} ({Path(args.out).stat().st_size:,} bytes, platforms {", ".join(spec["platforms"])}) '
        f'and {args.out}.json')
  return 0


def run() -> None:
  """Console-script entry point."""
  sys.exit(main())


if __name__ == '__main__':
  run()
