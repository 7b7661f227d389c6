"""Kafka and Faust underneath: leadscore's Faust transport (`transport`, registered with
Faust's `faust.transports` entry point) with its consumer, producer and the tuning for
Tansu, the worker's transactions, the topics, and the versions of Faust and aiokafka
whose internals these reach into (`pins`).
"""
