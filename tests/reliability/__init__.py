"""Reliability tests: fuzzing, a stateful association model, hostile data, conformance."""
