import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digitrec_jax import augment


def _digits(n=4, seed=0):
  rng = np.random.default_rng(seed)
  images = np.zeros((n, 28, 28, 1), np.uint8)
  images[:, 6:22, 10:18] = rng.integers(50, 256, (n, 16, 8, 1), dtype=np.uint8)
  return images


def _identity(n):
  return jnp.tile(jnp.eye(2)[None], (n, 1, 1)), jnp.zeros((n, 2))


def test_identity_warp_returns_the_images_in_unit_range():
  x = _digits()
  out = augment.warp(x, *_identity(4))
  assert out.dtype == jnp.float32 and out.shape == x.shape
  np.testing.assert_allclose(out, x / 255.0, atol=1e-6)


def test_integer_shift_moves_pixels_and_fills_with_zero():
  x = _digits()
  a, _ = _identity(4)
  t = jnp.tile(jnp.array([[2.0, -3.0]]), (4, 1))  # 2 rows down, 3 columns left
  out = np.asarray(augment.warp(x, a, t))
  expected = np.zeros_like(x, np.float32)
  expected[:, 2:, :-3] = x[:, :-2, 3:] / 255.0
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_quarter_turn_about_the_centre_matches_rot90():
  x = _digits()
  a = jnp.tile(jnp.array([[[0.0, -1.0], [1.0, 0.0]]]), (4, 1, 1))
  out = np.asarray(augment.warp(x, a, jnp.zeros((4, 2))))
  # out[r, c] = in[A^-1 (r - c0, c - c0) + c0] = in[c, 27 - r]: a counter-clockwise quarter turn.
  np.testing.assert_allclose(out, np.rot90(x / 255.0, k=1, axes=(1, 2)), atol=1e-5)


def test_zero_ranges_are_the_identity():
  a, t = augment.affine_matrices(jax.random.key(0), 3, rotation=0, scale=0, shear=0, shift=0)
  np.testing.assert_allclose(a, np.tile(np.eye(2), (3, 1, 1)), atol=1e-7)
  np.testing.assert_array_equal(t, np.zeros((3, 2)))


def test_random_draws_stay_in_their_ranges():
  a, t = augment.affine_matrices(jax.random.key(1), 2000, rotation=15, scale=0.1, shear=0, shift=2.5)
  zoom = np.sqrt(np.abs(np.linalg.det(np.asarray(a))))
  angle = np.degrees(np.arctan2(a[:, 1, 0], a[:, 0, 0]))
  assert 0.9 - 1e-6 <= zoom.min() and zoom.max() <= 1.1 + 1e-6
  assert -15 - 1e-4 <= angle.min() < -14 and 14 < angle.max() <= 15 + 1e-4
  assert np.abs(t).max() <= 2.5 and np.abs(t).max() > 2.4


def test_random_affine_is_a_function_of_the_key_and_differs_per_image():
  x = np.repeat(_digits(1), 3, axis=0)
  kwargs = dict(rotation=15, scale=0.1, shear=0.1, shift=2)
  first = augment.random_affine(jax.random.key(0), x, **kwargs)
  np.testing.assert_array_equal(first, augment.random_affine(jax.random.key(0), x, **kwargs))
  assert not np.allclose(first, augment.random_affine(jax.random.key(1), x, **kwargs))
  assert not np.allclose(first[0], first[1])
  assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


def test_stroke_width_blends_between_erosion_and_dilation():
  x = jnp.asarray(_digits(256), jnp.float32) / 255.0
  np.testing.assert_allclose(augment.random_stroke_width(jax.random.key(0), x, 0.0), x)
  out = np.asarray(augment.random_stroke_width(jax.random.key(0), x, 1.0))
  dilated = np.asarray(jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), 'SAME'))
  eroded = np.asarray(jax.lax.reduce_window(x, jnp.inf, jax.lax.min, (1, 3, 3, 1), (1, 1, 1, 1), 'SAME'))
  assert np.all(out >= eroded - 1e-6) and np.all(out <= dilated + 1e-6)
  ink, base = out.sum((1, 2, 3)), np.asarray(x).sum((1, 2, 3))
  # Fractions are drawn from [-0.5, 1]: about a third of the images lose ink, two thirds gain it.
  thinner = np.mean(ink < base)
  assert 0.2 < thinner < 0.45


@pytest.mark.parametrize('dtype', [np.uint8, np.float32])
def test_jits_inside_a_step(dtype):
  x = _digits().astype(dtype)
  if dtype == np.float32:
    x = x / 255.0
  fn = jax.jit(lambda k, x: augment.random_affine(k, x, rotation=10, shift=1))
  assert fn(jax.random.key(0), x).shape == (4, 28, 28, 1)
