"""Kernel alternatives on this CPU: `python -m benchmarks.kernels`.

Times forward + backward (jitted, median of repeats) of the fast model's second convolution
(batch 128, 14x14x16 -> 14x14x32, 3x3, SAME) written several ways, and of 2x2 pooling. Prints
one JSON line per variant; benchmarks/README.md records the findings.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

B, H, W, CIN, COUT = 128, 14, 14, 16, 32


def conv_nhwc(x, k):
  return jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def conv_nchw(x, k):
  # The layout change is inside the function, as a model in NHWC would have to pay it.
  y = jax.lax.conv_general_dilated(x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1), (1, 1), 'SAME',
                                   dimension_numbers=('NCHW', 'OIHW', 'NCHW'))
  return y.transpose(0, 2, 3, 1)


def conv_im2col(x, k):
  """Nine shifted slices concatenated on the channel axis, then one matmul."""
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([p[:, i:i + H, j:j + W, :] for i in range(3) for j in range(3)], axis=-1)
  return (cols.reshape(-1, 9 * CIN) @ k.reshape(9 * CIN, COUT)).reshape(B, H, W, COUT)


def conv_bf16(x, k):
  return conv_nhwc(x.astype(jnp.bfloat16), k.astype(jnp.bfloat16)).astype(jnp.float32)


def max_pool(x, k):
  y = conv_nhwc(x, k)
  return jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID')


def avg_pool(x, k):
  y = conv_nhwc(x, k)
  return jax.lax.reduce_window(y, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID') / 4


def _time(fn, repeats: int) -> float:
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((B, H, W, CIN)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((3, 3, CIN, COUT)) * 0.1, jnp.float32)
  step = jax.jit(jax.grad(lambda x, k: jnp.sum(fn(x, k) ** 2), argnums=(0, 1)))
  jax.block_until_ready(step(x, k))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(step(x, k))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
  repeats = int((argv or sys.argv[1:] or ['200'])[0])
  base = _time(conv_nhwc, repeats)
  reference = jax.jit(conv_nhwc)(jnp.ones((B, H, W, CIN)), jnp.ones((3, 3, CIN, COUT)))
  for name, fn in [('conv NHWC lax.conv (Flax default)', conv_nhwc), ('conv NCHW lax.conv', conv_nchw),
                   ('conv im2col slices + one matmul', conv_im2col), ('conv bfloat16 NHWC', conv_bf16),
                   ('conv + max pool 2x2', max_pool), ('conv + avg pool 2x2', avg_pool)]:
    seconds = base if fn is conv_nhwc else _time(fn, repeats)
    if fn in (conv_nchw, conv_im2col):  # Same maths: check before comparing speed.
      np.testing.assert_allclose(jax.jit(fn)(jnp.ones((B, H, W, CIN)), jnp.ones((3, 3, CIN, COUT))), reference,
                                 rtol=1e-4)
    print(json.dumps({'variant': name, 'fwd_bwd_ms': round(seconds * 1e3, 3),
                      'vs_nhwc': round(seconds / base, 2), 'jax': jax.__version__}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
