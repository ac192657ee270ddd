"""Tests: `unit/` needs no server; `e2e/` starts the real `bentoml serve`."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
