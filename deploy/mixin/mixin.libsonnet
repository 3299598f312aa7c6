// The elevenlabs-link-monitor monitoring mixin (the kube-prometheus convention):
//
//   _config             settings: selector, identity and owner labels, runbook URLs,
//                       every alert's for: and severity (config.libsonnet)
//   prometheusRules     the recording rules the alerts read (rules.libsonnet)
//   prometheusAlerts    the alerts (alerts.libsonnet)
//   grafanaDashboards   the dashboard (dashboards.libsonnet)
//
// deploy/prometheus/rules.yml, the Helm chart's PrometheusRule and the Grafana-managed alert
// rules are all generated from it by build.py (`make mixin`). See README.md.
(import 'config.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'dashboards.libsonnet')
