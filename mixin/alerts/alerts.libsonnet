// vouch's alerting rules. Check-level alerts keep the install labels
// (cluster, namespace, job) and `check`; kind-specific alerts fire only
// while their check is not passing, carry the check's severity and judge
// against the check's own configured limit (vouch_check_threshold).
{
  local c = $._config,
  local q = (import '../lib/promql.libsonnet')(c),
  local install = q.install,
  local replica = q.replica,
  // The cluster parameter only where the alert has the label.
  local clusterParam = '{{ with $labels.%s }}var-cluster={{ . }}&{{ end }}' % c.clusterLabel,

  local where = 'check {{ $labels.check }} in {{ $labels.namespace }}/{{ $labels.job }}',

  // '5m' -> '5 minutes', for descriptions that name a configured duration.
  local human(d) =
    local n = std.parseInt(std.substr(d, 0, std.length(d) - 1));
    local unit = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[std.substr(d, std.length(d) - 1, 1)];
    '%d %s%s' % [n, unit, if n == 1 then '' else 's'],

  local annotations(name, summary, description, dashboard='overview') = {
    summary: summary,
    description: description,
    runbook_url: c.runbookURLPattern % std.asciiLower(name),
    dashboard_url: '%s/d/%s?%svar-namespace={{ $labels.namespace }}&var-job={{ $labels.job }}&var-check={{ $labels.check }}' % [
      c.grafanaURL,
      c.dashboardUIDs[dashboard],
      clusterParam,
    ],
  },

  // One alert name, one rule per check severity (promtool's lint wants
  // rules of one name told apart by their labels): each selects the
  // checks of its severity and carries it, and waits as long as the
  // generic alert of that severity.
  local checkAlert(name, condition, summary, description, extra=[], dashboard='overview', pick='max') = [
    {
      alert: name,
      expr: q.gated(condition, severity, extra, pick),
      'for': c.checkFor[severity],
      [if c.specificKeepFiringFor != '' then 'keep_firing_for']: c.specificKeepFiringFor,
      labels: { severity: severity },
      annotations: annotations(name, summary, description, dashboard),
    }
    for severity in ['critical', 'warning', 'info']
  ],

  // Expiry: once the check fails on its own min_valid_for (or the
  // thing has expired), at the check's severity, like every kind alert,
  // so it mutes the generic VouchCheckFailing of the check and pages once.
  // Checks of a severity in expiryEscalateSeverities (warning by default)
  // also fire at critical within expiryCriticalDays: the warning has been
  // open for (min_valid_for - expiryCriticalDays) by then, and an expiry
  // days away is an outage that cannot wait for office hours. Info checks
  // never page (their owner said so), critical ones page from
  // min_valid_for on. Same name, so the critical tier mutes the warning.
  local expiryAlert(name, remaining, summary, description, extra=[], dashboard='overview') =
    local expired = q.vsThreshold(remaining, '<', 'min_valid_for', extra) + '\nor\n' + remaining + ' < 0';
    local escalate = [s for s in c.expiryEscalateSeverities if s != 'critical'];
    [
      {
        alert: name,
        expr: q.gated(expired, severity, extra, 'min')
              + (if severity == 'critical' && std.length(escalate) > 0 then
                   'or\n' + q.gated('%s < %d' % [remaining, c.expiryCriticalDays * 86400], std.join('|', escalate), extra, 'min')
                 else ''),
        'for': c.checkFor[severity],
        [if c.specificKeepFiringFor != '' then 'keep_firing_for']: c.specificKeepFiringFor,
        labels: { severity: severity },
        annotations: annotations(name, summary, description, dashboard),
      }
      for severity in ['critical', 'warning', 'info']
    ],

  local selfAnnotations(name, summary, description) = {
    summary: summary,
    description: description,
    runbook_url: c.runbookURLPattern % std.asciiLower(name),
  },

  local groups = {
    checks: {
      name: 'vouch.checks',
      rules: [
        {
          alert: 'VouchCheckFailing',
          expr: |||
            max by (%(install)s, check, section, severity) (
              (
                %(success)s
                and on (%(replica)s, check) %(fresh)s
              )
              * on (%(replica)s, check) group_left (section) %(info)s
            ) == 0
          ||| % {
            install: install,
            replica: replica,
            success: q.last('vouch_check_success', 'severity="%s"' % severity),
            fresh: q.fresh,
            info: q.last('vouch_check_info'),
          },
          'for': c.checkFor[severity],
          labels: { severity: severity },
          annotations: annotations(
            'VouchCheckFailing',
            'Check {{ $labels.check }} ({{ $labels.severity }}) is failing in {{ $labels.namespace }}',
            'The %s check {{ $labels.check }} (section {{ $labels.section }}, %s) has not passed on any vouch replica whose loop is running. The last run\'s reason is on vouch\'s /checks/{{ $labels.check }} page.' % ['{{ $labels.severity }}', '{{ $labels.namespace }}/{{ $labels.job }}'],
          ),
        }
        for severity in ['critical', 'warning']
      ] + [
        {
          alert: 'VouchCheckStale',
          expr: |||
            max by (%(replica)s, check) (
              time() - %(last)s
              > %(n)d * %(interval)s + %(timeout)s
            )
          ||| % {
            replica: replica,
            last: q.last('vouch_check_last_run_timestamp_seconds'),
            n: c.staleIntervals,
            interval: q.last('vouch_check_interval_seconds'),
            timeout: q.last('vouch_check_timeout_seconds'),
          },
          'for': c.alertFor.checkStale,
          labels: { severity: c.severities.checkStale },
          annotations: annotations(
            'VouchCheckStale',
            'Check {{ $labels.check }} has stopped running on {{ $labels.instance }}',
            'The last run of {{ $labels.check }} on replica {{ $labels.instance }} (%s) ended {{ $value | humanizeDuration }} ago, more than %d of its intervals plus its timeout: that replica\'s loop is stuck or overloaded, and its verdict no longer counts.' % ['{{ $labels.namespace }}/{{ $labels.job }}', c.staleIntervals],
          ),
        },
        {
          alert: 'VouchCheckNeverRan',
          expr: |||
            max by (%(replica)s, check) (
              (%(pending)s == 1)
              and on (%(replica)s, check)
              (
                %(n)d * %(interval)s + %(timeout)s
                < on (%(replica)s) group_left ()
                (time() - %(loaded)s)
              )
            )
          ||| % {
            replica: replica,
            pending: q.last('vouch_check_state', 'state="pending"'),
            n: c.staleIntervals,
            interval: q.last('vouch_check_interval_seconds'),
            timeout: q.last('vouch_check_timeout_seconds'),
            loaded: q.last('vouch_config_last_reload_success_timestamp_seconds'),
          },
          'for': c.alertFor.checkNeverRan,
          labels: { severity: c.severities.checkNeverRan },
          annotations: annotations(
            'VouchCheckNeverRan',
            'Check {{ $labels.check }} has never finished a run on {{ $labels.instance }}',
            'The check {{ $labels.check }} is configured on replica {{ $labels.instance }} (%s) but no run of it has ended since the config was loaded, %d intervals plus its timeout ago: its first run hangs or never started, and it has no verdict.' % ['{{ $labels.namespace }}/{{ $labels.job }}', c.staleIntervals],
          ),
        },
        {
          alert: 'VouchProbeErrorRateHigh',
          expr: |||
            sum by (%(install)s) (
              rate(%(errors)s[%(window)s])
              * on (%(replica)s, check) group_left () %(info)s
            )
            /
            sum by (%(install)s) (
              rate(%(runs)s[%(window)s])
              * on (%(replica)s, check) group_left () %(info)s
            )
            > %(ratio)g
          ||| % {
            install: install,
            replica: replica,
            errors: q.sel('vouch_check_runs_total', 'result="error"'),
            runs: q.sel('vouch_check_runs_total'),
            window: c.probeErrorWindow,
            info: q.last('vouch_check_info', 'severity!="info"'),
            ratio: c.probeErrorRatio,
          },
          'for': c.alertFor.probeErrors,
          labels: { severity: c.severities.probeErrors },
          annotations: selfAnnotations(
            'VouchProbeErrorRateHigh',
            'vouch in {{ $labels.namespace }} cannot evaluate many checks',
            '{{ $value | humanizePercentage }} of the runs of warning and critical checks in %s ended in error (the check could not be evaluated: timeouts, refused connections, missing permissions) over %s, above %g%%.' % ['{{ $labels.namespace }}/{{ $labels.job }}', c.probeErrorWindow, c.probeErrorRatio * 100],
          ),
        },
        {
          alert: 'VouchCheckSlow',
          expr: |||
            (
              sum by (%(install)s, check) (increase(%(sum)s[%(window)s]))
              / sum by (%(install)s, check) (increase(%(count)s[%(window)s]))
            )
            > on (%(install)s, check) group_left ()
            %(ratio)g * max by (%(install)s, check) (%(timeout)s)
          ||| % {
            install: install,
            sum: q.sel('vouch_check_duration_seconds_sum'),
            count: q.sel('vouch_check_duration_seconds_count'),
            window: c.slowWindow,
            ratio: c.slowTimeoutRatio,
            timeout: q.last('vouch_check_timeout_seconds'),
          },
          'for': c.alertFor.checkSlow,
          labels: { severity: c.severities.checkSlow },
          annotations: annotations(
            'VouchCheckSlow',
            'Check {{ $labels.check }} runs close to its timeout',
            'Runs of {{ $labels.check }} (%s) took {{ $value | humanizeDuration }} on average over %s, more than %g of its own timeout: a little more latency and it fails with reason timeout.' % ['{{ $labels.namespace }}/{{ $labels.job }}', c.slowWindow, c.slowTimeoutRatio],
          ),
        },
      ],
    },

    'self': {
      name: 'vouch.self',
      rules: [
        {
          alert: 'VouchInstanceDown',
          expr: 'max by (%s) (%s) == 0' % [replica, q.sel('up')],
          'for': c.alertFor.instanceDown,
          labels: { severity: c.severities.instanceDown },
          annotations: selfAnnotations(
            'VouchInstanceDown',
            'vouch replica {{ $labels.instance }} cannot be scraped',
            'Prometheus has not scraped vouch at {{ $labels.instance }} (%s) for %s. Other replicas, if any, still verify; VouchNoInstanceUp fires when none is left.' % ['{{ $labels.namespace }}/{{ $labels.job }}', human(c.alertFor.instanceDown)],
          ),
        },
        {
          alert: 'VouchNoInstanceUp',
          expr: 'max by (%s) (%s) == 0' % [install, q.sel('up')],
          'for': c.alertFor.noInstanceUp,
          labels: { severity: c.severities.noInstanceUp },
          annotations: selfAnnotations(
            'VouchNoInstanceUp',
            'No vouch replica in {{ $labels.namespace }} can be scraped',
            'Every vouch target of %s has been down for %s: nothing verifies this deployment.' % ['{{ $labels.namespace }}/{{ $labels.job }}', human(c.alertFor.noInstanceUp)],
          ),
        },
        {
          alert: 'VouchAbsent',
          // Per install: one that reported within absentLookback and
          // reports nothing now (its Deployment or ServiceMonitor went away,
          // so even its `up` series are gone). Else, when no install has
          // reported within the lookback, absent() of the whole selector.
          // An install whose targets are still listed but down has
          // `up == 0` series: VouchInstanceDown / VouchNoInstanceUp speak
          // for it. (A target that is up but exports no vouch series is
          // not vouch: that still raises VouchAbsent.)
          expr: |||
            (
              group by (%(install)s) (max_over_time(%(info)s[%(lookback)s]))
              unless
              group by (%(install)s) (%(info)s)
              unless on (%(install)s)
              group by (%(install)s) (%(up)s == 0)
            )
            or
            (
              absent(%(info)s)
              unless on ()
              group by (%(install)s) (max_over_time(%(info)s[%(lookback)s]))
              unless on ()
              group by (%(install)s) (%(up)s == 0)
            )
          ||| % { install: install, info: q.sel('vouch_build_info'), up: q.sel('up'), lookback: c.absentLookback },
          'for': c.alertFor.absent,
          labels: { severity: c.severities.absent },
          annotations: selfAnnotations(
            'VouchAbsent',
            'No vouch is reporting{{ with $labels.namespace }} in {{ . }}{{ end }}',
            'No series of vouch (%s{{ with $labels.namespace }}, namespace {{ . }}{{ end }}) has been seen for %s: vouch is not deployed, not scraped, or its targets vanished.' % [std.strReplace(c.vouchSelector, '"', "'"), human(c.alertFor.absent)],
          ),
        },
        {
          alert: 'VouchConfigReloadFailed',
          expr: 'max by (%s) (%s) == 0' % [replica, q.last('vouch_config_last_reload_successful')],
          'for': c.alertFor.configReloadFailed,
          labels: { severity: c.severities.configReloadFailed },
          annotations: selfAnnotations(
            'VouchConfigReloadFailed',
            'vouch {{ $labels.instance }} rejected its new config',
            'The last config reload on {{ $labels.instance }} (%s) failed; vouch keeps running the previous config. Its log names the file, line and key.' % '{{ $labels.namespace }}/{{ $labels.job }}',
          ),
        },
        {
          alert: 'VouchSchedulerLagging',
          expr: |||
            histogram_quantile(%g,
              sum by (%s, le) (rate(%s[%s]))
            ) > %g
          ||| % [c.schedulerLagQuantile, replica, q.sel('vouch_scheduler_lateness_seconds_bucket'), c.schedulerLagWindow, c.schedulerLagSeconds],
          'for': c.alertFor.schedulerLagging,
          labels: { severity: c.severities.schedulerLagging },
          annotations: selfAnnotations(
            'VouchSchedulerLagging',
            'vouch {{ $labels.instance }} starts runs late',
            '%g%% of runs on {{ $labels.instance }} started up to {{ $value | humanizeDuration }} after their planned time over %s: raise max_concurrent_runs or give vouch more CPU.' % [c.schedulerLagQuantile * 100, human(c.schedulerLagWindow)],
          ),
        },
        {
          alert: 'VouchRunsSkipped',
          expr: 'max by (%s, check) (increase(%s[%s])) > 0' % [install, q.sel('vouch_scheduler_skipped_runs_total'), c.skippedRunsWindow],
          'for': c.alertFor.runsSkipped,
          labels: { severity: c.severities.runsSkipped },
          annotations: annotations(
            'VouchRunsSkipped',
            'Runs of {{ $labels.check }} are being skipped',
            '{{ $value | humanize }} planned runs of {{ $labels.check }} were skipped in %s because the previous run had not finished: its timeout is close to its interval or the concurrency limit is reached.' % human(c.skippedRunsWindow),
          ),
        },
        {
          alert: 'VouchKubeWatchFailing',
          expr: 'min by (%s, resource, watch_namespace) (%s) == 0' % [replica, q.last('vouch_kube_watch_synced')],
          'for': c.alertFor.kubeWatchFailing,
          labels: { severity: c.severities.kubeWatchFailing },
          annotations: selfAnnotations(
            'VouchKubeWatchFailing',
            'vouch {{ $labels.instance }} cannot watch {{ $labels.resource }} in {{ $labels.watch_namespace }}',
            'The watch of {{ $labels.resource }} (namespace {{ $labels.watch_namespace }}, empty: cluster-wide) on {{ $labels.instance }} has held no current list for %s: the checks that read it report error instead of verdicts. See vouch\'s log and /readyz.' % human(c.alertFor.kubeWatchFailing),
          ),
        },
      ],
    },

    certificatesAndDns: {
      name: 'vouch.certificates-and-dns',
      rules: expiryAlert(
        'VouchCertificateExpiring',
        'min by (%s, check) (%s) - time()' % [replica, q.last('vouch_tls_chain_earliest_not_after_timestamp_seconds')],
        'A certificate checked by {{ $labels.check }} expires in {{ $value | humanizeDuration }}',
        'The earliest-expiring certificate in the chain seen by %s expires in {{ $value | humanizeDuration }} (negative: expired), inside the check\'s min_valid_for. cert-manager renews at two thirds of the lifetime: this certificate was not renewed.' % where,
        dashboard='endpoints',
      ) + checkAlert(
        'VouchDnsServersDisagree',
        '%s == 0' % q.last('vouch_dns_server_agreement_success'),
        'Name server {{ $labels.server }} disagrees for {{ $labels.check }}',
        'In the propagation %s, {{ $labels.server }} answers differently from the expected (or majority) answer: the record has not propagated, or the zone differs between servers.' % where,
        extra=['server'],
        dashboard='endpoints',
      ),
    },

    dataStores: {
      name: 'vouch.data-stores',
      rules: checkAlert(
        'VouchDatabaseUnreachable',
        '%s == 0' % q.last('vouch_postgres_up'),
        'PostgreSQL checked by {{ $labels.check }} is unreachable',
        'No vouch replica could connect to the PostgreSQL server of %s (the run\'s reason says refused, timeout, auth or TLS).' % where,
        dashboard='dataStores',
        pick='min',
      ) + checkAlert(
        'VouchPostgresConnectionsHigh',
        q.vsThreshold(q.last('vouch_postgres_connections_used_ratio'), '>', 'max_connections_used'),
        'PostgreSQL of {{ $labels.check }} uses {{ $value | humanizePercentage }} of max_connections',
        'Client connections are at {{ $value | humanizePercentage }} of max_connections for %s, above the check\'s max_connections_used.' % where,
        dashboard='dataStores',
        pick='min',
      ) + checkAlert(
        'VouchPostgresLongQuery',
        q.vsThreshold(q.last('vouch_postgres_longest_query_seconds'), '>', 'max_query_age'),
        'A query has been running {{ $value | humanizeDuration }} on the database of {{ $labels.check }}',
        'The longest active query seen by %s has been running {{ $value | humanizeDuration }}, longer than the check\'s max_query_age.' % where,
        dashboard='dataStores',
        pick='min',
      ) + checkAlert(
        'VouchRedisUnreachable',
        '%s == 0' % q.last('vouch_redis_up'),
        'Redis checked by {{ $labels.check }} is unreachable',
        'No vouch replica could reach the Redis server of %s (connect, PING and INFO).' % where,
        dashboard='dataStores',
        pick='min',
      ) + checkAlert(
        'VouchRedisMemoryHigh',
        q.vsThreshold(q.last('vouch_redis_memory_used_ratio'), '>', 'max_memory_used'),
        'Redis of {{ $labels.check }} uses {{ $value | humanizePercentage }} of maxmemory',
        'Redis memory is at {{ $value | humanizePercentage }} of maxmemory for %s, above the check\'s max_memory_used; evictions or OOM errors follow.' % where,
        dashboard='dataStores',
        pick='min',
      ) + checkAlert(
        'VouchRedisHitRatioLow',
        q.vsThreshold(q.last('vouch_redis_hit_ratio'), '<', 'min_hit_ratio'),
        'Redis hit ratio of {{ $labels.check }} is {{ $value | humanizePercentage }}',
        'Only {{ $value | humanizePercentage }} of lookups hit in the last window of %s, below the check\'s min_hit_ratio.' % where,
        dashboard='dataStores',
      ) + checkAlert(
        'VouchRedisEvicting',
        q.vsThreshold(q.last('vouch_redis_evicted_keys'), '>', 'max_evictions'),
        'Redis of {{ $labels.check }} is evicting keys',
        'The last window of %s saw {{ $value | humanize }} evictions, more than the check\'s max_evictions: the cache is too small for its working set.' % where,
        dashboard='dataStores',
        pick='min',
      ) + checkAlert(
        'VouchRedisPersistenceFailing',
        '%s == 0\nor\n%s == 0' % [q.last('vouch_redis_last_bgsave_success'), q.last('vouch_redis_aof_last_write_success')],
        'Redis of {{ $labels.check }} fails to persist',
        'The last RDB snapshot or AOF write of the Redis server of %s failed: a restart would lose data.' % where,
        dashboard='dataStores',
        pick='min',
      ),
    },

    backupsSecretsImages: {
      name: 'vouch.backups-secrets-images',
      rules: checkAlert(
        'VouchBackupMissing',
        '%s == 0' % q.last('vouch_backup_objects'),
        'No backup found by {{ $labels.check }}',
        'No object under the prefix of %s matches its pattern: there is no backup to restore from.' % where,
        dashboard='secretsBackups',
      ) + checkAlert(
        'VouchBackupTooOld',
        q.vsThreshold('time() - %s' % q.last('vouch_backup_last_modified_timestamp_seconds'), '>', 'max_age'),
        'The newest backup of {{ $labels.check }} is {{ $value | humanizeDuration }} old',
        'The newest backup found by %s was written {{ $value | humanizeDuration }} ago, longer than the check\'s max_age: the backup job has not run or not uploaded.' % where,
        dashboard='secretsBackups',
        pick='min',
      ) + checkAlert(
        'VouchBackupTooSmall',
        q.vsThreshold(q.last('vouch_backup_size_bytes'), '<', 'min_size'),
        'The newest backup of {{ $labels.check }} is {{ $value | humanize1024 }}B',
        'The newest backup found by %s is {{ $value | humanize1024 }}B, under the check\'s min_size: the dump is empty or was cut short.' % where,
        dashboard='secretsBackups',
      ) + checkAlert(
        'VouchBackupShrunk',
        q.vsThreshold('%s / %s' % [q.last('vouch_backup_size_bytes'), q.last('vouch_backup_previous_size_bytes')], '<', 'max_shrink', scale='1 - '),
        'The newest backup of {{ $labels.check }} shrank to {{ $value | humanizePercentage }} of the one before',
        'The newest backup found by %s is {{ $value | humanizePercentage }} of the size of the one before it, more shrinkage than the check\'s max_shrink allows: data was lost, or the dump failed part way.' % where,
        dashboard='secretsBackups',
      ) + checkAlert(
        'VouchSecretMissing',
        '%s == 0' % q.last('vouch_secret_present'),
        'Secret {{ $labels.secret }} is missing (check {{ $labels.check }})',
        'The secret {{ $labels.secret }} is not in the source read by %s: workloads that mount or read it cannot start or authenticate.' % where,
        extra=['secret'],
        dashboard='secretsBackups',
      ) + checkAlert(
        'VouchSecretDisabled',
        '%s == 0' % q.last('vouch_secret_enabled'),
        'Secret {{ $labels.secret }} is disabled (check {{ $labels.check }})',
        'The secret {{ $labels.secret }} exists in the vault read by %s but is disabled, so reading it fails.' % where,
        extra=['secret'],
        dashboard='secretsBackups',
      ) + checkAlert(
        'VouchSecretRotationOverdue',
        q.vsThreshold(q.last('vouch_secret_age_seconds'), '>', 'max_age', extra=['secret']),
        'Secret {{ $labels.secret }} was last rotated {{ $value | humanizeDuration }} ago',
        'The secret {{ $labels.secret }} (%s) was last rotated {{ $value | humanizeDuration }} ago, longer than its max_age.' % where,
        extra=['secret'],
        dashboard='secretsBackups',
        pick='min',
      ) + expiryAlert(
        'VouchSecretExpiring',
        '%s - time()' % q.last('vouch_secret_expiry_timestamp_seconds'),
        'Secret {{ $labels.secret }} expires in {{ $value | humanizeDuration }}',
        'The secret {{ $labels.secret }} (%s) expires in {{ $value | humanizeDuration }} (negative: expired), inside its min_valid_for. Rotate it and set a new expiry date.' % where,
        extra=['secret'],
        dashboard='secretsBackups',
      ) + checkAlert(
        'VouchRegistryTagMissing',
        '%s == 0' % q.last('vouch_registry_tag_present'),
        'The image tag checked by {{ $labels.check }} is not in the registry',
        'The registry has no manifest for the tag %s expects: pods that pull it fail with ImagePullBackOff.' % where,
        dashboard='secretsBackups',
        pick='min',
      ) + checkAlert(
        'VouchRegistryRollbackTagsLow',
        q.vsThreshold(q.last('vouch_registry_matching_tags'), '<', 'min_rollback_tags'),
        'Only {{ $value }} rollback versions for {{ $labels.check }}',
        'Only {{ $value }} tags of the repository read by %s are left to roll back to, fewer than its min_rollback_tags.' % where,
        dashboard='secretsBackups',
      ),
    },

    kubernetes: {
      name: 'vouch.kubernetes',
      rules: checkAlert(
        'VouchWorkloadReplicasLow',
        '%s\n/ ignoring (state)\n%s < 1' % [q.last('vouch_kube_replicas', 'state="ready"'), q.last('vouch_kube_replicas', 'state="desired"')],
        '{{ $labels.check }}: {{ $value | humanizePercentage }} of the desired replicas are ready',
        'The workload read by %s has {{ $value | humanizePercentage }} of its desired replicas ready, and the check fails.' % where,
        dashboard='workloads',
        pick='min',
      ) + checkAlert(
        'VouchPodsCrashLooping',
        '%s > 0' % q.last('vouch_kube_pods', 'state="crash_loop"'),
        '{{ $labels.check }}: containers are crash-looping',
        '{{ $value }} containers of the pods selected by %s are in CrashLoopBackOff or terminated with an error.' % where,
        dashboard='workloads',
      ) + checkAlert(
        'VouchPodsImagePullFailing',
        '%s > 0' % q.last('vouch_kube_pods', 'state="image_pull"'),
        '{{ $labels.check }}: an image cannot be pulled',
        '{{ $value }} containers of the pods selected by %s wait in ImagePullBackOff or ErrImagePull: the image or tag is missing, or the pull secret is wrong.' % where,
        dashboard='workloads',
      ) + checkAlert(
        'VouchExternalSecretStale',
        q.vsThreshold(q.last('vouch_kube_secret_sync_age_seconds'), '>', 'max_sync_age'),
        '{{ $labels.check }}: the ExternalSecret last synced {{ $value | humanizeDuration }} ago',
        'The ExternalSecret read by %s last synced {{ $value | humanizeDuration }} ago, longer than the check\'s max_sync_age: rotated secrets do not reach the cluster.' % where,
        dashboard='workloads',
        pick='min',
      ) + checkAlert(
        'VouchVolumeSnapshotStale',
        q.vsThreshold(q.last('vouch_kube_snapshot_age_seconds'), '>', 'max_age'),
        '{{ $labels.check }}: the newest snapshot of {{ $labels.pvc }} is {{ $value | humanizeDuration }} old',
        'The newest ready VolumeSnapshot of PVC {{ $labels.pvc }} (%s) is {{ $value | humanizeDuration }} old, older than the check\'s max_age.' % where,
        extra=['pvc'],
        dashboard='workloads',
        pick='min',
      ) + expiryAlert(
        'VouchKubeCertificateExpiring',
        '%s - time()' % q.last('vouch_kube_certificate_not_after_timestamp_seconds'),
        '{{ $labels.check }}: the cert-manager Certificate expires in {{ $value | humanizeDuration }}',
        'The Certificate read by %s expires in {{ $value | humanizeDuration }}, inside the check\'s min_valid_for: cert-manager\'s renewal is failing (see the Certificate\'s events and its Issuer).' % where,
        dashboard='workloads',
      ),
    },
  },

  // The shipped areas, for the inhibit rules (inhibit.libsonnet).
  prometheusAlerts_areas:: { [g]: groups[g] for g in std.objectFields(groups) if c.groups[g] },

  prometheusAlerts+:: {
    groups+: [
      {
        // One rule group for every alert about a check's verdict, the
        // generic alerts (VouchCheckFailing) last. Prometheus evaluates a
        // group's rules in order and hands each alerting rule's alerts to
        // Alertmanager as soon as that rule is evaluated, so the specific
        // alert of a check reaches Alertmanager before the generic one of
        // the same evaluation and inhibits it whatever the group_wait
        // (seen: with the generic alerts first, a loaded Prometheus took
        // longer than a 1 s group_wait between the two, and both paged).
        name: 'vouch.checks',
        rules: std.flattenArrays([
          groups[g].rules
          for g in ['certificatesAndDns', 'dataStores', 'backupsSecretsImages', 'kubernetes', 'checks']
          if c.groups[g]
        ]),
      },
    ] + (if c.groups['self'] then [groups['self']] else []),
  },
}
