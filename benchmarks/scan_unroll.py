"""Rolled scan vs unrolled scan vs one jitted step per dispatch: `python -m benchmarks.scan_unroll`.

The default model, batch 128, a fixed batch. Prints one JSON line per variant: images/s and the
first call's seconds (compile plus one run).
"""

import functools
import json
import sys
import time

import jax
import jax.numpy as jnp

from digitrec_jax import CNN, TrainConfig, create_train_state, make_apply_fn, train_step, training

BATCH = 128


def main() -> int:
  config = TrainConfig()
  step = functools.partial(train_step, apply_fn=make_apply_fn(CNN.from_config(config.model)),
                           tx=training.make_optimizer(config))
  batch = {'image': jnp.zeros((BATCH, 28, 28, 1), jnp.uint8), 'label': jnp.zeros(BATCH, jnp.int32)}
  variants = [('one jitted step per dispatch', 1, None)] + [
      (f'scan of {n}, unroll={u}', n, u) for n, u in ((20, 1), (20, 5), (10, True), (25, True), (50, True))]
  for name, n, unroll in variants:
    if unroll is None:
      fn = jax.jit(step, donate_argnums=0)
    else:
      fn = jax.jit(lambda s, b, n=n, u=unroll: jax.lax.scan(lambda c, _: step(c, b), s, length=n, unroll=u),
                   donate_argnums=0)
    state = create_train_state(config)
    t0 = time.perf_counter()
    state, metrics = fn(state, batch)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - t0
    calls = max(2, 40 // n)
    t0 = time.perf_counter()
    for _ in range(calls):
      state, metrics = fn(state, batch)
    jax.block_until_ready(metrics)
    wall = time.perf_counter() - t0
    print(json.dumps({'variant': name, 'first_call_s': round(first, 1),
                      'images_per_second': round(calls * n * BATCH / wall)}), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
