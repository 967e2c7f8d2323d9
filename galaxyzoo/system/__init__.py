"""Shared plumbing: OS file locks, owned temporary folders, the process pool and logging."""
