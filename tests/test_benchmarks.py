"""Smoke runs of the benchmark scripts so they cannot rot; no timing is asserted."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import gui_latency  # noqa: E402


def test_gui_latency_smoke(capsys, monkeypatch):
  monkeypatch.delenv('DISPLAY', raising=False)
  assert gui_latency.main(['--repeats', '5', '--no-write']) == 0
  entry = json.loads(capsys.readouterr().out)
  assert entry['latency_repeats'] == 5 and entry['traces'] == 1
  assert 0 < entry['latency_p50_ms'] <= entry['latency_p99_ms']
  assert 'startup_median_s' not in entry


def test_readme_table_is_generated_from_results():
  entry = json.loads((gui_latency.RESULTS).read_text())['gui']
  assert gui_latency.render_table(entry) in gui_latency.README.read_text()
