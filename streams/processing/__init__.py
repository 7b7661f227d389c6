"""The worker's record handling: the scorer (the hot path), identity stitching across
partitions, the funnel, decay and rules checks, and the lifecycle around them.
"""
