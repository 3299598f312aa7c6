"""Configuration: the schema, loading with located errors, API keys, and the files a running
monitor watches. The only YAML reader.
"""
