"""Kafka and Faust underneath: the consumer's intake, the producer, transactions, topics,
the tuning for the embedded broker, the pinned versions, and the command line's clients.
"""
