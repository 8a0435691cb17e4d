"""Smoke runs of the benchmark scripts so they cannot rot; no timing is asserted."""

import json
import os
import sys
from pathlib import Path

import pytest

from benchmarks import kernels, run
from digitrec_jax.config import PRESETS

pytestmark = pytest.mark.slow


def test_quick_suite_writes_every_figure(real_data_dir, tmp_path, monkeypatch, capsys):
  monkeypatch.delenv('DISPLAY', raising=False)
  out = tmp_path / 'results.json'
  assert run.main(['--quick', '--data-dir', real_data_dir, '--out', str(out)]) == 0
  results = json.loads(out.read_text())
  assert set(results) == {'hardware', 'command', 'commands', 'train', 'fast_preset', 'peer', 'best_recipe', 'gui',
                          'checkpoint', 'canvas', 'styles', 'rejection', 'numbers'}
  assert set(results['numbers']['drawn']) == {'2', '3', '4', '5', '6', 'all'}
  assert set(results['numbers']['pen']) == {'2', '3', '4', '5', '6', 'all'}
  assert set(results['numbers']['pen_touching']) == {'2', '3', '4', '5', '6', 'all'}
  assert 0 <= results['numbers']['pen_single_digit_turned_away'] <= 1 - results['numbers']['pen_single_digit']
  assert 0 <= results['numbers']['pen_small_digit_turned_away'] <= 1 - results['numbers']['pen_small_digit']
  assert 0 <= results['numbers']['notebook_single_digit'] <= 1
  assert 0 <= results['numbers']['notebook_tilted_single_digit'] <= 1
  assert 0 <= results['numbers']['desk_single_digit'] <= 1 and 0 <= results['numbers']['shadow_single_digit'] <= 1
  # Every wrong reading is counted once, by how it went wrong (--quick: 4 numbers per length, 20 photos).
  for kind in ('drawn', 'photo'):
    assert sum(results['numbers'][f'{kind}_misses'].values()) == round((1 - results['numbers'][kind]['all']) * 20)
  assert sum(results['numbers']['photo_single_digit_misses'].values()) == round(
      (1 - results['numbers']['photo_single_digit']) * 20)
  from benchmarks import styles
  assert set(results['styles']['forms']) == set(styles.FORMS)
  assert all(0 <= r['named_correctly'] <= r['accuracy'] <= 1 for r in results['styles']['forms'].values())
  assert results['rejection']['mnist_test_count'] == 100 and 0 <= results['rejection']['held_out_rejected'] <= 1
  assert set(results['train']) == {'default', 'fast', 'best'}
  assert all(r['images_per_second'] > 0 and r['compile_seconds'] > 0 for r in results['train'].values())
  # Each preset is measured split as train.py splits it: `best` over 2 CPU devices, the others on one.
  assert {p: r['devices'] for p, r in results['train'].items()} == {
      'default': 1, 'fast': 1, 'best': min(2, os.cpu_count() or 1)}
  assert results['fast_preset']['runs'][0]['step'] == 21
  # The warm run repeats seed 0 on the cache the cold one filled: the same training, to the bit.
  assert results['fast_preset']['warm']['test_accuracy'] == results['fast_preset']['runs'][0]['test_accuracy']
  assert results['peer']['epochs'] == 0.5 and 0 < results['peer']['test_accuracy'] <= 1
  assert results['best_recipe']['best_step'] <= results['best_recipe']['step']
  assert results['gui']['traces'] == 1 and results['gui']['latency_p50_ms'] > 0
  assert results['checkpoint']['restore_params_ms'] > 0
  assert results['hardware']['jax'] and results['hardware']['jaxlib']
  assert results['canvas']['count'] == 100 and 0.5 < results['canvas']['preprocess_accuracy'] <= 1
  assert run.render_table(results) in capsys.readouterr().out
  # --only re-measures one section and keeps the rest.
  before = json.loads(out.read_text())
  assert run.main(['--quick', '--data-dir', real_data_dir, '--out', str(out), '--only', 'checkpoint']) == 0
  after = json.loads(out.read_text())
  assert after['train'] == before['train'] and after['canvas'] == before['canvas']
  assert after['commands']['checkpoint'].endswith('--only checkpoint')


def test_only_rejects_unknown_sections(real_data_dir, capsys):
  with pytest.raises(SystemExit) as e:
    run.main(['--quick', '--data-dir', real_data_dir, '--only', 'train,bogus'])
  assert e.value.code == 2
  assert ('unknown --only section bogus; choose from train, fast_preset, peer, best_recipe, gui, checkpoint, canvas, '
          'styles, rejection, numbers') in capsys.readouterr().err


def test_readme_table_is_generated_from_committed_results():
  results = json.loads(run.RESULTS.read_text())
  assert run.render_table(results) in run.README.read_text()


def test_readme_gpu_table_is_generated_from_committed_gpu_results():
  results = json.loads(run.RESULTS_GPU.read_text())
  assert results['hardware']['platform'] == 'gpu' and set(run.GPU_SECTIONS) <= set(results)
  table = run.render_gpu_table(results)
  assert table in run.README.read_text()
  assert f'best/ = step {results["best_recipe"]["best_step"]:,}' in table


def test_gpu_table_shows_the_sections_it_has():
  results = json.loads(run.RESULTS_GPU.read_text())
  part = {key: results[key] for key in ('hardware', 'train')}
  table = run.render_gpu_table(part)
  assert [line.split('`')[1] for line in table.splitlines() if line.startswith('| train')] == [
      '--preset default', '--preset fast', '--preset best']
  assert '--preset fast`: test accuracy' not in table and 'best/' not in table and 'peer' not in table


def test_gpu_results_are_not_written_from_a_cpu(monkeypatch, capsys):
  monkeypatch.setattr(run, 'hardware', lambda: {'platform': 'cpu'})
  before = run.RESULTS_GPU.read_text()
  with pytest.raises(SystemExit) as e:
    run.main(['--data-dir', 'unused', '--only', 'checkpoint', '--out', str(run.RESULTS_GPU)])
  assert e.value.code == 2
  assert ('results_gpu.json holds figures measured on a GPU, and jax sees only the CPU here; run on a GPU '
          'machine or pass another --out') in capsys.readouterr().err
  assert run.RESULTS_GPU.read_text() == before


def test_best_run_without_a_finished_run_is_refused(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    run.main(['--data-dir', 'unused', '--only', 'best_recipe', '--best-run', str(tmp_path)])
  assert e.value.code == 2
  assert (f'--best-run {tmp_path} holds no summary.json or metrics.jsonl; pass the --checkpoint-dir of a finished '
          '`python train.py --preset best` run') in capsys.readouterr().err


def test_best_recipe_reads_the_run_it_is_given(tmp_path):
  rows = [{'step': 3, 'train_loss': 1.0, 'train_accuracy': 0.5},
          {'step': 5, 'seconds': 2.5, 'val_accuracy': 0.9, 'test_accuracy': 0.91, 'val_loss': 0.3},
          {'step': 10, 'seconds': 4.0, 'val_accuracy': 0.95, 'test_accuracy': 0.94, 'val_loss': 0.2}]
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  (tmp_path / 'summary.json').write_text(json.dumps(
      {'step': 10, 'best_step': 10, 'best_val_accuracy': 0.95, 'best_test_accuracy': 0.94, 'train_seconds': 4.2,
       'images_per_second': 300.0, 'device_kind': 'NVIDIA H200', 'test_accuracy': 0.94}))
  result = run.best_recipe(tmp_path)
  assert result['best_step'] == 10 and result['device_kind'] == 'NVIDIA H200' and result['seconds_to_best'] == 4.0
  assert [r['step'] for r in result['curve']] == [5, 10]
  assert run.best_recipe()['best_step'] == json.loads(run.RESULTS.read_text())['best_recipe']['best_step']


def test_some_sections_into_a_new_results_file_print_them(real_data_dir, tmp_path, capsys):
  out = tmp_path / 'part.json'
  assert run.main(['--quick', '--data-dir', real_data_dir, '--out', str(out), '--only', 'checkpoint']) == 0
  results = json.loads(out.read_text())
  assert set(results) == {'hardware', 'command', 'commands', 'checkpoint'}
  printed = capsys.readouterr().out
  assert json.loads(printed[:printed.rindex('wrote')]) == {'checkpoint': results['checkpoint']}


def test_recipes_curve_gives_every_evaluation_and_the_validation_choice(real_data_dir, monkeypatch, capsys):
  from benchmarks import recipes
  monkeypatch.setenv('DIGITREC_DATA_DIR', real_data_dir)
  assert recipes.main(['--curve', 'fast', 'steps=4', 'eval_every=2']) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result['recipe'] == 'fast steps=4 eval_every=2'
  assert [e[0] for e in result['evals']] == [2, 4] and result['test_accuracy'] == result['evals'][-1][3]
  best = max(result['evals'], key=lambda e: e[2])  # the first of equal validation accuracies
  assert (result['best_step'], result['best_val_accuracy'], result['best_test_accuracy']) == (best[0], best[2], best[3])


def test_the_table_says_how_the_wrong_numbers_went_wrong():
  assert run._misses_text({'wrong_count': 1, 'turned_away': 2, 'misread': 3}) == (
      ' (6 wrong: 1 with another count of digits, 2 with a part turned away, 3 misread)')
  assert run._misses_text({'wrong_count': 0, 'turned_away': 0, 'misread': 0}) == ''
  assert run._misses_text(None) == ''  # results from before the counts were kept


def test_a_peer_stopped_before_its_target_is_shown_as_a_lower_bound():
  results = json.loads(run.RESULTS.read_text())
  results['fast_preset']['mean_process_seconds'] = 10.0
  results['peer'] = {'epochs': 5.0, 'process_seconds': 300.0, 'reached_target': False, 'test_accuracy': 0.9898}
  table = run.render_table(results)
  assert 'still under 99.0% when stopped after 5.0 epochs (98.98%) | > 300.0 s |' in table
  assert "its time over the fast preset's cold mean, same run | > 30.0x | ≥ 8x |" in table
  results['peer'].update(reached_target=True, test_accuracy=0.9902, epochs=4.0)
  table = run.render_table(results)
  assert 'its first evaluation ≥ 99.0% (4.0 epochs, 99.02%) | 300.0 s |' in table
  assert "same run | 30.0x | ≥ 8x |" in table


def test_the_best_recipe_is_also_priced_at_the_training_speed_of_the_same_run():
  results = json.loads(run.RESULTS.read_text())
  results['best_recipe'].update(step=10_000)
  results['train']['best'].update(images_per_second=1000.0, batch_size=128)
  # 10,000 steps of 128 images at 1,000 images/s: 21.3 minutes.
  assert ("| same 10,000 steps at this run's `--preset best` speed (1,000 images/s above; evaluations not counted) "
          "| 21 min | ≤ 15 min |") in run.render_table(results)


def test_kernel_variants_agree_and_run(capsys):
  assert kernels.main(['2']) == 0
  rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert len(rows) == 6 and rows[0]['vs_nhwc'] == 1.0
  assert all(r['fwd_bwd_ms'] > 0 for r in rows)


def test_quick_suite_needs_data(monkeypatch, capsys):
  monkeypatch.delenv('DIGITREC_DATA_DIR', raising=False)
  with pytest.raises(SystemExit) as e:
    run.main(['--quick'])
  assert e.value.code == 2
  assert 'pass --data-dir or set DIGITREC_DATA_DIR' in capsys.readouterr().err


def test_recipe_overrides_parse_into_a_config():
  from benchmarks.throughput import config_from_args
  config = config_from_args(['fast', 'model.pool=max', 'steps=1100', 'model.conv_features=8,16',
                             'label_smoothing=0.05'])
  assert config.model.pool == 'max' and config.model.conv_features == (8, 16)
  assert config.steps == 1100 and config.label_smoothing == 0.05
  assert config.learning_rate == PRESETS['fast'].learning_rate
  with pytest.raises(SystemExit, match="^error: unknown field 'bogus=1'$"):
    config_from_args(['fast', 'bogus=1'])
  assert config_from_args(['fast', 'model.batch_norm=true']).model.batch_norm is True
  assert config_from_args(['fast', 'model.batch_norm=False']).model.batch_norm is False
  with pytest.raises(SystemExit, match="^error: batch_norm takes true or false, got 'yes'$"):
    config_from_args(['fast', 'model.batch_norm=yes'])


def test_dev_measures_use_validation_digits_and_count_each_reading_once(real_data_dir):
  from benchmarks import dev
  from digitrec_jax import load_predictor
  result = dev.measure(real_data_dir, limit=2, predictor=load_predictor())
  assert result['seed'] == dev.DEV_SEED and result['digits'] == 40
  for name, total in (('numbers_drawn', 10), ('numbers_photo', 10), ('single_photo', 10), ('single_desk', 5),
                      ('single_shadow', 5), ('single_notebook', 5), ('single_notebook_tilted', 5)):
    counts = result[name]
    assert counts['total'] == total
    assert sum(counts[k] for k in ('right', 'wrong_count', 'turned_away', 'misread')) == total
  # The shipped model names validation digits as MNIST frames them, and turns most non-digits away.
  assert result['named'] >= 0.9 and 0 <= result['refit_turned_away'] <= 1 - result['refit_named']
  assert result['held_out_rejected'] >= 0.5 and result['training_kinds_rejected'] >= 0.5
  # The curve: one point per share, each turning away at least as much of everything as the one before.
  curve = result['operating_curve']
  assert len(curve) == len(dev.CURVE_SHARES) and result['operating_point']['threshold'] == 0.5
  for key in ('threshold', 'digits_turned_away', 'held_out_rejected', 'training_kinds_rejected'):
    assert [p[key] for p in curve] == sorted(p[key] for p in curve)
  assert all(0 <= p['digits_named'] <= 1 for p in curve)
  from benchmarks.numbers import miss_kind
  assert [miss_kind(got, '42') for got in ('42', '4', '?2', '47')] == ['right', 'wrong_count', 'turned_away', 'misread']


def test_pen_thins_to_lines_and_redraws_a_digit_with_the_window_pen():
  import numpy as np

  from benchmarks import pen
  from digitrec_jax.numbers import render_wide
  yy, xx = np.indices((28, 28))
  ring = np.abs(np.hypot((yy - 13.5) / 10, (xx - 13.5) / 7) - 0.85) < 0.14  # A 0 about 2.5 px wide.
  bar = np.zeros((40, 40), bool)
  bar[10:30, 17:24] = True
  line = pen.thin(bar)
  assert line.any() and line.sum(1).max() == 1  # One pixel wide, along the bar's length.
  assert line[14:26, 17:24].any(1).all()  # Its ends pulled in by about half the bar's width.
  strokes = pen.digit_strokes((ring * 255).astype(np.uint8))
  points = np.concatenate(strokes)
  assert points[:, 1].min() == 0 and points[:, 1].max() == 1 and points[:, 0].min() == 0
  # The traced strokes go round the ring: drawn with the pen, they leave its middle empty.
  drawn = 1 - np.asarray(render_wide([[(x * 0.5 + 0.1, y * 0.5 + 0.1) for x, y in s] for s in strokes]),
                         np.float32) / 255
  assert drawn[95:125, 85:110].max() == 0 and drawn.sum() > 0
  blot = np.zeros((28, 28), np.uint8)
  blot[4:24, 8:20] = 255
  assert pen.usable((ring * 255).astype(np.uint8)) and not pen.usable(blot)
  # Two digits composed left to right read through the window's path in that order.
  rng = np.random.default_rng(0)
  number = pen.compose(np.stack([(ring * 255).astype(np.uint8)] * 2), rng)
  xs = [np.mean([x for x, _ in s]) for s in number]
  assert xs[-1] > xs[0]


def test_operating_curve_reads_each_kind_of_non_digit_where_a_share_of_digits_is_turned_away():
  import numpy as np
  from benchmarks.dev import operating_curve, operating_point
  digits = np.concatenate([[-np.inf], np.arange(1, 100) / 100])  # One digit read as two parts.
  named = np.arange(100) % 10 != 9  # Every tenth digit's likeliest class is wrong.
  non_digits = {'a': np.array([0.0, 0.015, 0.02, 0.5, 0.9]), 'b': np.full(4, 0.025)}
  curve = operating_curve(non_digits, digits, named, shares=(0.01, 0.02, 0.03))
  assert [p['threshold'] for p in curve] == [0.01, 0.02, 0.03]
  assert [p['digits_turned_away'] for p in curve] == [0.01, 0.02, 0.03]
  assert [p['a_rejected'] for p in curve] == [0.2, 0.4, 0.6]
  assert [p['b_rejected'] for p in curve] == [0.0, 0.0, 1.0]
  # Named: the right class and not turned away; index 9 is wrong anyway, so each point loses one more.
  assert [p['digits_named'] for p in curve] == [0.89, 0.88, 0.87]
  assert operating_point(non_digits, digits, named, 0.5) == {
      'threshold': 0.5, 'digits_turned_away': 0.5, 'a_rejected': 0.6, 'b_rejected': 1.0, 'digits_named': 0.45}
  # Where more digits than the share are wrong at every threshold, the threshold is 0: no score is below it.
  point, = operating_curve(non_digits, np.full(10, -np.inf), np.zeros(10, bool), shares=(0.5,))
  assert point['threshold'] == 0.0 and point['digits_turned_away'] == 1.0 and point['a_rejected'] == 0.0
