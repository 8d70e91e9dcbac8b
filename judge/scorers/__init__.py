"""The scorers: one answer or one pair in, a finding out (refusal, format drift, equivalence).

Pure functions and the pairwise LLM judge; they know nothing of the bus or the store.
"""
