"""Evaluation report of a checkpoint on the MNIST test set: `python -m digitrec_jax.evaluate`.

Prints the accuracy with its 95% interval, the expected calibration error (ECE), the share named
correctly when "not a digit" counts as an error, per-class accuracy and the confusion matrix, and
writes to --out (default: ./evaluation): confusion_matrix.png, misclassified.png, reliability.png,
training_curves.png (from the run's metrics.jsonl) and evaluation.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from digitrec_jax import calibration
from digitrec_jax.data import EVAL_BATCH_SIZE, make_eval_batches
from digitrec_jax.model import NOT_A_DIGIT, NUM_CLASSES


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
  """The Wilson score interval of a binomial proportion (95% for the default z)."""
  if n <= 0:
    raise ValueError(f'need at least one example, got n={n}')
  p = correct / n
  denom = 1 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  return max(0.0, centre - half), min(1.0, centre + half)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
  """[true, predicted] counts."""
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (np.asarray(labels), np.asarray(predictions)), 1)
  return cm


def predict_all(predictor, images: np.ndarray):
  """`predictor.classify` of images [N, 28, 28, 1] (uint8, or float in [0, 1] as `preprocess_drawing`
  gives), in fixed-size batches (one compilation): a Prediction of N rows."""
  n = images.shape[0]
  if images.dtype == np.uint8:
    images = images.astype(np.float32) / 255.0
  batches = make_eval_batches(images, np.zeros(n, np.int32), EVAL_BATCH_SIZE)['image']
  parts = [predictor.classify(b) for b in batches]
  return type(parts[0])(*(np.concatenate(column)[:n] for column in zip(*parts)))


def report(labels: np.ndarray, probs: np.ndarray, digits: np.ndarray | None = None) -> dict[str, Any]:
  """Accuracy (best of the ten digits), its 95% Wilson interval, the ECE, per-class accuracy and the
  confusion matrix; with the predictor's decisions `digits`, also the share named correctly when
  "not a digit" counts as an error."""
  predictions = probs.argmax(-1)
  cm = confusion_matrix(labels, predictions)
  n, correct = int(labels.shape[0]), int(np.trace(cm))
  low, high = wilson_interval(correct, n)
  per_class = (np.diag(cm) / np.maximum(cm.sum(1), 1)).tolist()
  r = {'count': n, 'correct': correct, 'accuracy': correct / n, 'accuracy_95ci': [low, high],
       'ece': calibration.expected_calibration_error(probs, labels),
       'mean_confidence': float(probs.max(-1).mean()),
       'per_class_accuracy': per_class, 'confusion_matrix': cm.tolist()}
  if digits is not None:
    r['rejected'] = float(np.mean(digits == NOT_A_DIGIT))
    r['named_correctly'] = float(np.mean(digits == labels))
  return r


def format_report(r: dict[str, Any], where: str) -> str:
  lines = [where, f'test accuracy {r["accuracy"]:.2%} ({r["correct"]:,} of {r["count"]:,}), '
           f'95% interval {r["accuracy_95ci"][0]:.2%} to {r["accuracy_95ci"][1]:.2%}',
           f'calibration: ECE {r["ece"]:.2%} ({calibration.ECE_BINS} bins), mean confidence {r["mean_confidence"]:.2%}']
  if 'rejected' in r:
    lines.append(f'named correctly {r["named_correctly"]:.2%} with "not a digit" counted as an error; '
                 f'{r["rejected"]:.2%} called not a digit')
  lines += ['per class: ' + '  '.join(f'{k} {a:.2%}' for k, a in enumerate(r['per_class_accuracy'])),
           'confusion matrix (rows true, columns predicted):',
           '      ' + ''.join(f'{k:>6}' for k in range(NUM_CLASSES))]
  lines += [f'{k:>6}' + ''.join(f'{v:>6}' for v in row) for k, row in enumerate(r['confusion_matrix'])]
  return '\n'.join(lines)


def _pyplot():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def plot_confusion_matrix(cm: np.ndarray, path: Path, title: str) -> None:
  plt = _pyplot()
  cm = np.asarray(cm)
  off = cm.copy()
  np.fill_diagonal(off, 0)
  fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
  # Colour shows the errors: the diagonal would otherwise wash every mistake out.
  im = ax.imshow(off, cmap='Reds', vmin=0, vmax=max(1, off.max()))
  for i in range(cm.shape[0]):
    for j in range(cm.shape[1]):
      if cm[i, j]:
        ax.text(j, i, str(cm[i, j]), ha='center', va='center', fontsize=7,
                color='black' if i != j else '#1f5f1f', fontweight='bold' if i == j else 'normal')
  ax.set_xticks(range(NUM_CLASSES))
  ax.set_yticks(range(NUM_CLASSES))
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title, fontsize=10)
  fig.colorbar(im, ax=ax, label='errors')
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, path: Path,
                       limit: int = 100) -> int:
  """A grid of up to `limit` misclassified digits, most confident mistakes first; returns how many."""
  plt = _pyplot()
  predictions = probs.argmax(-1)
  wrong = np.flatnonzero(predictions != labels)
  wrong = wrong[np.argsort(-probs[wrong, predictions[wrong]], kind='stable')][:limit]
  cols = 10
  rows = max(1, -(-len(wrong) // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.95, rows * 1.12), dpi=110, squeeze=False)
  for ax in axes.flat:
    ax.axis('off')
  for ax, i in zip(axes.flat, wrong):
    ax.imshow(images[i, ..., 0], cmap='gray_r', vmin=0, vmax=255)
    ax.set_title(f'{labels[i]}→{predictions[i]} {probs[i, predictions[i]]:.0%}', fontsize=7)
  fig.suptitle(f'{len(wrong)} misclassified test digits: true→predicted (confidence)', fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return len(wrong)


def plot_reliability(probs: np.ndarray, labels: np.ndarray, path: Path, title: str) -> None:
  """The reliability diagram: accuracy against confidence per bin, with the bins' share of examples."""
  plt = _pyplot()
  r = calibration.reliability(probs, labels)
  bins = len(r['count'])
  edges = np.linspace(0, 1, bins + 1)
  used = r['count'] > 0
  fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 5.6), dpi=110, sharex=True,
                                 gridspec_kw={'height_ratios': [3, 1]})
  ax.plot([0, 1], [0, 1], '--', color='#999', lw=1, label='perfect calibration')
  ax.bar(edges[:-1][used], r['accuracy'][used], width=1 / bins, align='edge', edgecolor='#246', color='#69c',
         label='accuracy')
  ax.plot(r['confidence'][used], r['accuracy'][used], 'o', color='#c33', ms=3, label='mean confidence')
  ax.set_ylabel('accuracy')
  ax.set_title(title, fontsize=10)
  ax.legend(loc='upper left', fontsize=8)
  ax_n.bar(edges[:-1], r['count'] / max(r['count'].sum(), 1), width=1 / bins, align='edge', color='#999')
  ax_n.set_yscale('log')
  ax_n.set_xlabel('confidence (top probability)')
  ax_n.set_ylabel('share')
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
  """(train rows, eval rows) of a metrics.jsonl written by training."""
  train, evals = [], []
  for line in path.read_text().splitlines():
    if line.strip():
      row = json.loads(line)
      (evals if 'test_accuracy' in row else train).append(row)
  return train, evals


def plot_training_curves(metrics_path: Path, path: Path) -> None:
  plt = _pyplot()
  train, evals = read_metrics(metrics_path)
  if not train and not evals:
    raise ValueError(f'{metrics_path} holds no metrics')
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
  if train:
    steps = np.array([r['step'] for r in train])
    loss = np.array([r['train_loss'] for r in train])
    acc = np.array([r['train_accuracy'] for r in train])
    k = max(1, len(train) // 100)  # Moving average over ~1% of the run: per-chunk values are noisy.
    smooth = lambda v: np.convolve(v, np.ones(k) / k, mode='valid')
    ax_loss.plot(steps[k - 1:], smooth(loss), label='train (augmented batches)', lw=1)
    ax_acc.plot(steps[k - 1:], 100 * (1 - smooth(acc)), label='train (augmented batches)', lw=1)
  if evals:
    for split in ('val', 'test'):
      rows = [r for r in evals if f'{split}_loss' in r]
      if rows:
        label = 'validation (chooses the checkpoint)' if split == 'val' else 'test (reported only)'
        ax_loss.plot([r['step'] for r in rows], [r[f'{split}_loss'] for r in rows], 'o-', label=label, ms=3)
        ax_acc.plot([r['step'] for r in rows], [100 * (1 - r[f'{split}_accuracy']) for r in rows], 'o-',
                    label=label, ms=3)
  ax_loss.set_ylabel('cross-entropy loss')
  ax_acc.set_ylabel('error rate (%)')
  for ax in (ax_loss, ax_acc):
    ax.set_xlabel('step')
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='digitrec-evaluate', description=__doc__.split('\n')[0])
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  parser.add_argument('--data-dir', default=None,
                      help='folder with the MNIST .gz files (default: $DIGITREC_DATA_DIR, else download)')
  # Never a folder of the project: regenerating the README's figures is an explicit `--out docs`.
  parser.add_argument('--out', default='evaluation',
                      help='folder for the PNGs and evaluation.json (default: ./evaluation)')
  return parser


def main(argv: list[str] | None = None) -> int:
  from digitrec_jax.checkpoint import CheckpointError, write_json
  from digitrec_jax.data import DataError, load_mnist
  from digitrec_jax.predict import CHECKPOINT_FIX, load_predictor

  args = build_parser().parse_args(argv)
  out = Path(args.out)
  try:
    is_file = out.exists() and not out.is_dir()
  except OSError as e:  # A name too long, a folder that cannot be searched, ...
    print(f'error: cannot use --out {out} ({e.strerror}); pass another --out', file=sys.stderr)
    return 2
  if is_file:
    print(f'error: --out {out} is a file; pass a folder', file=sys.stderr)
    return 2
  try:
    predictor = load_predictor(args.checkpoint)
  except CheckpointError as e:
    print(f'error: {e}; {CHECKPOINT_FIX}', file=sys.stderr)
    return 1
  try:
    images, labels = load_mnist('test', args.data_dir)
  except DataError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    print(f'error: cannot create {out} ({e.strerror}); pass another --out', file=sys.stderr)
    return 1
  result = predict_all(predictor, images)
  probs = result.probs
  r = report(labels, probs, result.digits)
  print(format_report(r, f'{predictor.info["path"]} · step {predictor.info["step"]}'))
  metrics = Path(predictor.info['path']).parents[1] / 'metrics.jsonl'
  written = ['confusion_matrix.png', 'misclassified.png', 'reliability.png']
  if not metrics.is_file():
    print(f'note: no {metrics}; training curves skipped', file=sys.stderr)
  current = out
  try:  # Every write: a full disk or a vanished folder is one line, whichever file it hits.
    current = out / 'confusion_matrix.png'
    plot_confusion_matrix(np.array(r['confusion_matrix']), current,
                          f'MNIST test: {r["accuracy"]:.2%} ({r["count"] - r["correct"]} errors)')
    current = out / 'misclassified.png'
    plot_misclassified(images, labels, probs, current)
    current = out / 'reliability.png'
    plot_reliability(probs, labels, current, f'MNIST test: ECE {r["ece"]:.2%}, temperature {predictor.temperature:.3g}')
    if metrics.is_file():
      current = out / 'training_curves.png'
      plot_training_curves(metrics, current)
      written.append('training_curves.png')
    current = out / 'evaluation.json'
    write_json(current, {'checkpoint': predictor.info['path'], 'step': predictor.info['step'], **r})
  except OSError as e:
    print(f'error: cannot write {current} ({e.strerror}); free space or pass another --out', file=sys.stderr)
    return 1
  print(f'wrote {", ".join(str(out / w) for w in written + ["evaluation.json"])}')
  return 0


def run() -> None:
  """Console-script entry point."""
  sys.exit(main())


if __name__ == '__main__':
  run()
