"""The ElevenLabs side.

- client.py: the API client (settings, requests, limits, retries), one per workspace.
- answers.py: bytes and statuses turned into outcomes (link answers, listing pages, errors).
- limiter.py: the request rate limit, one per workspace, outliving its clients.
- transport.py: httpx's API over aiohttp's pool, TLS, transport errors as failure reasons.
- pool.py: one client per workspace, replaced and retired as the config changes.
- simulator.py: the simulated API that `demo`, the tests and the benchmarks talk to.

Only client.py and transport.py import httpx, so that a change of HTTP library stays there.
"""
