"""Instruction semantics, one module per family (see translator/registry.py)."""
