"""Interpretability by Experiment: the library the chapters import."""
