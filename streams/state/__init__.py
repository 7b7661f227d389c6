"""What the worker keeps in memory beside the Faust tables: the lead store (the states
being worked on, flushed to the table) and the indexes its timers and views read.
"""
