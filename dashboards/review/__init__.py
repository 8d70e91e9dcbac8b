"""The daily review: queues of pairs to label, labels, and the digest."""
