import json

import numpy as np
import pytest

from digitrec_jax import evaluate, train_and_evaluate


@pytest.mark.parametrize('correct, n, low, high', [
    (50, 100, 0.4038, 0.5962),  # Textbook values of the Wilson score interval.
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
])
def test_wilson_interval(correct, n, low, high):
  lo, hi = evaluate.wilson_interval(correct, n)
  assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_needs_examples():
  with pytest.raises(ValueError, match='^need at least one example, got n=0$'):
    evaluate.wilson_interval(0, 0)


def test_report_counts_and_per_class_accuracy():
  labels = np.array([0, 0, 1, 1, 2, 9])
  probs = np.eye(10)[[0, 1, 1, 1, 2, 4]]
  r = evaluate.report(labels, probs)
  assert r['count'] == 6 and r['correct'] == 4 and r['accuracy'] == pytest.approx(4 / 6)
  cm = np.array(r['confusion_matrix'])
  assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 2 and cm[9, 4] == 1 and cm.sum() == 6
  assert r['per_class_accuracy'][:3] == [0.5, 1.0, 1.0] and r['per_class_accuracy'][9] == 0.0
  assert r['per_class_accuracy'][5] == 0.0  # A class with no examples reports 0, not NaN.
  assert r['ece'] == pytest.approx(2 / 6)  # Every answer claims 100%; two of six are wrong.
  r2 = evaluate.report(labels, probs, digits=np.array([0, -1, 1, 1, 2, -1]))
  assert r2['rejected'] == pytest.approx(2 / 6) and r2['named_correctly'] == pytest.approx(4 / 6)
  text = evaluate.format_report(r, 'run')
  assert text.splitlines()[1].startswith('test accuracy 66.67% (4 of 6), 95% interval ')
  assert text.splitlines()[-1] == '     9' + '     0' * 4 + '     1' + '     0' * 5


def _is_png(path):
  return path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_main_reports_and_writes_the_figures(tiny_config, run_options, tmp_path, capsys):
  train_and_evaluate(tiny_config, tmp_path / 'run', **run_options)
  out = tmp_path / 'report'
  assert evaluate.main(['--checkpoint', str(tmp_path / 'run'), '--data-dir', run_options['data_dir'],
                        '--out', str(out)]) == 0
  printed = capsys.readouterr()
  saved = json.loads((out / 'evaluation.json').read_text())
  best = json.loads((tmp_path / 'run' / 'summary.json').read_text())['best_test_accuracy']
  # The report runs the GUI's predictor; it must agree with training's own evaluation.
  assert saved['accuracy'] == pytest.approx(best, abs=1e-9) and saved['count'] == 200
  assert f'test accuracy {saved["accuracy"]:.2%} ({saved["correct"]} of 200)' in printed.out
  assert 'confusion matrix (rows true, columns predicted):' in printed.out
  assert f'calibration: ECE {saved["ece"]:.2%} (15 bins)' in printed.out and 0 <= saved['ece'] <= 1
  assert f'named correctly {saved["named_correctly"]:.2%} with "not a digit" counted as an error' in printed.out
  for name in ('confusion_matrix.png', 'misclassified.png', 'reliability.png', 'training_curves.png'):
    assert _is_png(out / name), name
  assert printed.err == ''


def test_main_bad_inputs(tmp_path, capsys):
  (tmp_path / 'file').write_text('x')
  assert evaluate.main(['--out', str(tmp_path / 'file')]) == 2
  assert capsys.readouterr().err == f'error: --out {tmp_path / "file"} is a file; pass a folder\n'
  assert evaluate.main(['--checkpoint', str(tmp_path / 'nope'), '--out', str(tmp_path / 'o')]) == 1
  err = capsys.readouterr().err
  assert err.startswith(f'error: checkpoint dir {tmp_path / "nope"} does not exist;') and err.count('\n') == 1
  assert not (tmp_path / 'o').exists()


def test_default_out_is_a_folder_of_the_current_directory():
  parser_default = [a.default for a in evaluate.build_parser()._actions if a.dest == 'out'][0]
  assert parser_default == 'evaluation'


def test_training_curves_need_metrics(tmp_path):
  (tmp_path / 'metrics.jsonl').write_text('\n')
  with pytest.raises(ValueError, match='holds no metrics$'):
    evaluate.plot_training_curves(tmp_path / 'metrics.jsonl', tmp_path / 'c.png')


def test_misclassified_grid_orders_by_confidence(tmp_path):
  images = np.zeros((4, 28, 28, 1), np.uint8)
  labels = np.array([1, 2, 3, 4])
  probs = np.full((4, 10), 0.01)
  probs[0, 1], probs[1, 7], probs[2, 8], probs[3, 4] = 0.9, 0.6, 0.95, 0.9
  assert evaluate.plot_misclassified(images, labels, probs, tmp_path / 'm.png') == 2
  assert _is_png(tmp_path / 'm.png')
