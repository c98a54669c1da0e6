// Alertmanager inhibit rules for vouch's alerts (not part of the
// monitoring-mixins contract, which has no place for them; scripts/mixin.sh
// writes them to alerts/alertmanager-inhibit.yml). Every rule's `equal`
// holds the install labels, so one install never mutes another's alerts.
{
  local c = $._config,
  local specificGroups = ['certificatesAndDns', 'dataStores', 'backupsSecretsImages', 'kubernetes'],
  local specific = std.set([
    rule.alert
    for g in specificGroups
    if std.objectHas($.prometheusAlerts_areas, g)
    for rule in $.prometheusAlerts_areas[g].rules
  ]),
  local specificMatcher = 'alertname=~"%s"' % std.join('|', specific),
  local lower = { critical: 'warning|info', warning: 'info' },
  local atMost = { critical: 'critical|warning|info', warning: 'warning|info', info: 'info' },

  alertmanagerInhibitRules+:: [
    // The standard rule, with the labels that tell vouch's subjects
    // apart: the critical tier of an alert mutes its warning tier for the
    // same check (and secret, server or PVC).
    {
      source_matchers: ['alertname=~"Vouch.+"', 'severity="%s"' % severity],
      target_matchers: ['alertname=~"Vouch.+"', 'severity=~"%s"' % lower[severity]],
      equal: c.installLabels + ['check', 'secret', 'server', 'pvc', 'alertname'],
    }
    for severity in ['critical', 'warning']
  ] + (
    if std.length(specific) == 0 then [] else [
      // A specific alert says what broke; it mutes the generic
      // VouchCheckFailing of the same check, never one more severe.
      {
        source_matchers: [specificMatcher, 'severity="%s"' % severity],
        target_matchers: ['alertname="VouchCheckFailing"', 'severity=~"%s"' % atMost[severity]],
        equal: c.installLabels + ['check'],
      }
      for severity in ['critical', 'warning', 'info']
    ]
  ) + [
    // Redis evicts only at maxmemory, so evictions come with high memory;
    // the memory alert lasts while the evictions come in bursts: one page
    // for the check (the evictions alone page where no memory limit is set).
    {
      source_matchers: ['alertname="VouchRedisMemoryHigh"', 'severity="%s"' % severity],
      target_matchers: ['alertname="VouchRedisEvicting"', 'severity=~"%s"' % atMost[severity]],
      equal: c.installLabels + ['check'],
    }
    for severity in ['critical', 'warning', 'info']
  ] + [
    // A data store that is down makes every check that reads it end in
    // error: the error rate of the whole install says nothing the paged
    // check does not. Never a more severe error-rate alert.
    {
      source_matchers: ['alertname=~"VouchCheckFailing|%s"' % std.join('|', specific), 'severity="%s"' % severity],
      target_matchers: ['alertname="VouchProbeErrorRateHigh"', 'severity=~"%s"' % atMost[severity]],
      equal: c.installLabels,
    }
    for severity in ['critical', 'warning']
  ] + [
    // When no replica is up, the per-replica warnings say nothing more.
    {
      source_matchers: ['alertname="VouchNoInstanceUp"'],
      target_matchers: ['alertname="VouchInstanceDown"'],
      equal: c.installLabels,
    },
  ],
}
