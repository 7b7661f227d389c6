"""Where the worker delivers outside Kafka: the sales-alerts webhook."""
