"""Serialise the model for serving without this package: `python -m digitrec_jax.export --out FILE`.

The artifact is a `jax.export` of `images [b, 28, 28, 1] float32 -> probabilities [b, 10]` with the
params baked in and a symbolic batch size `b`, lowered for CPU, CUDA and TPU. Loading needs jax
alone:

    exported = jax.export.deserialize(bytearray(open(FILE, 'rb').read()))
    probabilities = exported.call(images)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from digitrec_jax.checkpoint import CheckpointError, restore_for_inference
from digitrec_jax.model import CNN, IMAGE_SHAPE, NUM_CLASSES, make_apply_fn
from digitrec_jax.predict import default_checkpoint_dir

PLATFORMS = ('cpu', 'cuda', 'tpu')


def export_predict(params: Any, apply_fn, platforms: tuple[str, ...] = PLATFORMS) -> jax.export.Exported:
  """jax.export of the jitted predict function for any batch size."""
  predict = jax.jit(lambda images: jax.nn.softmax(apply_fn(params, images), axis=-1))
  batch, = jax.export.symbolic_shape('b')
  return jax.export.export(predict, platforms=platforms)(
      jax.ShapeDtypeStruct((batch, *IMAGE_SHAPE), jnp.float32))


def write_artifact(checkpoint_dir: str | Path | None, out: str | Path) -> dict[str, Any]:
  """Writes `out` (the serialized export) and `out`.json (its spec); returns the spec."""
  root = default_checkpoint_dir() if checkpoint_dir is None else Path(checkpoint_dir)
  params, config, info = restore_for_inference(root)
  exported = export_predict(params, make_apply_fn(CNN.from_config(config.model)))
  out = Path(out)
  spec = {
      'input': {'shape': ['b', *IMAGE_SHAPE], 'dtype': 'float32',
                'meaning': 'MNIST-format images in [0, 1], white digit on black (see preprocess_drawing)'},
      'output': {'shape': ['b', NUM_CLASSES], 'dtype': 'float32', 'meaning': 'class probabilities'},
      'platforms': list(exported.platforms),
      'checkpoint': info['path'], 'step': info['step'], 'test_accuracy': info['test_accuracy'],
      'jax_version': jax.__version__, 'model': config.to_dict()['model'],
  }
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.with_name(out.name + '.tmp')
  tmp.write_bytes(exported.serialize())
  tmp.replace(out)
  Path(f'{out}.json').write_text(json.dumps(spec, indent=2) + '\n')
  return spec


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m digitrec_jax.export', description=__doc__.splitlines()[0])
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped pretrained model)')
  parser.add_argument('--out', required=True, help='artifact file to write; FILE.json gets the spec')
  args = parser.parse_args(argv)
  if Path(args.out).is_dir():
    print(f'error: --out {args.out} is a directory; give a file name', file=sys.stderr)
    return 1
  try:
    spec = write_artifact(args.checkpoint, args.out)
  except CheckpointError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {args.out} ({Path(args.out).stat().st_size:,} bytes, platforms {", ".join(spec["platforms"])}) '
        f'and {args.out}.json')
  return 0


if __name__ == '__main__':
  sys.exit(main())
