"""Ctrl-C (a real SIGINT) and kill -9 at random moments of a training run: the resumed run ends
with the weights of an uninterrupted one, bit for bit (two trials of each here; the ten-trial
version is scripts/interrupt_resume.py, its output in docs/reliability.md)."""

import importlib.util
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")


def _script():
    path = Path(__file__).resolve().parent.parent / "scripts" / "interrupt_resume.py"
    spec = importlib.util.spec_from_file_location("interrupt_resume", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_interrupts_and_kills_at_random_moments_resume_exactly(tmp_path):
    results = _script().run(2, seed=1, workdir=tmp_path, in_process=True)
    assert [r["signal"] for r in results] == ["SIGINT", "SIGINT", "SIGKILL", "SIGKILL"]
    for r in results:
        assert r["identical"], r
        assert r["tmp_files"] == [], r
        if r["interrupted"]:
            assert r["exit_code"] == (130 if r["signal"] == "SIGINT" else -9), r
    assert sum(r["interrupted"] for r in results) >= 2
