// The dashboards (grafanaDashboards). They stay generated from Python with Grafana's own
// builders (deploy/grafana/generate_dashboard.py); build.py copies each generated file here,
// so that the mixin is self-contained when jsonnet-bundler vendors deploy/mixin alone.
{
  grafanaDashboards+:: {
    'elevenlabs-link-monitor.json': import 'dashboards/elevenlabs-link-monitor.json',
  },
}
