"""The HTTP side: the server and its guards, the Prometheus exposition, and the status page
with its JSON API, templates and static files.
"""
