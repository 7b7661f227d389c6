"""For trying leadscore on one machine: `leadscore dev` (the embedded broker, a worker and
demo traffic) and the traffic generator.
"""
