"""Constructs, one component each; stacks in the parent package compose them."""
