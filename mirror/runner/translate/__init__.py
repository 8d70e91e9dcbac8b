"""Request translation between OpenAI Chat Completions and Anthropic Messages, and arm transforms.

`request` holds the table of decisions and the entry points; `messages` and `params` its halves.
"""
