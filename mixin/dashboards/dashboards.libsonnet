// grafanaDashboards: file name -> dashboard.
{
  grafanaDashboards+:: {
    'vouch-overview.json': import 'src/vouch-overview.json',
    'vouch-endpoints.json': import 'src/vouch-endpoints.json',
    'vouch-data-stores.json': import 'src/vouch-data-stores.json',
    'vouch-secrets-backups.json': import 'src/vouch-secrets-backups.json',
    'vouch-workloads.json': import 'src/vouch-workloads.json',
  },
}
