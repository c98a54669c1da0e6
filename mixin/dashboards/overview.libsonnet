// The Overview dashboard: "is this deploy healthy?" at a glance, for 100+
// checks: counts by verdict, a roll-up per section, and a table of every
// check (verdict, severity, last-run age, verified since rollout) linking
// to vouch's own page of the check.
function(c) {
  local d = (import '../lib/dashboard.libsonnet')(c),
  local cl = c.clusterLabel,
  local install = '%s, namespace, job' % cl,
  local replica = install + ', instance',

  // One verdict per check and install: 1 pass, 2 pending, 3 fail, 4
  // error; over replicas the worst. `stateSel` narrows the checks (e.g.
  // to critical ones).
  local verdict(stateSel='') =
    local s(state) = 'vouch_check_state{' + d.checkSel('state="' + state + '"' + (if stateSel == '' then '' else ', ' + stateSel)) + '}';
    'max by (' + install + ', check, section, severity) (\n'
    + '  (\n'
    + '    ' + s('pass') + '\n'
    + '    or ' + s('pending') + ' * 2\n'
    + '    or ' + s('fail') + ' * 3\n'
    + '    or ' + s('error') + ' * 4\n'
    + '  )\n'
    + '  * on (' + replica + ', check) group_left (section)\n'
    + '  vouch_check_info{' + d.checkSel('section=~"$section"') + '}\n'
    + ')\n',

  local verdictMappings = [{
    type: 'value',
    options: {
      '1': { text: 'PASS', color: 'green', index: 0 },
      '2': { text: 'PENDING', color: 'blue', index: 1 },
      '3': { text: 'FAIL', color: 'red', index: 2 },
      '4': { text: 'ERROR', color: 'orange', index: 3 },
    },
  }],

  local stat(title, description, expr, x, color) = d.panel(
    'stat',
    title,
    description,
    'short',
    { x: x, y: 1, w: 4, h: 3 },
    [d.target(expr, instant=true)],
    defaults={ color: { mode: 'fixed', fixedColor: color } },
    options={ colorMode: 'background', graphMode: 'none', textMode: 'value', reduceOptions: { calcs: ['lastNotNull'] } },
  ),

  local count(code, stateSel='') = 'count(%s == %d) or vector(0)' % [std.stripChars(verdict(stateSel), '\n'), code],

  local table(title, description, unit, gridPos, targets, columns, overrides, sortBy) = d.panel(
    'table',
    title,
    description,
    unit,
    gridPos,
    targets,
    options={ showHeader: true, cellHeight: 'sm', sortBy: sortBy, footer: { show: false } },
    transformations=[
      { id: 'merge', options: {} },
      {
        id: 'organize',
        options: {
          // Columns in this order; the others hidden.
          indexByName: { [columns[i][0]]: i for i in std.range(0, std.length(columns) - 1) },
          renameByName: { [col[0]]: col[1] for col in columns },
          excludeByName: { Time: true, instance: true },
        },
      },
    ],
    overrides=overrides,
  ),

  dashboard: d.dashboard(
    c.dashboardUIDs.overview,
    'vouch / Overview',
    'Is this deploy healthy? Every check of the checklist by verdict (PASS, FAIL, ERROR, PENDING), a roll-up per section, and each check with its severity, last run and whether it has verified the latest rollout.',
    [
      d.row('Is this deploy healthy?', 0),
      stat('Passing', 'Checks whose reported verdict is pass (over replicas, the worst verdict counts).', count(1), 0, 'green'),
      stat('Failing', 'Checks whose target answered and broke an expectation.', count(3), 4, 'red'),
      stat('Erroring', 'Checks that could not be evaluated (timeout, refused, forbidden, not synced): no verdict, and no pass.', count(4), 8, 'orange'),
      stat('Pending', 'Checks configured but without a finished run yet (just started, or the first run hangs: VouchCheckNeverRan).', count(2), 12, 'blue'),
      stat('Critical not passing', 'Critical checks failing or erroring: each pages (VouchCheckFailing, severity critical).', 'count(%s >= 3) or vector(0)' % std.stripChars(verdict('severity="critical"'), '\n'), 16, 'dark-red'),
      stat(
        'Stale on a replica',
        'Checks whose last run on some replica ended more than 3 intervals plus the timeout ago (VouchCheckStale): that replica no longer verifies them.',
        'count(time() - vouch_check_last_run_timestamp_seconds{%(s)s} > 3 * vouch_check_interval_seconds{%(s)s} + vouch_check_timeout_seconds{%(s)s}) or vector(0)' % { s: d.checkSel() },
        20,
        'purple',
      ),

      d.row('Sections', 4),
      table(
        'Sections: passing of total',
        'One row per checklist section: checks passing, checks in all, critical checks failing or erroring (red when any), and the worst verdict in the section.',
        'short',
        { x: 0, y: 5, w: 24, h: 9 },
        [
          d.target('sum by (section) (%s == bool 1)' % std.stripChars(verdict(), '\n'), 'A', format='table', instant=true),
          d.target('count by (section) (%s)' % std.stripChars(verdict(), '\n'), 'B', format='table', instant=true),
          d.target('sum by (section) (%s >= bool 3) or sum by (section) (%s * 0)' % [std.stripChars(verdict('severity="critical"'), '\n'), std.stripChars(verdict(), '\n')], 'C', format='table', instant=true),
          d.target('max by (section) (%s)' % std.stripChars(verdict(), '\n'), 'D', format='table', instant=true),
        ],
        [['section', 'Section'], ['Value #A', 'Passing'], ['Value #B', 'Checks'], ['Value #C', 'Critical not passing'], ['Value #D', 'Worst verdict']],
        [
          {
            matcher: { id: 'byName', options: 'Value #C' },
            properties: [
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
              { id: 'thresholds', value: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'red', value: 1 }] } },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Value #D' },
            properties: [
              { id: 'mappings', value: verdictMappings },
              { id: 'custom.cellOptions', value: { type: 'color-text' } },
            ],
          },
        ],
        [{ displayName: 'Critical not passing', desc: true }],
      ),

      d.row('Checks', 14),
      table(
        'Every check',
        'One row per check and install, worst verdicts first: verdict, severity, how long ago its last run ended, and, for checks that follow a rollout (after_rollout_of), whether they passed since the latest one. The check name opens vouch\'s own page of the check (reason and message of each recent run).',
        's',
        { x: 0, y: 15, w: 24, h: 24 },
        [
          d.target(std.stripChars(verdict(), '\n'), 'A', format='table', instant=true),
          d.target('time() - max by (%s, check) (vouch_check_last_run_timestamp_seconds{%s})' % [install, d.checkSel()], 'B', format='table', instant=true),
          d.target(
            |||
              max by (%(install)s, check) (
                (vouch_check_last_run_timestamp_seconds{%(s)s} > bool vouch_check_last_rollout_timestamp_seconds{%(s)s})
                * on (%(replica)s, check) group_left ()
                vouch_check_state{%(s)s, state="pass"}
              )
            ||| % { install: install, replica: replica, s: d.checkSel() },
            'C',
            format='table',
            instant=true,
          ),
        ],
        // What a phone shows first: the check, its verdict, its install.
        [
          ['check', 'Check'],
          ['Value #A', 'Verdict'],
          ['namespace', 'Namespace'],
          ['severity', 'Severity'],
          ['Value #B', 'Last run'],
          ['Value #C', 'Verified since rollout'],
          ['section', 'Section'],
          ['job', 'Job'],
          [cl, 'Cluster'],
        ],
        [
          {
            matcher: { id: 'byName', options: 'Value #A' },
            properties: [
              { id: 'unit', value: 'none' },
              { id: 'mappings', value: verdictMappings },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Value #C' },
            properties: [
              { id: 'unit', value: 'none' },
              {
                id: 'mappings',
                value: [{ type: 'value', options: { '1': { text: 'yes', color: 'green', index: 0 }, '0': { text: 'not yet', color: 'orange', index: 1 } } }],
              },
              { id: 'custom.cellOptions', value: { type: 'color-text' } },
            ],
          },
          {
            matcher: { id: 'byName', options: 'check' },
            properties: [
              {
                id: 'links',
                value: [{ title: "vouch's page of ${__data.fields.check}", url: c.vouchURL + '/checks/${__data.fields.check}', targetBlank: true }],
              },
            ],
          },
        ],
        [{ displayName: 'Verdict', desc: true }],
      ),

      d.row('Runs and the scheduler', 39),
      d.panel(
        'table',
        'Failing runs by check and reason',
        'Runs that did not pass in the time range, by check, result (fail, error) and reason word (the README lists them).',
        'short',
        { x: 0, y: 40, w: 12, h: 10 },
        [d.target('sum by (%s, check, result, reason) (increase(vouch_check_runs_total{%s}[$__range])) > 0' % [install, d.checkSel('result!="pass"')], format='table', instant=true)],
        options={ showHeader: true, cellHeight: 'sm', sortBy: [{ displayName: 'Value', desc: true }] },
        transformations=[{ id: 'organize', options: { excludeByName: { Time: true } } }],
      ),
      d.panel(
        'timeseries',
        'Run rate by result',
        'Check runs per second by result (pass, fail, error), over every check shown.',
        'ops',
        { x: 12, y: 40, w: 12, h: 10 },
        [d.target('sum by (result) (rate(vouch_check_runs_total{%s}[$__rate_interval]))' % d.checkSel(), legend='{{result}}')],
      ),
      d.panel(
        'timeseries',
        'Scheduler lateness p99',
        "99th percentile of the time between a run's planned and actual start, per replica (VouchSchedulerLagging above 5s).",
        's',
        { x: 0, y: 50, w: 12, h: 8 },
        [d.target('histogram_quantile(0.99, sum by (instance, le) (rate(vouch_scheduler_lateness_seconds_bucket{%s}[$__rate_interval])))' % d.sel(), legend='{{instance}}')],
      ),
      d.panel(
        'table',
        'vouch version',
        'Version and source revision of each replica.',
        'none',
        { x: 12, y: 50, w: 12, h: 8 },
        [d.target('max by (%s, instance, version, revision) (vouch_build_info{%s})' % [install, d.sel()], format='table', instant=true)],
        transformations=[{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }],
      ),
    ],
    withSection=true,
  ),
}
