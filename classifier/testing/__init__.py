"""Helpers shared by the tests, the benchmarks and the scripts; not part of the served Bento."""
