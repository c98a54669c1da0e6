// grafanaDashboards: file name -> dashboard. The Overview is built here;
// the four kind dashboards start from their JSON in src/ and get the shared
// variables (cluster, namespace, job, instance, check), the links between
// dashboards, the mixin's selector, and a unit and a description on every
// panel.
{
  local c = $._config,
  local d = (import '../lib/dashboard.libsonnet')(c),

  // Units and descriptions the source JSON lacks, by panel title.
  local fill = {
    Reachable: { unit: 'bool_yes_no', description: '1 if the last run of the check connected (PostgreSQL: logged in; Redis: PING and INFO answered).' },
    'Connections by state': { unit: 'short', description: "Client connections by state (active, idle, idle in transaction, ...), as pg_stat_activity shows them to the check's role." },
    'Slow queries': { unit: 'short', description: "Active queries running longer than the check's slow_query_threshold." },
    'Database size': { description: 'Size of the database the check connects to.' },
    Memory: { description: 'Memory Redis has allocated (used_memory) against its maxmemory setting (0: unlimited).' },
    'Evicted keys per window': { unit: 'short', description: "Keys evicted in the window since the check's previous run (VouchRedisEvicting above max_evictions)." },
    Clients: { unit: 'short', description: 'Connected and blocked clients of the Redis server, the check\'s own connection included.' },
    Persistence: { unit: 'bool_yes_no' },
    'PING round trip': { description: 'Round trip of the check\'s last PING.' },
    'HTTP status': { unit: 'none', description: 'HTTP status code of the last response, after redirects.' },
    'Check duration p50 / p95 / p99 (targets 200ms / 500ms / 1s)': { description: 'Run time of the checks, whole run, from the duration histogram; the dashed lines are the checklist\'s response-time targets.' },
    'Time per phase of the last request': { description: 'Where the last HTTP request spent its time: resolve, connect, tls, processing (server), transfer.' },
    'Response body size': { description: 'Bytes of the last response body received.' },
    'Redirects followed': { unit: 'short', description: 'Redirects the last HTTP request followed.' },
    'Certificate verification': { unit: 'bool_yes_no', description: 'Whether the chain last seen verified against the trust roots for the host name.' },
    'TLS handshake time': { description: 'Duration of the last TLS handshake of each tls check.' },
    'DNS lookup time by server': { description: 'Duration of the last lookup, by name server.' },
    'DNS answers and agreement': { unit: 'short' },
    'Secrets present': { unit: 'bool_yes_no' },
    'Secrets enabled': { unit: 'bool_yes_no' },
    'Matching backup objects': { unit: 'short' },
    'Bytes of all matching backups': { description: 'Bytes of all objects under the backup prefix that match the pattern.' },
    'Deployed tag present': { unit: 'bool_yes_no' },
    'Rollback tags (3 wanted)': { unit: 'short' },
    'Verified since rollout': { unit: 's' },
    'Objects ready': { unit: 'bool_yes_no' },
    'Watch sync state': { unit: 'bool_yes_no' },
  },

  local selector = 'job=~"$job"',
  local narrowed = '%s, %s=~"$cluster", namespace=~"$namespace", job=~"$job"' % [c.vouchSelector, c.clusterLabel],

  // Every aggregation keeps the install labels, so two installs with a
  // check of the same name are two series, never one max or min of both.
  local install = std.join(', ', c.installLabels),
  local keepInstall(expr) = std.foldl(
    function(e, pair) std.strReplace(e, pair[0], pair[1]),
    [
      ['by (check', 'by (' + install + ', check'],
      ['on (check)', 'on (' + install + ', check)'],
      ['by (le)', 'by (' + install + ', le)'],
      ['by (resource, watch_namespace)', 'by (' + install + ', resource, watch_namespace)'],
    ],
    expr,
  ),
  // Legends name the install's namespace once several are shown.
  local legend(t) =
    if std.objectHas(t, 'legendFormat') && std.length(std.findSubstr('{{check}}', t.legendFormat)) > 0
    then { legendFormat: '{{namespace}} ' + t.legendFormat }
    else {},

  // Limit lines: each check's own configured limit from
  // vouch_check_threshold (exported only when the check sets it), drawn
  // dashed, instead of a fixed number that may contradict the check.
  local sel(metric, extra='') = metric + '{' + narrowed + ', instance=~"$instance", check=~"$check"' + (if extra == '' then '' else ', ' + extra) + '}',
  local threshold(key, extra='') = sel('vouch_check_threshold', 'threshold="%s"%s' % [key, extra]),
  local onReplica = 'and on (' + install + ', instance, check) ',
  local limits = {
    'Secret age over time (90-day line)': {
      title: 'Secret age over time (dashed: max_age)',
      key: 'max_age',
      expr: 'max by (%s, check, secret) (%s) / 86400' % [install, threshold('max_age', ', secret!=""')],
      legend: '{{namespace}} {{check}} {{secret}} max_age',
    },
    'Age of the newest backup (24h line)': {
      title: 'Age of the newest backup (dashed: max_age)',
      key: 'max_age',
      expr: 'max by (%s, check) (%s %s%s)' % [install, threshold('max_age', ', secret=""'), onReplica, sel('vouch_backup_last_modified_timestamp_seconds')],
      legend: '{{namespace}} {{check}} max_age',
    },
    'Size of the newest backup (1MB line)': {
      title: 'Size of the newest backup (dashed: min_size)',
      key: 'min_size',
      expr: 'max by (%s, check) (%s)' % [install, threshold('min_size')],
      legend: '{{namespace}} {{check}} min_size',
    },
    'Rollback tags (3 wanted)': {
      title: 'Rollback tags (dashed: min_rollback_tags)',
      key: 'min_rollback_tags',
      expr: 'max by (%s, check) (%s)' % [install, threshold('min_rollback_tags')],
      legend: '{{namespace}} {{check}} min_rollback_tags',
    },
    'ExternalSecret sync age (1h line)': {
      title: 'ExternalSecret sync age (dashed: max_sync_age)',
      key: 'max_sync_age',
      expr: 'max by (%s, check) (%s)' % [install, threshold('max_sync_age')],
      legend: '{{namespace}} {{check}} max_sync_age',
    },
    'Ready endpoints': {
      title: 'Ready endpoints (dashed: min_ready)',
      key: 'min_ready',
      expr: 'max by (%s, check) (%s %s%s)' % [install, threshold('min_ready'), onReplica, sel('vouch_kube_ready_endpoints')],
      legend: '{{namespace}} {{check}} min_ready',
    },
    'Snapshot age per PVC (7-day line)': {
      title: 'Snapshot age per PVC (dashed: max_age)',
      key: 'max_age',
      expr: 'max by (%s, check) (%s %s%s) / 86400' % [install, threshold('max_age', ', secret=""'), onReplica, sel('vouch_kube_snapshot_age_seconds')],
      legend: '{{namespace}} {{check}} max_age',
    },
  },
  local withLimit(p) =
    if !std.objectHas(limits, p.title) then p else
      local l = limits[p.title];
      p {
        title: l.title,
        description: p.description + " The dashed line is each check's own %s (vouch_check_threshold), drawn for the checks that set it." % l.key,
        fieldConfig+: {
          defaults+: {
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            custom+: { thresholdsStyle: { mode: 'off' } },
          },
          overrides: [{
            matcher: { id: 'byFrameRefID', options: 'LIMIT' },
            properties: [
              { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
              { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
            ],
          }],
        },
        targets+: [{ datasource: p.targets[0].datasource, refId: 'LIMIT', expr: l.expr, legendFormat: l.legend }],
      },

  local upgradePanel(p) =
    if p.type == 'row' then p else withLimit(p {
      description: if std.objectHas(p, 'description') then p.description else fill[p.title].description,
      fieldConfig+: { defaults+: {
        unit: if std.objectHas(p, 'fieldConfig') && std.objectHas(p.fieldConfig, 'defaults') && std.objectHas(p.fieldConfig.defaults, 'unit') then p.fieldConfig.defaults.unit else fill[p.title].unit,
      } },
      targets: [t { expr: keepInstall(std.strReplace(t.expr, selector, narrowed)) } + legend(t) for t in p.targets],
    }),

  local upgrade(src) = src {
    templating: { list: d.variables() },
    links: d.links,
    panels: [upgradePanel(p) for p in src.panels],
  },

  grafanaDashboards+:: {
    'vouch-overview.json': (import 'overview.libsonnet')(c).dashboard,
    'vouch-endpoints.json': upgrade(import 'src/vouch-endpoints.json'),
    'vouch-data-stores.json': upgrade(import 'src/vouch-data-stores.json'),
    'vouch-secrets-backups.json': upgrade(import 'src/vouch-secrets-backups.json'),
    'vouch-workloads.json': upgrade(import 'src/vouch-workloads.json'),
  },
}
