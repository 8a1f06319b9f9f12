"""Toy training scripts used by ``outlive demo`` and the tests: resume-correct under any kill."""
