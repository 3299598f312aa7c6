"""The running monitor: wiring (`wiring.Runtime`), the process (`daemon`), and the pieces it
starts and stops: jobs, poll cycles, polls, discovery, the due-time queue, reloads, readiness.
"""
