"""Honest confidences: a temperature fitted on the validation split, the expected calibration error,
and the "not a digit" operating point. Host-side numpy; the model's logits come in as arrays."""

from __future__ import annotations

import numpy as np

from digitrec_jax.model import NUM_CLASSES

ECE_BINS = 15
# The operating point rejects at most this share of validation digits (and never digits the model
# thinks more likely a digit than not).
MAX_DIGIT_REJECTION = 0.001
# ...and at most this share of the validation digits drawn with the window's pen.
MAX_PEN_DIGIT_REJECTION = 0.01


def _log_softmax(x: np.ndarray) -> np.ndarray:
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _softmax(x: np.ndarray) -> np.ndarray:
  return np.exp(_log_softmax(x))


def calibrated(logits: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
  """`model.calibrated` on host logits [N, C]: (digit probabilities [N, 10], digit score [N]) in numpy,
  so that fitting on the host compiles no device program."""
  scaled = np.asarray(logits, np.float64) / temperature
  probs = _softmax(scaled[:, :NUM_CLASSES])
  score = 1.0 - _softmax(scaled)[:, NUM_CLASSES] if scaled.shape[-1] > NUM_CLASSES else probs.max(-1)
  return probs.astype(np.float32), score.astype(np.float32)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
  """Mean negative log-likelihood of the digit labels under softmax(logits[:, :10] / temperature)."""
  logp = _log_softmax(np.asarray(logits, np.float64)[:, :NUM_CLASSES] / temperature)
  return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
  """The temperature in [0.05, 20] that minimizes the NLL of the digit labels (golden-section search
  on its log, which is unimodal there: the NLL is convex in 1 / temperature)."""
  lo, hi = np.log(0.05), np.log(20.0)
  g = (np.sqrt(5) - 1) / 2
  a, b = hi - g * (hi - lo), lo + g * (hi - lo)
  fa, fb = nll(logits, labels, np.exp(a)), nll(logits, labels, np.exp(b))
  for _ in range(60):
    if fa < fb:
      hi, b, fb = b, a, fa
      a = hi - g * (hi - lo)
      fa = nll(logits, labels, np.exp(a))
    else:
      lo, a, fa = a, b, fb
      b = lo + g * (hi - lo)
      fb = nll(logits, labels, np.exp(b))
  return float(np.exp((lo + hi) / 2))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
  """Per confidence bin (equal width on [0, 1]): count, mean confidence and accuracy of the top class."""
  conf = probs.max(-1)
  correct = probs.argmax(-1) == labels
  which = np.minimum((conf * bins).astype(int), bins - 1)
  count = np.bincount(which, minlength=bins)
  safe = np.maximum(count, 1)
  return {'count': count, 'confidence': np.bincount(which, conf, bins) / safe,
          'accuracy': np.bincount(which, correct.astype(float), bins) / safe}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
  """ECE: the count-weighted mean gap between confidence and accuracy over `bins` bins."""
  r = reliability(probs, labels, bins)
  return float(np.sum(r['count'] * np.abs(r['confidence'] - r['accuracy'])) / max(len(labels), 1))


def choose_threshold(digit_scores: np.ndarray, max_rejection: float = MAX_DIGIT_REJECTION) -> float:
  """The digit-score threshold (reject below it) that turns away at most `max_rejection` of the
  validation digits, and at most 0.5: an input more likely a digit than not is always named."""
  scores = np.sort(np.asarray(digit_scores, np.float64))
  k = int(np.floor(max_rejection * len(scores)))  # This many may fall below the threshold.
  threshold = scores[k] if k < len(scores) else 1.0
  return float(min(threshold, 0.5))
