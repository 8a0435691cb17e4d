"""Temperature scaling, the ECE and the "not a digit" operating point, on small synthetic arrays."""

import jax.numpy as jnp
import numpy as np
import pytest

from digitrec_jax import calibration


def _overconfident(n=2000, seed=0):
  """Logits whose top class is right 80% of the time, but which claim about 99.9%."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n)
  top = np.where(rng.random(n) < 0.8, labels, (labels + 1 + rng.integers(0, 9, n)) % 10)
  logits = rng.normal(0, 0.5, (n, 10))
  logits[np.arange(n), top] += 10.0
  return logits, labels


def test_the_fitted_temperature_lowers_the_nll_and_the_ece_of_an_overconfident_model():
  logits, labels = _overconfident()
  t = calibration.fit_temperature(logits, labels)
  assert t > 2.0  # Over-confidence is cured by softening.
  assert calibration.nll(logits, labels, t) < calibration.nll(logits, labels, 1.0) / 2
  for nearby in (t * 0.9, t * 1.1):  # A minimum, not just an improvement.
    assert calibration.nll(logits, labels, t) <= calibration.nll(logits, labels, nearby)
  softmax = lambda x: np.exp(x - x.max(1, keepdims=True)) / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)
  before = calibration.expected_calibration_error(softmax(logits), labels)
  after = calibration.expected_calibration_error(softmax(logits / t), labels)
  assert before == pytest.approx(0.2, abs=0.02) and after < 0.03


def test_ece_of_a_hand_made_example():
  probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
  labels = np.array([0, 1, 0, 0])
  # Two bins used: confidence 0.9 with accuracy 0.5, confidence 0.6 with accuracy 1.0.
  assert calibration.expected_calibration_error(probs, labels) == pytest.approx((0.4 * 2 + 0.4 * 2) / 4)
  r = calibration.reliability(probs, labels)
  assert r['count'].sum() == 4 and r['count'][13] == 2 and r['count'][9] == 2


def test_the_threshold_rejects_at_most_the_allowed_share_and_never_more_than_half():
  scores = np.linspace(0.0, 1.0, 1001)  # 1001 validation digits.
  t = calibration.choose_threshold(scores, max_rejection=0.01)
  assert np.sum(scores < t) == 10
  assert calibration.choose_threshold(np.full(100, 0.9), 0.01) == 0.5
  assert calibration.choose_threshold(np.array([0.1, 0.2]), 0.0) == 0.1


@pytest.mark.parametrize('classes', [10, 11])
def test_host_calibrated_matches_the_model_rule(classes):
  from digitrec_jax.model import calibrated as device_calibrated
  logits = np.random.default_rng(classes).normal(0, 4, (64, classes)).astype(np.float32)
  probs, score = calibration.calibrated(logits, 1.7)
  want_probs, want_score = device_calibrated(jnp.asarray(logits), 1.7)
  assert probs.shape == (64, 10) and score.shape == (64,) and probs.dtype == score.dtype == np.float32
  np.testing.assert_allclose(probs, want_probs, atol=1e-6)
  np.testing.assert_allclose(score, want_score, atol=1e-6)
