// PromQL building blocks shared by the rules: selectors, the install and
// replica label lists, gap-tolerant gauge reads and the guards every
// check-level alert applies. (Strings are joined with `+`: jsonnet's `%`
// formatting is slow on long templates, and these run for every rule.)
function(c) {
  local root = self,
  local install = std.join(', ', c.installLabels),
  local replica = install + ', instance',
  install: install,
  replica: replica,

  // `metric{<vouch selector>, extra}`.
  sel(metric, extra=''):: metric + '{' + c.vouchSelector + (if extra == '' then '' else ', ' + extra) + '}',

  // The last value within the gap tolerance: a failed scrape drops every
  // series of the target at once, and an instant read would reset `for:`.
  last(metric, extra=''):: 'last_over_time(' + root.sel(metric, extra) + '[' + c.scrapeGapTolerance + '])',

  // Replica-level: the check's last run ended within `staleIntervals`
  // intervals plus its timeout. A replica whose loop is stuck stops
  // counting, so its last verdict neither hides nor raises anything.
  local fresh =
    '(time() - ' + root.last('vouch_check_last_run_timestamp_seconds')
    + ' < ' + c.staleIntervals + ' * ' + root.last('vouch_check_interval_seconds')
    + ' + ' + root.last('vouch_check_timeout_seconds') + ')',
  fresh:: fresh,

  // Replica-level: the check's reported state is fail or error, on a
  // fresh replica; the value is 1 and the series carries `severity`.
  notPassing(severity)::
    '(' + root.last('vouch_check_state', 'state=~"fail|error", severity=~"' + severity + '"') + ' == 1)'
    + ' and on (' + replica + ', check) ' + fresh,

  // Install-level: the check is failing as VouchCheckFailing judges it,
  // i.e. no fresh replica reports it passing. One replica failing while
  // another passes is not a failing check, for any alert.
  checkFailing::
    'max by (' + install + ', check) (\n'
    + '  ' + root.last('vouch_check_success') + '\n'
    + '  and on (' + replica + ', check) ' + fresh + '\n'
    + ') == 0',

  // A kind-specific condition (per replica, labelled by `check` and its
  // own labels) kept only where its check is not passing on that fresh
  // replica, and only while the check fails on every fresh replica (the
  // rule of VouchCheckFailing, so a specific alert never pages where the
  // generic one would stay quiet). The result takes the check's severity
  // and is aggregated over the failing replicas by the install, the check
  // and `extra` labels; `pick` chooses across them (max or min).
  gated(condition, severity, extra=[], pick='max')::
    pick + ' by (' + install + ', check, severity' + std.join('', [', ' + l for l in extra]) + ') (\n'
    + '  (\n'
    + std.join('\n', ['    ' + line for line in std.split(std.stripChars(condition, '\n'), '\n')]) + '\n'
    + '  )\n'
    + '  * on (' + replica + ', check) group_left (severity)\n'
    + '  (\n'
    + '    ' + root.notPassing(severity) + '\n'
    + '  )\n'
    + ')\n'
    + 'and on (' + install + ', check)\n'
    + root.checkFailing + '\n',

  // `left > threshold` (or another comparison) against a limit from the
  // check's config, matched per replica and check (and `extra` labels).
  // Limits of one key exist per secret in secret_age checks: other alerts
  // take only the limits without a `secret`, or their match would find
  // several series per check and fail the whole rule.
  vsThreshold(left, op, threshold, extra=[], scale='')::
    left + '\n' + op + ' on (' + replica + ', check' + std.join('', [', ' + l for l in extra]) + ') group_left ()\n  '
    + scale + root.last('vouch_check_threshold', 'threshold="' + threshold + '"' + (if std.member(extra, 'secret') then '' else ', secret=""')),
}
