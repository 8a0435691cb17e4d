"""The bad-input matrix of docs/errors.md: every row names tests that exist, and one sweep runs the
command-line rows in this process (one import of JAX, no subprocesses), each giving one line and its exit."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_every_row_of_the_error_table_names_tests_that_exist():
  text = (ROOT / 'docs' / 'errors.md').read_text()
  named = set(re.findall(r'`(test_\w+\.py)::(test_\w+)', text))
  assert len(named) >= 40
  for filename, name in sorted(named):
    tree = ast.parse((ROOT / 'tests' / filename).read_text())
    functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert name in functions, f'docs/errors.md names {filename}::{name}, which does not exist'


def test_sweep_of_the_command_line_rows_in_one_process(tmp_path, capsys, fake_mnist, monkeypatch):
  from helpers import tiny_predictor

  from digitrec_jax import evaluate, train
  from digitrec_jax import export as export_lib
  from digitrec_jax import predict as predict_lib
  monkeypatch.setattr(predict_lib, 'load_predictor', lambda checkpoint=None: tiny_predictor() if checkpoint is None
                      else predict_lib.load_variables(checkpoint))
  (tmp_path / 'file').write_text('keep me')
  (tmp_path / 'notes.png').write_text('not an image')
  (tmp_path / 'empty.png').write_bytes(b'')
  Image.new('L', (30, 30), 255).save(tmp_path / 'white.png')
  long = 'n' * 300
  t, data = tmp_path, str(fake_mnist)
  rows = [
      # (command, argv, exit, the one stderr line as a regex)
      (train.main, ['--steps', '0'], 2, r"digitrec-train: error: argument --steps: expected a positive integer, got '0'"),
      (train.main, ['--batch-size', '60001'], 2, r'digitrec-train: error: argument --batch-size: expected an integer '
                                                 r"from 1 to 60,000, got '60001'"),
      (train.main, ['--seed', '-1'], 2, r'digitrec-train: error: argument --seed: .*'),
      (train.main, ['--learning-rate', '-0.1'], 2, r'digitrec-train: error: argument --learning-rate: .*'),
      (train.main, ['--bogus', '1'], 2, r'digitrec-train: error: unrecognized arguments: --bogus 1'),
      (train.main, ['--steps', '1', '--data-dir', str(t / 'nope'), '--checkpoint-dir', str(t / 'r1')], 1,
       r'error: data dir .*/nope does not exist or is not a folder; .*'),
      (train.main, ['--steps', '1', '--data-dir', data, '--checkpoint-dir', str(t / 'file')], 1,
       r'error: run dir .*/file is a file; pass another --checkpoint-dir'),
      (train.main, ['--steps', '1', '--data-dir', data, '--checkpoint-dir', str(t / long)], 1,
       r'error: cannot use run dir .* \(File name too long\); pass another --checkpoint-dir'),
      (predict_lib.main, [str(t / 'notes.png')], 1, r'error: .*/notes.png is not a readable image \(UnidentifiedImageError\); .*'),
      (predict_lib.main, [str(t / 'missing.png')], 1, r'error: .*/missing.png does not exist'),
      (predict_lib.main, [str(t / 'empty.png')], 1, r'error: .*/empty.png is an empty file'),
      (predict_lib.main, [str(t)], 1, r'error: .* is a directory; pass image files'),
      (predict_lib.main, [str(t / 'white.png')], 1, r'error: .*/white.png: the image is blank: it holds no strokes'),
      (predict_lib.main, [str(t / long)], 1, r'error: cannot open .* \(File name too long\)'),
      (predict_lib.main, ['--checkpoint', str(t / 'nope'), 'x.png'], 1, r'error: checkpoint dir .*/nope does not exist; .*'),
      (export_lib.main, ['--out', str(t / 'file')], 1, r'error: .*/file exists; pass --force to replace it, or choose '
                                                     r'another --out'),
      (export_lib.main, ['--out', str(t)], 1, r'error: .* exists and is not a regular file; choose another --out'),
      (export_lib.main, ['--out', str(t / 'nope' / 'm')], 1, r'error: folder .*/nope does not exist; create it or '
                                                            r'choose another --out'),
      (evaluate.main, ['--out', str(t / 'file')], 2, r'error: --out .*/file is a file; pass a folder'),
      (evaluate.main, ['--out', str(t / long)], 2, r'error: cannot use --out .* \(File name too long\); pass another --out'),
      (evaluate.main, ['--checkpoint', str(t / 'nope'), '--out', str(t / 'o')], 1,
       r'error: checkpoint dir .*/nope does not exist; .*'),
  ]
  for command, argv, code, message in rows:
    try:
      got = command(argv)
    except SystemExit as e:  # argparse
      got = e.code
    err = capsys.readouterr().err
    assert got == code, (argv, err)
    lines = [line for line in err.splitlines() if not line.startswith('usage:') and not line.startswith(' ')]
    assert len(lines) == 1 and re.fullmatch(message, lines[0]), (argv, err)
  assert (t / 'file').read_text() == 'keep me'  # Nothing overwritten.
  assert not (t / 'o').exists()  # evaluate writes nothing when it fails.
