"""A command-line client for the running service: classify files and folders, evaluate a model."""
