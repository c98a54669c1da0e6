// Everything an installation may want to change, in one place. Override
// with `(import 'mixin.libsonnet') + { _config+:: { ... } }`.
{
  _config+:: {
    // Selects vouch's series; every expression in the rules and the
    // dashboards starts from it. An exact job, so `vouchers-api` is never
    // taken for vouch.
    vouchSelector: 'job="vouch"',

    // The label that tells clusters apart in a Prometheus that sees
    // several (Thanos, Mimir, federation). Absent labels are empty, so the
    // rules are right with or without it.
    clusterLabel: 'cluster',

    // An install is one vouch Deployment: its cluster, namespace and job.
    // Every check-level alert keeps these labels plus `check`; per-replica
    // alerts add `instance`.
    installLabels: [self.clusterLabel, 'namespace', 'job'],

    // How long a failed scrape may hide a series before an alert forgets
    // it: gauges are read with last_over_time over this window, so a
    // scrape or two lost within a `for:` does not reset it.
    scrapeGapTolerance: '5m',

    // A replica's check is stale when its last run ended more than this
    // many intervals (plus its timeout) ago.
    staleIntervals: 3,

    // VouchCheckSlow: mean run time over `slowWindow` above this share of
    // the check's own timeout. The window holds several runs even of a
    // check on a 10-minute interval.
    slowTimeoutRatio: 0.8,
    slowWindow: '1h',

    // VouchProbeErrorRateHigh: share of runs of warning and critical checks
    // that could not be evaluated (result="error").
    probeErrorRatio: 0.05,
    probeErrorWindow: '10m',

    // Expiry alerts (TLS chain, cert-manager Certificate, secrets) fire at
    // the check's severity once the check fails on its own min_valid_for.
    // Checks of these severities also fire at critical within
    // expiryCriticalDays (an expiry days away is an outage); [] turns the
    // escalation off. Info checks are better left out: they never page.
    expiryEscalateSeverities: ['warning'],
    expiryCriticalDays: 7,

    // `for:` of check-level alerts, by the check's severity: a specific
    // alert waits as long as the generic one of the same severity, so
    // the two arrive together and inhibition keeps one.
    checkFor: { critical: '1m', warning: '5m', info: '5m' },

    // `keep_firing_for:` of the specific alerts (Prometheus 2.42 or newer;
    // '' leaves it out). At a repair the specific alert can resolve an
    // evaluation before the generic VouchCheckFailing it mutes; without
    // this, Alertmanager then pages the generic one as it resolves.
    specificKeepFiringFor: '2m',

    // `for:` of the alerts that are not about one check's verdict.
    alertFor: {
      instanceDown: '5m',
      noInstanceUp: '2m',
      absent: '10m',
      configReloadFailed: '0m',
      schedulerLagging: '10m',
      runsSkipped: '0m',
      kubeWatchFailing: '5m',
      checkStale: '1m',
      checkNeverRan: '1m',
      checkSlow: '15m',
      probeErrors: '10m',
    },

    // VouchSchedulerLagging: this quantile of how late runs start, over
    // the window, above this many seconds.
    schedulerLagQuantile: 0.99,
    schedulerLagSeconds: 5,
    schedulerLagWindow: '10m',

    // VouchRunsSkipped: any run skipped within this window.
    skippedRunsWindow: '15m',

    // VouchAbsent, per install: an install (cluster, namespace, job) that
    // reported within this window and reports nothing now. Past it, a
    // removed install is forgotten (the alert resolves by itself).
    absentLookback: '1h',

    // Severities of the alerts about vouch itself.
    severities: {
      instanceDown: 'warning',
      noInstanceUp: 'critical',
      absent: 'critical',
      configReloadFailed: 'warning',
      schedulerLagging: 'warning',
      runsSkipped: 'info',
      kubeWatchFailing: 'warning',
      checkStale: 'warning',
      checkNeverRan: 'warning',
      checkSlow: 'warning',
      probeErrors: 'warning',
    },

    // Alert areas to ship; set one to false to leave its alerts out. Every
    // area but `self` goes into the one rule group vouch.checks (why:
    // alerts/alerts.libsonnet).
    groups: {
      checks: true,
      'self': true,
      certificatesAndDns: true,
      dataStores: true,
      backupsSecretsImages: true,
      kubernetes: true,
    },

    // SET THESE TWO for your installation (docs/deploy.md, "Changing the rules and dashboards"). The defaults
    // are under the reserved `.invalid` domain: links that visibly go
    // nowhere rather than to a guessed address.
    // runbook_url: this pattern with the alert's name in lower case, e.g.
    // 'https://git.example.org/ops/vouch/-/blob/main/docs/runbooks.md#%s'.
    runbookURLPattern: 'https://vouch-runbooks.set-runbookURLPattern.invalid/docs/runbooks.md#%s',

    // dashboard_url: Grafana's address; the link opens the checklist
    // dashboard filtered to the alert's install and check.
    grafanaURL: 'https://grafana.set-grafanaURL.invalid',
    dashboardUIDs: {
      overview: 'vouch-overview',
      endpoints: 'vouch-endpoints',
      dataStores: 'vouch-data-stores',
      secretsBackups: 'vouch-secrets-backups',
      workloads: 'vouch-workloads',
    },

    // Where people reach vouch's own pages from the dashboards (the check
    // table links each check to <vouchURL>/checks/NAME): by default the
    // address `kubectl port-forward svc/vouch 9847` gives.
    vouchURL: 'http://127.0.0.1:9847',

    // Dashboards: tags, refresh and default time range.
    dashboardTags: ['vouch'],
    dashboardRefresh: '30s',
    dashboardFrom: 'now-6h',
  },
}
