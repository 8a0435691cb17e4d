"""Runs the README's "Reusing the model" examples, so they cannot rot."""

import pytest
import os
import re
import subprocess
import sys
from pathlib import Path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
  text = (ROOT / 'README.md').read_text()
  section = text.split('## Reusing the model', 1)[1].split('\n## ', 1)[0]
  return re.findall(r'```python\n(.*?)```', section, flags=re.S)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
  out = subprocess.run([sys.executable, '-c', code], cwd=cwd, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ))
  assert out.returncode == 0, out.stderr[-3000:]
  return out


def test_reusing_the_model_examples_run(real_data_dir, tmp_path):
  blocks = _blocks()
  fresh = [b for b in blocks if b.startswith('# fresh process')]
  library = [b for b in blocks if not b.startswith('# fresh process')]
  assert len(library) == 4 and len(fresh) == 1
  out = _run('\n'.join(library), tmp_path)
  assert re.search(r'accuracy on 2000 test digits: 9\d\.\d\d%', out.stdout)
  assert (tmp_path / 'digit_model.jax').stat().st_size > 1_000_000
  # The serving side must not need flax or this package.
  check = fresh[0] + ("\nimport sys\nassert 'flax' not in sys.modules and 'digitrec_jax' not in sys.modules, "
                      "sorted(m for m in sys.modules if m.startswith(('flax', 'digitrec')))\n")
  assert _run(check, tmp_path).stdout.strip() == '(5,) (5, 10)'
