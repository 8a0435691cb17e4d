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


def test_blur_softens_digits_only_between_the_image_and_its_binomial_blur():
  x = jnp.asarray(_digits(256), jnp.float32) / 255.0
  digits, non_digits = jnp.ones((256,), bool), jnp.zeros((256,), bool)
  np.testing.assert_allclose(augment.random_blur(jax.random.key(0), x, digits, 0.0), x)
  np.testing.assert_array_equal(augment.random_blur(jax.random.key(0), x, non_digits, 0.75), x)
  kernel = np.array([0.25, 0.5, 0.25])
  padded = np.pad(np.asarray(x)[..., 0], ((0, 0), (1, 1), (1, 1)))
  blurred = sum(kernel[i] * kernel[j] * padded[:, i:i + 28, j:j + 28] for i in range(3) for j in range(3))[..., None]
  out = np.asarray(jax.jit(augment.random_blur, static_argnums=3)(jax.random.key(0), x, digits, 0.75))
  # Each image is (1 - a) x + a blur(x) for one a per image, drawn in [0, 0.75].
  changed = np.abs(blurred - np.asarray(x)).reshape(256, -1)
  a = ((out - np.asarray(x)).reshape(256, -1) * np.sign(blurred - np.asarray(x)).reshape(256, -1)).sum(1) / changed.sum(1)
  np.testing.assert_allclose(out, np.asarray(x) + a[:, None, None, None] * (blurred - np.asarray(x)), atol=1e-5)
  assert a.min() >= 0.0 and a.max() <= 0.75 and a.std() > 0.15
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  np.testing.assert_allclose(out.sum((1, 2, 3)), np.asarray(x).sum((1, 2, 3)), rtol=1e-4)  # Ink is kept.


@pytest.mark.parametrize('dtype', [np.uint8, np.float32])
def test_jits_inside_a_step(dtype):
  x = _digits().astype(dtype)
  if dtype == np.float32:
    x = x / 255.0
  fn = jax.jit(lambda k, x: augment.random_affine(k, x, rotation=10, shift=1))
  assert fn(jax.random.key(0), x).shape == (4, 28, 28, 1)


def _mnist_like(n=6, seed=0):
  """Float images [n, 28, 28, 1] of an oval (0), a bar (1) and a 7-like hook, twice each."""
  img = np.zeros((3, 28, 28), np.float32)
  yy, xx = np.indices((28, 28))
  img[0][np.abs(np.hypot((yy - 14) / 9, (xx - 14) / 6) - 1) < 0.15] = 1.0
  img[1, 4:24, 13:16] = 1.0
  img[2, 5:8, 8:21] = 1.0
  for r in range(8, 24):
    img[2, r, 19 - (r - 8) // 2:22 - (r - 8) // 2] = 1.0
  x = np.concatenate([img, img])[:n, ..., None]
  return jnp.asarray(x), jnp.asarray([0, 1, 7, 0, 1, 7][:n], jnp.int32)


@pytest.mark.parametrize('name', ['forms', 'elastic', 'aspect'])
def test_each_new_augmentation_is_pure_in_range_deterministic_and_keeps_the_label(name):
  x, labels = _mnist_like()
  fns = {
      'forms': lambda k, im: augment.international_forms(k, im, labels, 1.0),
      'elastic': lambda k, im: augment.random_affine(k, im, elastic=1.5),
      'aspect': lambda k, im: augment.random_affine(k, im, aspect=0.4),
  }
  fn = jax.jit(fns[name])
  out = fn(jax.random.key(3), x)
  assert out.shape == x.shape and out.dtype == jnp.float32
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  np.testing.assert_array_equal(out, fn(jax.random.key(3), x))  # Same key, same images.
  assert not np.array_equal(out, fn(jax.random.key(4), x))  # Another key, other images.
  assert not np.array_equal(out, x)
  np.testing.assert_array_equal(x, _mnist_like()[0])  # The input is untouched (pure).
  # The label is the caller's, unchanged; the digit keeps most of its ink where it was.
  assert labels.tolist() == [0, 1, 7, 0, 1, 7]
  overlap = np.sum(np.minimum(out, x)) / np.sum(x)
  assert overlap > 0.4


def test_forms_add_ink_to_0_1_7_only_and_only_where_picked():
  x, labels = _mnist_like()
  other = jnp.asarray([3, 5, 9, 3, 5, 9], jnp.int32)
  np.testing.assert_array_equal(augment.international_forms(jax.random.key(0), x, other, 1.0), x)
  np.testing.assert_array_equal(augment.international_forms(jax.random.key(0), x, labels, 0.0), x)
  formed = np.asarray(augment.international_forms(jax.random.key(0), x, labels, 1.0))
  added = (formed - np.asarray(x)).reshape(6, -1).sum(1)
  assert np.all(added > 2) and np.all(formed >= np.asarray(x))  # A stroke or a dot, nothing erased.
  # The slash or dot of a 0 crosses its empty middle; the 7's bar crosses its stem near mid height.
  assert formed[0, 12:17, 12:17].sum() > 1 and formed[2, 14:18].sum() > np.asarray(x)[2, 14:18].sum()


def test_aspect_changes_width_against_height():
  x, _ = _mnist_like(2)
  bar = jnp.tile(x[1:2], (64, 1, 1, 1))
  out = np.asarray(augment.random_affine(jax.random.key(0), bar, aspect=0.6))
  widths = (out[..., 0] > 0.5).any(1).sum(1)
  heights = (out[..., 0] > 0.5).any(2).sum(1)
  ratio = widths / np.maximum(heights, 1)
  assert ratio.max() / ratio.min() > 1.5
