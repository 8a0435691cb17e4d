"""Training throughput of a model/batch variant: `python -m benchmarks.throughput CONVS DENSE BATCH STEPS`.

e.g. `python -m benchmarks.throughput 16,32 128 128 10`; prefix XLA_FLAGS=--xla_force_host_platform_device_count=2
to split each batch over 2 host devices. Prints one JSON line: images/s in steady state, CPU/wall,
first-call (compile + one chunk) seconds. Random pixels: speed does not depend on the data.
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from digitrec_jax import CNN, ModelConfig, TrainConfig, create_train_state, make_apply_fn, training


def main(argv: list[str]) -> int:
  convs, dense, batch, steps = tuple(int(c) for c in argv[0].split(',')), int(argv[1]), int(argv[2]), int(argv[3])
  config = TrainConfig(steps=1000, batch_size=batch, steps_per_dispatch=steps,
                       model=ModelConfig(conv_features=convs, dense_features=dense))
  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated = NamedSharding(mesh, P())
  rng = np.random.default_rng(0)
  data = {'image': jax.device_put(rng.integers(0, 256, (60_000, 28, 28, 1), dtype=np.uint8), replicated),
          'label': jax.device_put(rng.integers(0, 10, 60_000).astype(np.int32), replicated)}
  chunk = training.make_train_chunk(config, make_apply_fn(CNN.from_config(config.model)),
                                    training.make_optimizer(config), mesh)
  state = jax.device_put(create_train_state(config), replicated)
  orders = training.epoch_orders(state, jnp.int32(0), 60_000)
  t0 = time.perf_counter()
  state, metrics = chunk(state, data, orders, jnp.int32(0), steps)
  jax.block_until_ready(metrics)
  first = time.perf_counter() - t0
  repeats = max(2, 3000 // (batch * steps) + 1)
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(repeats):
    state, metrics = chunk(state, data, orders, jnp.int32(0), steps)
  jax.block_until_ready(metrics)
  wall = time.perf_counter() - t0
  print(json.dumps({'convs': list(convs), 'dense': dense, 'batch': batch, 'steps_per_dispatch': steps,
                    'devices': jax.device_count(), 'first_call_s': round(first, 2),
                    'images_per_second': round(repeats * steps * batch / wall),
                    'cpu_per_wall': round((time.process_time() - c0) / wall, 2)}))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
