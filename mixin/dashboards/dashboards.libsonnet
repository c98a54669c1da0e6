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

  local upgradePanel(p) =
    if p.type == 'row' then p else p {
      description: if std.objectHas(p, 'description') then p.description else fill[p.title].description,
      fieldConfig+: { defaults+: {
        unit: if std.objectHas(p, 'fieldConfig') && std.objectHas(p.fieldConfig, 'defaults') && std.objectHas(p.fieldConfig.defaults, 'unit') then p.fieldConfig.defaults.unit else fill[p.title].unit,
      } },
      targets: [t { expr: std.strReplace(t.expr, selector, narrowed) } for t in p.targets],
    },

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
