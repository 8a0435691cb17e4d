"""Training throughput of a recipe: `python -m benchmarks.throughput PRESET [FIELD=VALUE ...]`.

e.g. `python -m benchmarks.throughput fast batch_size=256 model.pool=avg augment_rotation=0`. The CPU is
split into the recipe's `cpu_devices` as `digitrec-train` splits it (`cpu_devices=1` for one device;
JAX_NUM_CPU_DEVICES overrides). Prints one JSON line: images/s in steady state, CPU/wall, compile
seconds. Random pixels: speed does not depend on the data.
"""

import argparse
import json
import sys
import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from digitrec_jax import CNN, TrainConfig, create_train_state, make_apply_fn, training
from digitrec_jax.config import PRESETS
from digitrec_jax.train import split_cpu


def config_from_args(argv: list[str]) -> TrainConfig:
  """PRESET followed by FIELD=VALUE overrides (model fields as model.FIELD; tuples as 16,32)."""
  d = PRESETS[argv[0]].to_dict()
  for item in argv[1:]:
    key, value = item.split('=', 1)
    target = d['model'] if key.startswith('model.') else d
    key = key.removeprefix('model.')
    if key not in target:
      raise SystemExit(f'error: unknown field {item!r}')
    old = target[key]
    if isinstance(old, bool):
      if value.lower() not in ('true', 'false'):
        raise SystemExit(f'error: {key} takes true or false, got {value!r}')
      target[key] = value.lower() == 'true'
    else:
      target[key] = (tuple(int(v) for v in value.split(',')) if isinstance(old, tuple)
                     else type(old)(value) if old is not None else value)
  return TrainConfig.from_dict(d)


def measure(config: TrainConfig, chunks: int | None = None, min_images: int = 3000, steps: int = 3) -> dict:
  """Compile seconds, then steady-state images/s and CPU/wall of `config`'s fused train chunk.

  Times `chunks` dispatches after a warm-up one (default: enough for `min_images` images).
  """
  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated = NamedSharding(mesh, P())
  rng = np.random.default_rng(0)
  data = {'image': jax.device_put(rng.integers(0, 256, (60_000, 28, 28, 1), dtype=np.uint8), replicated),
          'label': jax.device_put(rng.integers(0, 10, 60_000).astype(np.int32), replicated)}
  # Random stand-ins for the host-made banks: throughput does not depend on what they hold.
  if config.non_digit_fraction:
    data['non_digits'] = jax.device_put(rng.integers(0, 256, (config.non_digit_bank, 28, 28, 1), dtype=np.uint8),
                                        replicated)
  if config.pen_digit_fraction:
    n = config.non_digit_bank // 2
    data['pen_digits'] = jax.device_put(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), replicated)
    data['pen_labels'] = jax.device_put(rng.integers(0, 10, n).astype(np.int32), replicated)
  chunk = training.make_train_chunk(config, make_apply_fn(CNN.from_config(config.model)),
                                    training.make_optimizer(config), mesh)
  state = jax.device_put(create_train_state(config), replicated)
  first_epoch = jax.numpy.int32(0)
  orders = training.epoch_orders(state, first_epoch, 60_000)
  t0 = time.perf_counter()
  compiled = chunk.lower(state, data, orders, first_epoch, steps).compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, data, orders, first_epoch)
  jax.block_until_ready(metrics)
  chunks = chunks or max(2, min_images // (config.batch_size * steps) + 1)
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(chunks):
    state, metrics = compiled(state, data, orders, first_epoch)
  jax.block_until_ready(metrics)
  wall = time.perf_counter() - t0
  return {'images_per_second': round(chunks * steps * config.batch_size / wall, 1),
          'cpu_seconds_per_wall_second': round((time.process_time() - c0) / wall, 2),
          'compile_seconds': round(compile_s, 2), 'batch_size': config.batch_size, 'steps_per_dispatch': steps}


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.throughput', description=__doc__.splitlines()[0])
  parser.add_argument('recipe', nargs='+', metavar='PRESET [FIELD=VALUE ...]')
  parser.add_argument('--chunks', type=int, default=None, help='timed dispatches (default: about 3,000 images)')
  args = parser.parse_args(argv)
  config = config_from_args(args.recipe)
  split_cpu(config)
  print(json.dumps({'recipe': ' '.join(args.recipe), 'devices': jax.device_count(), **measure(config, args.chunks)}))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
