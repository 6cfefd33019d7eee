"""Failure drills: each injects one kind of failure into the real code on moto and counts what survived."""
