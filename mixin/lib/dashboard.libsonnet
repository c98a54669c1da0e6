// Shared pieces of vouch's dashboards: variables, links, selectors, and
// panels that always carry a unit and a description.
function(c) {
  local root = self,
  local ds = { type: 'prometheus', uid: '${datasource}' },
  local cl = c.clusterLabel,

  // The selector every panel query starts from: the mixin's vouch
  // selector, then the dashboard variables.
  sel(extra=''):: '%s, %s=~"$cluster", namespace=~"$namespace", job=~"$job", instance=~"$instance"%s' % [
    c.vouchSelector,
    cl,
    if extra == '' then '' else ', ' + extra,
  ],
  // ... and the check variables.
  checkSel(extra=''):: root.sel('check=~"$check"' + (if extra == '' then '' else ', ' + extra)),

  local variable(name, label, query) = {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    query: { query: query, refId: name },
    definition: query,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { text: 'All', value: '$__all' },
    refresh: 2,
    hide: 0,
    sort: 1,
  },

  // datasource, cluster, namespace, job, instance, [section,] check: each
  // narrowed by the ones before it.
  variables(withSection=false):: [
    {
      name: 'datasource',
      label: 'Data source',
      type: 'datasource',
      query: 'prometheus',
      current: {},
      hide: 0,
      refresh: 1,
    },
    variable('cluster', 'Cluster', 'label_values(vouch_build_info{%s}, %s)' % [c.vouchSelector, cl]),
    variable('namespace', 'Namespace', 'label_values(vouch_build_info{%s, %s=~"$cluster"}, namespace)' % [c.vouchSelector, cl]),
    variable('job', 'Job', 'label_values(vouch_build_info{%s, %s=~"$cluster", namespace=~"$namespace"}, job)' % [c.vouchSelector, cl]),
    variable('instance', 'Instance', 'label_values(vouch_build_info{%s, %s=~"$cluster", namespace=~"$namespace", job=~"$job"}, instance)' % [c.vouchSelector, cl]),
  ] + (
    if withSection then [variable('section', 'Section', 'label_values(vouch_check_info{%s}, section)' % root.sel())] else []
  ) + [
    variable('check', 'Check', 'label_values(vouch_check_info{%s}, check)' % root.sel(if withSection then 'section=~"$section"' else '')),
  ],

  // Every vouch dashboard links to the others (by tag), keeping the time
  // range and the variables.
  links:: [{
    title: 'vouch dashboards',
    type: 'dashboards',
    tags: c.dashboardTags,
    asDropdown: false,
    includeVars: true,
    keepTime: true,
  }],

  dashboard(uid, title, description, panels, withSection=false):: {
    uid: uid,
    title: title,
    description: description,
    tags: c.dashboardTags,
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    time: { from: c.dashboardFrom, to: 'now' },
    refresh: c.dashboardRefresh,
    templating: { list: root.variables(withSection) },
    annotations: { list: [] },
    links: root.links,
    panels: std.mapWithIndex(function(i, p) p { id: i + 1 }, panels),
  },

  target(expr, refId='A', legend='', format='time_series', instant=false):: {
    datasource: ds,
    expr: expr,
    refId: refId,
    legendFormat: legend,
    format: format,
    instant: instant,
    range: !instant,
  },

  // A panel: `unit` and `description` are required arguments.
  panel(type, title, description, unit, gridPos, targets, defaults={}, options={}, transformations=[], overrides=[]):: {
    type: type,
    title: title,
    description: description,
    datasource: ds,
    gridPos: gridPos,
    targets: targets,
    fieldConfig: { defaults: { unit: unit } + defaults, overrides: overrides },
    options: options,
    transformations: transformations,
  },

  row(title, y):: {
    type: 'row',
    title: title,
    collapsed: false,
    gridPos: { h: 1, w: 24, x: 0, y: y },
    panels: [],
  },
}
