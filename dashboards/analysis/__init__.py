"""Figures read from the store: rates, intervals, coverage."""
