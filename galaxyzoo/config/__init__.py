"""Configuration: experiment files and sweep files, read into frozen typed objects."""
