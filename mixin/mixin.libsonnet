// vouch's monitoring mixin (https://monitoring.mixins.dev layout):
// prometheusAlerts, grafanaDashboards and _config. See config.libsonnet
// for what can be changed.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'alerts/inhibit.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
