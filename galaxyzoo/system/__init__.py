"""Shared plumbing: OS file locks, owned temporary folders and the process pool."""
