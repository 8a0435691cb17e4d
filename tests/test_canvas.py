"""The canvas-drawing simulation behind the canvas robustness benchmark."""

import sys
from pathlib import Path

import numpy as np

from benchmarks import canvas
from digitrec_jax import preprocess_drawing


def _digit():
  d = np.zeros((28, 28, 1), np.uint8)
  d[4:24, 12:16] = 255  # a '1': 20 rows tall, 4 columns wide
  return d


def test_drawn_digit_is_dark_on_light_with_the_drawn_height():
  for seed in range(20):
    image, fact = canvas.draw_on_canvas(_digit(), np.random.default_rng(seed))
    pixels = np.asarray(image)
    assert image.size == (280, 280) and image.mode == 'L'
    assert pixels[0, 0] == 255 or pixels[-1, -1] == 255  # light background
    rows = np.flatnonzero((pixels < 128).any(1))
    assert canvas.HEIGHT_RANGE[0] <= fact['height_frac'] <= canvas.HEIGHT_RANGE[1]
    # Ink spans the drawn height plus the thickening on both sides.
    expected = fact['height_frac'] * 280 + 2 * fact['radius']
    assert abs((rows[-1] - rows[0] + 1) - expected) <= 3, (seed, fact)


def test_draws_are_reproducible_and_vary_in_place_and_size():
  a = [canvas.draw_on_canvas(_digit(), np.random.default_rng(0))[0] for _ in range(2)]
  assert np.array_equal(np.asarray(a[0]), np.asarray(a[1]))
  rng = np.random.default_rng(1)
  boxes = {np.asarray(canvas.draw_on_canvas(_digit(), rng)[0]).argmin() for _ in range(10)}
  assert len(boxes) == 10


def test_preprocess_undoes_placement_and_naive_resize_does_not():
  rng = np.random.default_rng(3)
  centred = [preprocess_drawing(canvas.draw_on_canvas(_digit(), rng)[0]) for _ in range(5)]
  naive = [canvas.naive_resize(canvas.draw_on_canvas(_digit(), rng)[0]) for _ in range(5)]
  # Wherever and however large the stroke was drawn, preprocessing puts it in the same place.
  cols = [np.flatnonzero(c[..., 0].max(0) > 0.5) for c in centred]
  assert all(abs(c.mean() - 13.5) < 1.5 for c in cols)
  assert np.std([np.flatnonzero(n[..., 0].max(0) > 0.3).mean() for n in naive]) > 2
