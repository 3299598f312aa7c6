"""The status page (`/`), its partial (`/partial`) and its JSON API (`/api/v1/...`), read from
the state store.

Everything here is read-only: GET and HEAD only, and a strict Content-Security-Policy (the
script and the stylesheet are files under `/static/`, never inline). The HTML comes from
autoescaped Jinja2 templates (`monitor/web/templates/`): an agent's name is whatever somebody
typed in the ElevenLabs console. The server renders every row and figure; the script only
fetches the partial and swaps it in. The schema of the JSON API is documented in
`docs/status-api.md`; fields are only ever added to version 1.

What lives where (at run time each module imports only those listed above it; `routes`
wires them together):

- `text`: words for people, the only place they are written (state labels and
  descriptions, durations, times, banners); the templates use them as filters.
- `figures`: the numbers computed from the store, shared by the page and the API: each
  agent's state and row, the sort order, the header's counts and the monitor's health.
- `search`: the search index, the parsing of `state` and `q`, filters and pages.
- `headers`: the Content-Security-Policy and the headers every answer carries.
- `assets`: the Jinja2 environment and templates (loaded late), and the static files served
  under content-hashed names. Both stay package data of `monitor.web` (`templates/`,
  `static/`).
- `routes`: `status_routes` and its handlers.
"""
