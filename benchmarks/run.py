"""The benchmark suite: `python -m benchmarks.run [--quick]` (run under xvfb-run for the GUI figure).

Measures training throughput and compile time (default, fast and best presets), process-start-to-
result time of `train.py --preset fast` over seeds, predict latency, GUI start-up, checkpoint save and
restore, peak RSS, the canvas robustness of the shipped model (benchmarks/canvas.py), its accuracy on
writer styles (benchmarks/styles.py), its rejection of non-digits (benchmarks/rejection.py) and whole
numbers drawn and photographed (benchmarks/numbers.py). Writes
benchmarks/results.json and regenerates the README's performance
table from it. --quick runs a few of each into a temporary file instead, as a smoke test (CI).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results.json'
# The sections that train, measured on a GPU machine (`--out benchmarks/results_gpu.json`); CI has none.
RESULTS_GPU = ROOT / 'benchmarks' / 'results_gpu.json'
GPU_SECTIONS = ('train', 'fast_preset', 'peer', 'best_recipe', 'checkpoint')
README = ROOT / 'README.md'
BEGIN, END = '<!-- benchmarks:begin -->', '<!-- benchmarks:end -->'
GPU_BEGIN, GPU_END = '<!-- benchmarks-gpu:begin -->', '<!-- benchmarks-gpu:end -->'


def hardware() -> dict[str, str]:
  """What every figure was measured on."""
  import jax
  import jaxlib
  cpu = platform.processor() or platform.machine()
  try:
    cpu = next(line.split(':', 1)[1].strip() for line in Path('/proc/cpuinfo').read_text().splitlines()
               if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  device = jax.devices()[0]
  return {'cpu': f'{cpu}, {os.cpu_count()} cores', 'device': f'{jax.device_count()}x {device.device_kind}',
          'platform': device.platform, 'jax': jax.__version__, 'jaxlib': jaxlib.__version__}


def throughput(preset: str, chunks: int) -> dict[str, float]:
  """Steady-state training images/s of a preset's model and batch, and its compile time, in a process of
  its own: the CPU is split into the preset's `cpu_devices` as `train.py` splits it, before jax starts."""
  out = subprocess.run([sys.executable, '-m', 'benchmarks.throughput', preset, '--chunks', str(chunks)],
                       capture_output=True, text=True, timeout=1800, cwd=ROOT)
  if out.returncode:
    raise RuntimeError(out.stderr[-2000:])
  result = json.loads(out.stdout.strip().splitlines()[-1])
  del result['recipe']  # The preset's name is the section's key.
  return result


def _train_run(seed: int, data_dir: str, extra: list[str], cache_dir: str) -> dict:
  """One `python train.py --preset fast`, timed from process start to exit, compiling into `cache_dir`."""
  with tempfile.TemporaryDirectory() as run_dir:
    env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': cache_dir}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / 'train.py'), '--preset', 'fast', '--seed', str(seed),
                          '--data-dir', data_dir, '--checkpoint-dir', run_dir, *extra],
                         capture_output=True, text=True, timeout=1800, env=env)
    wall = time.perf_counter() - t0
    if out.returncode:
      raise RuntimeError(out.stderr[-2000:])
    summary = json.loads((Path(run_dir) / 'summary.json').read_text())
  return {'seed': seed, 'test_accuracy': summary['test_accuracy'], 'val_accuracy': summary['val_accuracy'],
          'process_seconds': round(wall, 2), 'train_seconds': summary['train_seconds'], 'step': summary['step']}


def fast_runs(seeds: list[int], data_dir: str, extra: list[str]) -> dict:
  """`python train.py --preset fast` per seed with an empty compilation cache (cold, the headline), then
  seed 0 again on its filled cache (warm)."""
  runs = []
  with tempfile.TemporaryDirectory() as caches:
    for seed in seeds:
      runs.append(_train_run(seed, data_dir, extra, str(Path(caches) / str(seed))))
    warm = _train_run(seeds[0], data_dir, extra, str(Path(caches) / str(seeds[0])))
  accuracies = [r['test_accuracy'] for r in runs]
  walls = [r['process_seconds'] for r in runs]
  return {'runs': runs, 'mean_test_accuracy': round(float(np.mean(accuracies)), 5),
          'min_test_accuracy': min(accuracies), 'mean_process_seconds': round(float(np.mean(walls)), 2),
          'max_process_seconds': max(walls), 'warm': warm,
          'peak_rss_mib': round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def peer_run(max_epochs: float) -> dict:
  """The Flax examples/mnist recipe (benchmarks/flax_peer.py), from process start to its first 99.0%."""
  out = subprocess.run([sys.executable, '-m', 'benchmarks.flax_peer', '--max-epochs', str(max_epochs)],
                       capture_output=True, text=True, timeout=3600, cwd=ROOT)
  if out.returncode:
    raise RuntimeError(out.stderr[-2000:])
  return json.loads(out.stdout.strip().splitlines()[-1])


def best_recipe(run_dir: str | Path | None = None) -> dict:
  """What a `--preset best` run took, read from its summary.json and metrics.jsonl (the run is not
  repeated here): the totals, and the time-to-accuracy curve of its evaluations. `run_dir` defaults to
  the shipped model's run."""
  shipped = ROOT / 'checkpoints' / 'pretrained' if run_dir is None else Path(run_dir)
  summary = json.loads((shipped / 'summary.json').read_text())
  result = {key: summary[key] for key in ('step', 'best_step', 'best_val_accuracy', 'best_test_accuracy',
                                          'train_seconds', 'images_per_second', 'device_kind')}
  from digitrec_jax.evaluate import read_metrics
  _, evals = read_metrics(shipped / 'metrics.jsonl')
  curve = [{k: r[k] for k in ('step', 'seconds', 'val_accuracy', 'test_accuracy')} for r in evals
           if 'val_accuracy' in r and 'seconds' in r]
  if curve:
    result['curve'] = curve
    result['seconds_to_best'] = next((r['seconds'] for r in curve if r['step'] == summary['best_step']), None)
  return result


def checkpoint_times(repeats: int) -> dict[str, float]:
  """Save and restore of the default model's full train state, and restore of params alone."""
  import jax

  from digitrec_jax import create_train_state, load_variables
  from digitrec_jax.checkpoint import RunCheckpoints
  from digitrec_jax.config import PRESETS
  config = PRESETS['default']
  state = create_train_state(config)
  abstract = jax.eval_shape(lambda: create_train_state(config))
  saves, restores, params_restores = [], [], []
  with tempfile.TemporaryDirectory() as tmp:
    ckpts = RunCheckpoints(Path(tmp) / 'run', keep=repeats + 1)
    for step in range(1, repeats + 1):
      t0 = time.perf_counter()
      ckpts.state.save(step, {'state': state}, {'config': config.to_dict()})
      saves.append(time.perf_counter() - t0)
      t0 = time.perf_counter()
      jax.block_until_ready(ckpts.state.restore(step, 'state', abstract))
      restores.append(time.perf_counter() - t0)
    ckpts.close()
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(load_variables(Path(tmp) / 'run')[0])
      params_restores.append(time.perf_counter() - t0)
  return {'save_state_ms': round(1e3 * float(np.median(saves)), 1),
          'restore_state_ms': round(1e3 * float(np.median(restores)), 1),
          'restore_params_ms': round(1e3 * float(np.median(params_restores)), 1),
          'state_megabytes': round(sum(x.nbytes for x in jax.tree.leaves(state)) / 2**20, 2)}


def _misses_text(misses: dict[str, int] | None) -> str:
  """' (N wrong: ...)' of a `benchmarks.numbers` miss count ('' for none, or for results without one)."""
  if not misses or not sum(misses.values()):
    return ''
  return (f' ({sum(misses.values())} wrong: {misses["wrong_count"]} with another count of digits, '
          f'{misses["turned_away"]} with a part turned away, {misses["misread"]} misread)')


def render_table(results: dict) -> str:
  hw, t, fast, gui, ck, cv = (results['hardware'], results['train'], results['fast_preset'], results['gui'],
                              results['checkpoint'], results['canvas'])
  lines = [BEGIN, '| measure | result | goal |', '| --- | --- | --- |']
  for preset in ('default', 'fast', 'best'):
    r = t[preset]
    on = f', {r["devices"]} CPU devices' if r.get('devices', 1) > 1 else ''
    lines.append(f'| train images/s, `--preset {preset}` (batch {r["batch_size"]}{on}, steady state) '
                 f'| {r["images_per_second"]:,.0f} (CPU/wall {r["cpu_seconds_per_wall_second"]}) | |')
    lines.append(f'| compile, `--preset {preset}` ({r["steps_per_dispatch"]} fused steps) '
                 f'| {r["compile_seconds"]:.1f} s | |')
  n = len(fast['runs'])
  lines += [
      f'| `python train.py --preset fast`: test accuracy, mean of {n} seeds (min) '
      f'| {fast["mean_test_accuracy"]:.2%} ({fast["min_test_accuracy"]:.2%}) | ≥ 99.0% (each ≥ 98.9%) |',
      f'| same: process start to exit, empty compilation cache (cold), mean (max) '
      f'| {fast["mean_process_seconds"]:.1f} s ({fast["max_process_seconds"]:.1f} s) | ≤ 10 s |',
      f'| same: peak RSS | {fast["peak_rss_mib"]:,.0f} MiB | |',
  ]
  if fast.get('warm'):
    lines.append(f'| same, seed {fast["warm"]["seed"]} again on its filled cache (warm) '
                 f'| {fast["warm"]["process_seconds"]:.1f} s | |')
  peer = results.get('peer')
  if peer:
    # A peer stopped before 99.0% gives a lower bound on its time, and so on the ratio.
    reached = peer.get('reached_target', True)
    until = (f'process start to its first evaluation ≥ 99.0% ({peer["epochs"]} epochs, {peer["test_accuracy"]:.2%})'
             if reached else f'still under 99.0% when stopped after {peer["epochs"]} epochs ({peer["test_accuracy"]:.2%})')
    bound = '' if reached else '> '
    lines += [
        f'| peer: the Flax `examples/mnist` recipe (`benchmarks.flax_peer`), {until} '
        f'| {bound}{peer["process_seconds"]:.1f} s | |',
        f'| its time over the fast preset\'s cold mean, same run '
        f'| {bound}{peer["process_seconds"] / fast["mean_process_seconds"]:.1f}x | ≥ 8x |',
    ]
  br = results.get('best_recipe')
  if br:
    to_best = (f' ({br["seconds_to_best"] / 60:.0f} min to best/)'
               if br.get('seconds_to_best') and br['best_step'] != br['step'] else '')
    lines.append(f'| `--preset best` (the shipped run, from its summary.json): {br["step"]:,} steps, best/ = step '
                 f'{br["best_step"]:,} ({br["best_test_accuracy"]:.2%} test) | {br["train_seconds"] / 60:.0f} min of '
                 f'training{to_best} | ≤ 15 min |')
    speed = results.get('train', {}).get('best')
    if speed:
      # The shipped run's own minutes depend on how fast the machine was that day; this row prices the
      # same steps at the speed measured in this run.
      minutes = br['step'] * speed['batch_size'] / speed['images_per_second'] / 60
      lines.append(f'| same {br["step"]:,} steps at this run\'s `--preset best` speed ({speed["images_per_second"]:,.0f} '
                   f'images/s above; evaluations not counted) | {minutes:.0f} min | ≤ 15 min |')
    if br.get('curve'):
      points = ', '.join(f'{r["seconds"] / 60:.0f} min: {r["test_accuracy"]:.2%}' for r in br['curve'])
      lines.append(f'| same: time to accuracy (test, at each evaluation) | {points} | |')
  lines += [
      f'| `preprocess_drawing` + `predict_proba`, one image, p50 (p99) | {gui["latency_p50_ms"]:.2f} ms '
      f'({gui["latency_p99_ms"]:.2f} ms) | ≤ 2 ms |',
  ]
  if gui.get('startup_median_s') is not None:
    lines.append(f'| `python gui.py` to window ready, median of {gui["startup_runs"]} '
                 f'| {gui["startup_median_s"]:.2f} s | ≤ 3 s |')
  lines += [
      f'| checkpoint save / restore, default train state ({ck["state_megabytes"]} MB) '
      f'| {ck["save_state_ms"]:.0f} / {ck["restore_state_ms"]:.0f} ms | |',
      f'| `load_variables` (inference load) | {ck["restore_params_ms"]:.0f} ms | |',
      f'| canvas robustness: {cv["count"]:,} test digits drawn on a 280x280 canvas, shipped model, '
      f'through `preprocess_drawing` | {cv["preprocess_accuracy"]:.2%} | ≥ 99.3% |',
      f'| same, naive whole-canvas resize to 28x28 | {cv["naive_resize_accuracy"]:.2%} | |',
  ]
  for form, r in sorted(results.get('styles', {}).get('forms', {}).items()):
    lines.append(f'| writer styles (`benchmarks.styles`): {form.replace("_", " ")}, {r["count"]:,} test digits '
                 f'| {r["accuracy"]:.2%} ({r["named_correctly"]:.2%} named correctly) | |')
  rj = results.get('rejection')
  if rj:
    lines += [
        f'| not a digit (`benchmarks.rejection`): held-out shapes and fonts rejected ({rj["held_out_count"]:,}) '
        f'| {rj["held_out_rejected"]:.2%} | |',
        f'| same: training kinds of non-digits, unseen seed, rejected | {rj["new_seed_rejected"]:.2%} | |',
        f'| same: MNIST test named correctly, "not a digit" counted as an error | '
        f'{rj["mnist_test_named_correctly"]:.2%} | ≥ 99.5% |',
        f'| same: digits drawn with the window\'s pen (trained shapes, unseen seed) named correctly '
        f'| {rj["pen_digits_named_correctly"]:.2%} ({rj["pen_digits_rejected"]:.2%} rejected) | |',
    ]
  nb = results.get('numbers')
  if nb:
    by_length = ', '.join(f'{n}: {nb["drawn"][str(n)]:.0%}' for n in range(2, 7))
    lines += [
        f'| whole numbers of 2–6 MNIST test digits drawn on a wide canvas (`benchmarks.numbers`, '
        f'{nb["numbers_per_length"]} per length; {by_length}) | {nb["drawn"]["all"]:.1%}'
        f'{_misses_text(nb.get("drawn_misses"))} | ≥ 98% |',
        f'| same numbers as photos (grey or beige paper, uneven light, noise, JPEG) | {nb["photo"]["all"]:.1%}'
        f'{_misses_text(nb.get("photo_misses"))} | |',
        f'| single digits as photos ({nb["single_digit_photos"]:,}) | {nb["photo_single_digit"]:.1%}'
        f'{_misses_text(nb.get("photo_single_digit_misses"))} | ≥ 99% |',
    ]
    if 'notebook_single_digit' in nb:
      lines.append(f'| same, written small on ruled or squared notebook paper ({nb["single_digit_photos"] // 2:,}) '
                   f'| {nb["notebook_single_digit"]:.1%} | |')
    if 'notebook_tilted_single_digit' in nb:
      lines.append(f'| same, the page photographed up to {nb["notebook_tilt_degrees"]:g}° askew '
                   f'({nb["single_digit_photos"] // 2:,}) '
                   f'| {nb["notebook_tilted_single_digit"]:.1%} | |')
    if 'desk_single_digit' in nb:
      lines += [
          f'| same, a sheet lying on a darker desk (turned up to 15°; {nb["single_digit_photos"] // 2:,}) '
          f'| {nb["desk_single_digit"]:.1%} | |',
          f'| same, a page partly in a shadow with a sharp edge ({nb["single_digit_photos"] // 2:,}) '
          f'| {nb["shadow_single_digit"]:.1%} | |',
      ]
    if 'pen' in nb:
      pen_by_length = ', '.join(f'{n}: {nb["pen"][str(n)]:.0%}' for n in range(2, 7))
      lines.append(
          f'| whole numbers of 2–6 MNIST test digits written as the window\'s pen strokes (skeletons traced, '
          f'`benchmarks.pen`), read through the window\'s path ({pen_by_length}) | {nb["pen"]["all"]:.1%} | |')
      if 'pen_touching' in nb:
        touching_by_length = ', '.join(f'{n}: {nb["pen_touching"][str(n)]:.0%}' for n in range(2, 7))
        lines.append(
            '| same, written with the digits touching or overlapping (ink gaps of ±0.03 of the window\'s height, '
            f'`pen.TOUCHING`; {touching_by_length}) | {nb["pen_touching"]["all"]:.1%} | |')
      lines.append(
          f'| single test digits written as the window\'s pen strokes, named correctly ({nb["single_digit_photos"]:,}) '
          f'| {nb["pen_single_digit"]:.1%} ({nb["pen_single_digit_turned_away"]:.1%} turned away) | |')
    if 'pen_small_digit' in nb:
      lines.append(
          f'| same, written small (0.15–0.33 of the window\'s height; {nb["single_digit_photos"] // 2:,}) '
          f'| {nb["pen_small_digit"]:.1%} ({nb["pen_small_digit_turned_away"]:.1%} turned away) | |')
  lines += [
      '',
      f'Measured by `{results["command"]}` on {hw["cpu"]} ({hw["device"]}), jax {hw["jax"]}, '
      f'jaxlib {hw["jaxlib"]}.',
      END]
  return '\n'.join(lines)


def render_gpu_table(results: dict) -> str:
  """The README's GPU table: the sections of `GPU_SECTIONS` that `results` holds."""
  hw = results['hardware']
  lines = [GPU_BEGIN, '| measure | result | goal |', '| --- | --- | --- |']
  presets = ('default', 'fast', 'best')
  for preset, r in sorted(results.get('train', {}).items(), key=lambda item: presets.index(item[0])):
    lines.append(f'| train images/s, `--preset {preset}` (batch {r["batch_size"]}, steady state) '
                 f'| {r["images_per_second"]:,.0f}; compile {r["compile_seconds"]:.1f} s | |')
  fast = results.get('fast_preset')
  if fast:
    runs = fast['runs']
    lines += [
        f'| `python train.py --preset fast`: test accuracy, mean of {len(runs)} seeds (min) '
        f'| {fast["mean_test_accuracy"]:.2%} ({fast["min_test_accuracy"]:.2%}) | |',
        f'| same: process start to exit, empty compilation cache (cold), mean (max) '
        f'| {fast["mean_process_seconds"]:.1f} s ({fast["max_process_seconds"]:.1f} s) | |',
        f'| same: `train_seconds` (training loop, compiles and evaluation included), cold mean '
        f'| {np.mean([r["train_seconds"] for r in runs]):.2f} s | |',
    ]
    if fast.get('warm'):
      warm = fast['warm']
      lines.append(f'| same, seed {warm["seed"]} again on its filled cache (warm): process / `train_seconds` '
                   f'| {warm["process_seconds"]:.1f} s / {warm["train_seconds"]:.2f} s '
                   '| ≤ 1 s to 99% without compiling |')
    peer = results.get('peer')
    if peer and peer.get('reached_target', True):
      lines.append(f'| peer: the Flax `examples/mnist` recipe, process start to its first evaluation ≥ 99.0% '
                   f'({peer["epochs"]} epochs, {peer["test_accuracy"]:.2%}); over the fast preset\'s cold mean '
                   f'| {peer["process_seconds"]:.1f} s; '
                   f'{peer["process_seconds"] / fast["mean_process_seconds"]:.1f}x | |')
  br = results.get('best_recipe')
  if br:
    lines.append(f'| `python train.py --preset best`: {br["step"]:,} steps, best/ = step {br["best_step"]:,} '
                 f'({br["best_test_accuracy"]:.2%} test) | {br["train_seconds"]:.1f} s of training '
                 f'({br["seconds_to_best"]:.1f} s to best/) | ≤ 2 min |')
    if br.get('curve'):
      points = ', '.join(f'{r["seconds"]:.0f} s: {r["test_accuracy"]:.2%}' for r in br['curve'])
      lines.append(f'| same: time to accuracy (test, at each evaluation) | {points} | |')
  ck = results.get('checkpoint')
  if ck:
    lines.append(f'| checkpoint save / restore, default train state ({ck["state_megabytes"]} MB) '
                 f'| {ck["save_state_ms"]:.0f} / {ck["restore_state_ms"]:.0f} ms | |')
  lines += ['', f'Measured by `python -m benchmarks.run --only SECTIONS --out benchmarks/results_gpu.json` on '
            f'{hw["device"]} ({hw["cpu"]}), jax {hw["jax"]}, jaxlib {hw["jaxlib"]}; `results_gpu.json` names '
            'each section\'s command.', GPU_END]
  return '\n'.join(lines)


TABLES = {RESULTS: (BEGIN, END, render_table), RESULTS_GPU: (GPU_BEGIN, GPU_END, render_gpu_table)}


def update_readme(results: dict, results_file: Path = RESULTS) -> None:
  """Regenerates the README's table of `results_file` (the CPU or the GPU one) from `results`."""
  begin, end, render = TABLES[results_file]
  text = README.read_text()
  start, stop = text.index(begin), text.index(end) + len(end)
  README.write_text(text[:start] + render(results) + text[stop:])


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.run', description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true', help='a fast smoke run; writes --out, not results.json')
  parser.add_argument('--seeds', type=int, default=5)
  parser.add_argument('--data-dir', default=os.environ.get('DIGITREC_DATA_DIR'))
  parser.add_argument('--out', default=None, help='results file (default: benchmarks/results.json; on a GPU '
                      'machine, benchmarks/results_gpu.json with --only train,fast_preset,peer,best_recipe,checkpoint)')
  parser.add_argument('--best-run', default=None, metavar='DIR',
                      help="the best_recipe section reads this `--preset best` run's summary.json and metrics.jsonl "
                      '(default: the shipped model\'s)')
  parser.add_argument('--only', default=None, help='comma-separated sections to re-measure, keeping the others '
                      'from the results file: train, fast_preset, peer, best_recipe, gui, checkpoint, canvas, styles, '
                      'rejection, numbers')
  args = parser.parse_args(argv)
  if not args.data_dir:
    parser.error('pass --data-dir or set DIGITREC_DATA_DIR to the MNIST folder')
  if args.best_run:
    lacking = [name for name in ('summary.json', 'metrics.jsonl') if not (Path(args.best_run) / name).is_file()]
    if lacking:
      parser.error(f'--best-run {args.best_run} holds no {" or ".join(lacking)}; pass the --checkpoint-dir of a '
                   'finished `python train.py --preset best` run')
  sys.path.insert(0, str(ROOT))
  from benchmarks import canvas, gui_latency, numbers, rejection, styles
  quick = args.quick
  sections = {
      'train': lambda: {p: throughput(p, chunks=1 if quick else 20) for p in ('default', 'fast', 'best')},
      'fast_preset': lambda: fast_runs([0] if quick else list(range(args.seeds)), args.data_dir,
                                       ['--steps', '21'] if quick else []),
      'peer': lambda: peer_run(0.5 if quick else 5.0),
      'best_recipe': lambda: best_recipe(args.best_run),
      'gui': lambda: {**gui_latency.measure_latency(5 if quick else 1000),
                      **(gui_latency.measure_startup(1 if quick else 5) or {})},
      'checkpoint': lambda: checkpoint_times(2 if quick else 10),
      'canvas': lambda: canvas.measure(args.data_dir, limit=100 if quick else None,
                                       figure=None if quick else ROOT / 'docs' / 'canvas_robustness.png'),
      'styles': lambda: styles.measure(args.data_dir, limit=20 if quick else None),
      'rejection': lambda: rejection.measure(args.data_dir, limit=100 if quick else None,
                                             figure=None if quick else ROOT / 'docs' / 'rejection_curve.png'),
      'numbers': lambda: numbers.measure(args.data_dir, limit=4 if quick else None),
  }
  only = args.only.split(',') if args.only else list(sections)
  unknown = sorted(set(only) - set(sections))
  if unknown:
    parser.error(f'unknown --only section {", ".join(unknown)}; choose from {", ".join(sections)}')
  out = (Path(args.out) if args.out else (Path(tempfile.mkdtemp()) / 'results.json' if quick else RESULTS)).resolve()
  # --only re-measures some sections and keeps the others from the results file.
  results = json.loads(out.read_text()) if args.only and out.exists() else {}
  command = 'xvfb-run python -m benchmarks.run' + (' --quick' if quick else '')
  results.update(hardware=hardware(), command=command)
  if out == RESULTS_GPU and results['hardware']['platform'] == 'cpu':
    parser.error(f'{RESULTS_GPU.name} holds figures measured on a GPU, and jax sees only the CPU here; '
                 'run on a GPU machine or pass another --out')
  for name in only:
    results[name] = sections[name]()
    results.setdefault('commands', {})[name] = (
        command + (f' --only {args.only}' if args.only else '')
        + (' --out benchmarks/results_gpu.json' if out == RESULTS_GPU else '')
        + (' --best-run RUN' if name == 'best_recipe' and args.best_run else ''))
  out.write_text(json.dumps(results, indent=2, sort_keys=True) + '\n')
  if out in TABLES:
    update_readme(results, out)
  if out == RESULTS_GPU:
    print(render_gpu_table(results))
  elif set(sections) <= set(results):
    print(render_table(results))
  else:  # A new results file with some sections: no table to fill.
    print(json.dumps({name: results[name] for name in only}, indent=2, sort_keys=True))
  print(f'wrote {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
