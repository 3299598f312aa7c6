"""The ElevenLabs side: the API client (the only importer of httpx), the pool of one client per
workspace, and the simulated API that `demo`, the tests and the benchmarks talk to.
"""
