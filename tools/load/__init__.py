"""`make load`: a mixed load with a region failure in the middle, then the invariants that must hold."""
