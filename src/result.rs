//! What a run produces: one verdict, one reason from a closed set, a human
//! message, and the kind's measurements. Nothing here knows how results are
//! exported.

use std::fmt;

use serde::Serialize;

/// The single outcome of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The target answered and met every expectation.
    Pass,
    /// The target answered and broke an expectation.
    Fail,
    /// The check could not be evaluated.
    Error,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Pass, Verdict::Fail, Verdict::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! reasons {
    ($($variant:ident => $word:literal: $doc:literal,)*) => {
        /// Why a run ended as it did, as a short word from a closed set: safe
        /// as a metric label and stable for JSON consumers.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(#[doc = $doc] $variant,)*
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $word,)* }
            }

            pub fn description(self) -> &'static str {
                match self { $(Reason::$variant => $doc,)* }
            }
        }
    };
}

reasons! {
    Ok => "ok": "every expectation met",
    Timeout => "timeout": "no result within the check's timeout",
    ConnectionRefused => "connection_refused": "the target refused the connection",
    Connect => "connect": "the connection failed otherwise (unreachable, reset)",
    Dns => "dns": "the target's name did not resolve",
    Tls => "tls": "the TLS handshake failed",
    TlsExpired => "tls_expired": "the certificate has expired",
    TlsNotYetValid => "tls_not_yet_valid": "the certificate is not valid yet",
    TlsUnknownIssuer => "tls_unknown_issuer": "the certificate chain does not lead to a trusted root (self-signed, private CA)",
    TlsHostname => "tls_hostname": "the certificate is not valid for the host name",
    TlsExpiring => "tls_expiring": "a certificate of the chain expires sooner than `min_valid_for` allows",
    TlsIssuer => "tls_issuer": "the certificate's issuer does not match the expected pattern",
    TlsSan => "tls_san": "the certificate does not name every expected subject alternative name",
    TlsVersion => "tls_version": "the negotiated TLS version is below the minimum",
    TlsStale => "tls_stale": "the server presents another certificate than the one its cert-manager Certificate reports (an older one: a renewal not picked up yet)",
    File => "file": "a file the check reads is missing, unreadable or malformed",
    DnsRcode => "dns_rcode": "the DNS response code was not the expected one (e.g. NXDOMAIN)",
    DnsAnswers => "dns_answers": "the DNS answers were not the expected ones, or too few",
    DnsDisagreement => "dns_disagreement": "the listed name servers gave different answers (propagation incomplete)",
    Protocol => "protocol": "the target's answer broke the protocol (closed mid-response, malformed)",
    Status => "status": "the HTTP status code was not an expected one",
    Body => "body": "the body did not match (or matched a forbidden) pattern",
    Json => "json": "a JSON field was missing or had another value, or the body was not JSON",
    Header => "header": "a header was missing, present when forbidden, or did not match",
    Redirect => "redirect": "the redirect target was not the expected one",
    RedirectLoop => "redirect_loop": "redirects came back to a URL already visited",
    TooManyRedirects => "too_many_redirects": "more redirects than the check allows",
    Latency => "latency": "the answer took longer than allowed",
    TooLarge => "too_large": "an answer (a body, an INFO, a listing) was larger than the check reads",
    Secret => "secret": "a secret the check needs could not be read",
    Auth => "auth": "the target refused the check's credentials",
    Query => "query": "a query of the check failed or returned no usable value",
    Connections => "connections": "more connections in use than allowed",
    QueryAge => "query_age": "a query has been running longer than allowed",
    TransactionAge => "transaction_age": "a transaction has been open longer than allowed",
    DatabaseSize => "database_size": "the database is larger than allowed",
    Migration => "migration": "the latest applied migration is not the expected one",
    Assertion => "assertion": "a custom SQL assertion did not hold",
    Memory => "memory": "more memory in use than allowed",
    HitRatio => "hit_ratio": "the cache hit ratio over the last window was below the minimum",
    Evictions => "evictions": "more keys were evicted in the last window than allowed",
    Persistence => "persistence": "the last save is too old or failed, or AOF is off or failing",
    Role => "role": "the replication role or link is not the expected one",
    Loading => "loading": "the server is still loading its data set",
    BackupMissing => "backup_missing": "no backup object matched (empty or missing prefix, container or bucket)",
    BackupAge => "backup_age": "the newest backup is older than allowed",
    BackupSize => "backup_size": "the newest backup is smaller than allowed",
    BackupCount => "backup_count": "fewer backups than required",
    BackupShrunk => "backup_shrunk": "the newest backup shrank more than allowed against the one before it",
    TagMissing => "tag_missing": "the image tag (or its whole repository) is not in the registry",
    RollbackTags => "rollback_tags": "fewer tags matching the pattern are kept than a rollback needs",
    Forbidden => "forbidden": "the target accepted the credentials but denied access to what the check reads (Kubernetes: RBAC does not allow list and watch; the message names what to grant)",
    SecretMissing => "secret_missing": "a required secret is not in the vault",
    SecretDisabled => "secret_disabled": "a required secret is disabled (counted as missing)",
    SecretNotYetValid => "secret_not_yet_valid": "a required secret's not-before time (nbf) is still ahead: not usable yet (counted as missing)",
    SecretAge => "secret_age": "a secret was last rotated longer ago than its max_age",
    SecretExpiring => "secret_expiring": "a secret has expired or expires sooner than min_valid_for allows",
    NotSynced => "not_synced": "the Kubernetes watch the check reads has not delivered its first full list yet",
    NotInstalled => "not_installed": "the Kubernetes API server does not serve the resource type (its CRD is missing)",
    NotFound => "not_found": "the Kubernetes object (or any object matching the selector, or the value a cross-check reads from it) does not exist",
    NotReady => "not_ready": "the object reports itself not ready (Ready condition, pods not Ready, namespace terminating)",
    Rollout => "rollout": "the workload's rollout is not complete (as `kubectl rollout status` decides) or exceeded its progress deadline",
    Replicas => "replicas": "fewer ready replicas than required, or an autoscaler below its minimum",
    ScalingLimit => "scaling_limit": "the autoscaler is pinned at its maximum replicas",
    CrashLoop => "crash_loop": "a container is in CrashLoopBackOff or terminated with an error",
    ImagePull => "image_pull": "a container's image cannot be pulled (ImagePullBackOff, ErrImagePull)",
    ContainerConfig => "container_config": "a container cannot be created from its config (CreateContainerConfigError)",
    Restarts => "restarts": "containers restarted more often within the window than allowed",
    Endpoints => "endpoints": "the Service has fewer ready endpoints than required",
    IngressAddress => "ingress_address": "the Ingress has no load-balancer address",
    Keys => "keys": "the ConfigMap or Secret lacks a required key",
    Values => "values": "a ConfigMap value differs from the expected one",
    WarningEvents => "warning_events": "more Warning events in the window than allowed",
    Revisions => "revisions": "fewer retained revisions than required for a rollback",
    Stale => "stale": "the newest sync or snapshot is older than allowed",
    Panic => "panic": "the probe crashed; a bug in vouch",
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

macro_rules! measures {
    ($($variant:ident => $name:literal [$($label:literal),*]: $help:literal,)*) => {
        /// Every measurement a kind may report, declared in one place: its
        /// exported name, help text and label names (besides `check`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Measure {
            $(#[doc = $help] $variant,)*
        }

        impl Measure {
            pub const ALL: &'static [Measure] = &[$(Measure::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(Measure::$variant => $name,)* }
            }

            pub fn help(self) -> &'static str {
                match self { $(Measure::$variant => $help,)* }
            }

            pub fn label_names(self) -> &'static [&'static str] {
                match self { $(Measure::$variant => &[$($label),*],)* }
            }
        }
    };
}

measures! {
    HttpStatusCode => "vouch_http_status_code" []: "HTTP status code of the last response (after redirects).",
    HttpDurationSeconds => "vouch_http_duration_seconds" ["phase"]: "Time spent in each phase of the last HTTP request, summed over redirects: resolve, connect, tls, processing (request sent to headers received), transfer (body).",
    HttpContentLengthBytes => "vouch_http_content_length_bytes" []: "Bytes of the last response body received.",
    HttpRedirects => "vouch_http_redirects" []: "Redirects followed by the last HTTP request.",
    TlsCertNotAfter => "vouch_tls_cert_not_after_timestamp_seconds" []: "End of the validity of the leaf certificate last seen (Unix time), measured even when verification fails.",
    TlsCertNotBefore => "vouch_tls_cert_not_before_timestamp_seconds" []: "Start of the validity of the leaf certificate last seen (Unix time).",
    TlsChainEarliestNotAfter => "vouch_tls_chain_earliest_not_after_timestamp_seconds" ["position", "index"]: "Earliest end of validity of any certificate in the chain last seen (Unix time); `position` is leaf, intermediate or root and `index` its place in the chain (0 = leaf).",
    TlsVerificationSuccess => "vouch_tls_verification_success" []: "1 if the chain last seen verified against the trust roots for the host name, else 0 (also when verification is not required).",
    TlsVersionInfo => "vouch_tls_version_info" ["version"]: "The TLS version negotiated in the last handshake (`version` is TLS1.2 or TLS1.3); always 1.",
    TlsHandshakeDurationSeconds => "vouch_tls_handshake_duration_seconds" []: "Duration of the last TLS handshake of a `tls` check.",
    DnsAnswers => "vouch_dns_answers" ["server"]: "Answer records of the queried type in the last lookup, by name server (`system`, `listed`, or the server's address in propagation mode).",
    DnsLookupDurationSeconds => "vouch_dns_lookup_duration_seconds" ["server"]: "Duration of the last lookup, by name server.",
    DnsMinTtlSeconds => "vouch_dns_min_ttl_seconds" ["server"]: "Lowest TTL among the answer records of the last lookup, by name server.",
    DnsServerAgreementSuccess => "vouch_dns_server_agreement_success" ["server"]: "1 if the server's answer agreed with the expected (or majority) answer in the last propagation check, else 0.",
    PostgresUp => "vouch_postgres_up" []: "1 if the last run connected to PostgreSQL, 0 if it could not.",
    PostgresVersionInfo => "vouch_postgres_version_info" ["version"]: "PostgreSQL server version; always 1.",
    PostgresConnections => "vouch_postgres_connections" ["state"]: "Client connections by state: active, idle, idle_in_transaction, idle_in_transaction_aborted, fastpath_function_call, disabled, unknown (not visible to the check's role).",
    PostgresMaxConnections => "vouch_postgres_max_connections" []: "The server's max_connections setting.",
    PostgresConnectionsUsedRatio => "vouch_postgres_connections_used_ratio" []: "Client connections divided by max_connections.",
    PostgresLongestQuerySeconds => "vouch_postgres_longest_query_seconds" []: "Age of the longest running active query, vouch's own session excluded.",
    PostgresLongestTransactionSeconds => "vouch_postgres_longest_transaction_seconds" []: "Age of the longest open transaction, vouch's own session excluded.",
    PostgresSlowQueries => "vouch_postgres_slow_queries" []: "Active queries running longer than the check's slow_query_threshold.",
    PostgresDatabaseSizeBytes => "vouch_postgres_database_size_bytes" []: "Size of the database the check connects to.",
    PostgresAssertionValue => "vouch_postgres_assertion_value" ["assertion"]: "The number a custom SQL assertion returned.",
    RedisUp => "vouch_redis_up" []: "1 if the last run reached Redis (connected, PING and INFO answered), 0 if not.",
    RedisPingSeconds => "vouch_redis_ping_seconds" []: "Round trip of the last PING.",
    RedisMemoryUsedBytes => "vouch_redis_memory_used_bytes" []: "Memory Redis has allocated (used_memory).",
    RedisMemoryMaxBytes => "vouch_redis_memory_max_bytes" []: "The maxmemory setting; 0 means unlimited.",
    RedisMemoryUsedRatio => "vouch_redis_memory_used_ratio" []: "used_memory divided by maxmemory; absent when maxmemory is 0 (unlimited).",
    RedisConnectedClients => "vouch_redis_connected_clients" []: "Client connections, the check's own included.",
    RedisBlockedClients => "vouch_redis_blocked_clients" []: "Clients waiting in a blocking call (BLPOP, WAIT, ...).",
    RedisHitRatio => "vouch_redis_hit_ratio" []: "Keyspace hits divided by lookups over the window since the previous run; absent when the window had fewer lookups than min_lookups.",
    RedisEvictedKeys => "vouch_redis_evicted_keys" []: "Keys evicted in the window since the previous run.",
    RedisLastSaveAgeSeconds => "vouch_redis_last_save_age_seconds" []: "Time since the last successful RDB save.",
    RedisLastBgsaveSuccess => "vouch_redis_last_bgsave_success" []: "1 unless the last BGSAVE failed.",
    RedisAofEnabled => "vouch_redis_aof_enabled" []: "1 if append-only file persistence is on.",
    RedisAofLastWriteSuccess => "vouch_redis_aof_last_write_success" []: "1 unless the last AOF write failed.",
    RedisRoleInfo => "vouch_redis_role_info" ["role"]: "Replication role (master, replica); always 1.",
    RedisMasterLinkUp => "vouch_redis_master_link_up" []: "On a replica: 1 if the link to its master is up.",
    RedisLoading => "vouch_redis_loading" []: "1 while the server loads its data set from disk.",
    BackupAgeSeconds => "vouch_backup_age_seconds" []: "Age of the newest matching backup object (now minus its last modification).",
    BackupLastModifiedTimestamp => "vouch_backup_last_modified_timestamp_seconds" []: "Last modification of the newest matching backup object (Unix time).",
    BackupSizeBytes => "vouch_backup_size_bytes" []: "Size of the newest matching backup object.",
    BackupPreviousSizeBytes => "vouch_backup_previous_size_bytes" []: "Size of the second newest matching backup object; absent when there is only one.",
    BackupObjects => "vouch_backup_objects" []: "Objects under the prefix that match the pattern.",
    BackupObjectsSizeBytes => "vouch_backup_objects_size_bytes" []: "Bytes of all objects under the prefix that match the pattern.",
    RegistryTagPresent => "vouch_registry_tag_present" []: "1 if the expected tag's manifest exists in the registry, 0 if not.",
    RegistryTags => "vouch_registry_tags" []: "Tags of the repository read by the last run (at most max_tags).",
    RegistryMatchingTags => "vouch_registry_matching_tags" []: "Tags matching tag_pattern (every tag without one), the expected tag not counted: the versions a rollback can go to.",
    SecretAgeSeconds => "vouch_secret_age_seconds" ["secret"]: "Time since the secret's current version was written (its last rotation).",
    SecretPresent => "vouch_secret_present" ["secret"]: "1 if the configured secret exists in the source, 0 if not.",
    SecretEnabled => "vouch_secret_enabled" ["secret"]: "1 if the secret is enabled, 0 if disabled (absent when the secret is missing).",
    SecretExpiryTimestamp => "vouch_secret_expiry_timestamp_seconds" ["secret"]: "When the secret expires (Unix time); absent when it has no expiry date.",
    KubeReplicas => "vouch_kube_replicas" ["state"]: "Replicas of a Deployment, StatefulSet or DaemonSet by state: desired, ready, available, updated (for a DaemonSet: pods scheduled).",
    KubeGeneration => "vouch_kube_generation" []: "metadata.generation of the Deployment, StatefulSet or DaemonSet: a new value with every rollout of its spec, so a dashboard can tell which rollout a verdict belongs to.",
    KubeObservedGenerationLag => "vouch_kube_unobserved_generations" []: "metadata.generation minus status.observedGeneration of the workload; above 0 while its controller has not seen the latest spec.",
    KubeHpaReplicas => "vouch_kube_hpa_replicas" ["state"]: "A HorizontalPodAutoscaler's replicas by state: current, desired, min, max.",
    KubePods => "vouch_kube_pods" ["state"]: "Pods the check selects by state: total, ready, crash_loop, image_pull, container_config.",
    KubeRestartsInWindow => "vouch_kube_recent_container_restarts" []: "Container restarts of the selected pods within the check's restart_window (docs/configuration.md says how they are counted).",
    KubeEndpointsReady => "vouch_kube_ready_endpoints" []: "Ready endpoint addresses of the Service, over all its EndpointSlices.",
    KubeIngressAddresses => "vouch_kube_ingress_addresses" []: "Load-balancer addresses the Ingress reports.",
    KubeWarningEvents => "vouch_kube_warning_events" []: "Warning events in the namespace within the check's window.",
    KubeRollbackRevisions => "vouch_kube_rollback_revisions" []: "Revisions (ReplicaSets) of the Deployment retained for a rollback, the current one included.",
    KubeCertificateNotAfter => "vouch_kube_certificate_not_after_timestamp_seconds" []: "status.notAfter of the cert-manager Certificate (Unix time).",
    KubeCertificateRenewal => "vouch_kube_certificate_renewal_timestamp_seconds" []: "status.renewalTime of the cert-manager Certificate (Unix time).",
    KubeSecretSyncAgeSeconds => "vouch_kube_secret_sync_age_seconds" []: "Time since the ExternalSecret's status.refreshTime.",
    KubeSnapshotAgeSeconds => "vouch_kube_snapshot_age_seconds" ["pvc"]: "Age of the newest ready VolumeSnapshot of each source PVC.",
    KubeObjectReady => "vouch_kube_object_ready" []: "1 if the object the check reads is present and reports ready (Ready condition, phase Active), else 0.",
}

impl Serialize for Measure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One value a run measured, with values for the measure's labels in the
/// order of [`Measure::label_names`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    #[serde(rename = "name")]
    pub measure: Measure,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "labels_as_object"
    )]
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

fn labels_as_object<S: serde::Serializer>(
    labels: &[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(labels.iter().map(|(k, v)| (k, v)))
}

impl Measurement {
    pub fn new(measure: Measure, value: f64) -> Self {
        Measurement {
            measure,
            labels: Vec::new(),
            value,
        }
    }

    pub fn labelled(measure: Measure, label_values: &[&str], value: f64) -> Self {
        debug_assert_eq!(measure.label_names().len(), label_values.len());
        Measurement {
            measure,
            labels: measure
                .label_names()
                .iter()
                .zip(label_values)
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            value,
        }
    }

    pub fn label_values(&self) -> Vec<&str> {
        self.labels.iter().map(|(_, v)| v.as_str()).collect()
    }
}

/// The result of one run, as the probe (or the runner, for timeouts and
/// panics) reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    pub reason: Reason,
    /// For people: which expectation broke and by how much, or why the
    /// check could not be evaluated. Never contains a secret.
    pub message: String,
    pub measurements: Vec<Measurement>,
}

impl Outcome {
    pub fn pass(message: impl Into<String>) -> Self {
        Self::new(Verdict::Pass, Reason::Ok, message)
    }

    pub fn fail(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Verdict::Fail, reason, message)
    }

    pub fn error(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Verdict::Error, reason, message)
    }

    fn new(verdict: Verdict, reason: Reason, message: impl Into<String>) -> Self {
        Outcome {
            verdict,
            reason,
            message: message.into(),
            measurements: Vec::new(),
        }
    }

    /// A `fail` naming every broken expectation, in order, with the first
    /// one's reason word; None when nothing broke.
    pub fn from_failures<'a>(
        failures: impl IntoIterator<Item = (Reason, &'a str)>,
    ) -> Option<Self> {
        let mut failures = failures.into_iter();
        let (reason, first) = failures.next()?;
        let mut message = first.to_string();
        for (_, more) in failures {
            message.push_str("; ");
            message.push_str(more);
        }
        Some(Outcome::fail(reason, message))
    }

    pub fn with_measurements(mut self, measurements: Vec<Measurement>) -> Self {
        self.measurements = measurements;
        self
    }
}

/// A step of a run that went wrong: its reason word and a message for
/// people (never holding a secret). Probes pass it up with `?` and make
/// it the run's outcome at the end: an `error` unless the step's failure
/// is itself the target breaking an expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }

    /// The run could not be evaluated.
    pub fn into_error(self) -> Outcome {
        Outcome::error(self.reason, self.message)
    }

    /// The target broke an expectation.
    pub fn into_fail(self) -> Outcome {
        Outcome::fail(self.reason, self.message)
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Outcome {
        failure.into_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_join_in_order_under_the_first_reason() {
        assert_eq!(Outcome::from_failures(std::iter::empty()), None);
        let outcome = Outcome::from_failures([
            (Reason::Status, "status 503, expected 200"),
            (Reason::Latency, "took 2s, limit 1s"),
        ])
        .unwrap();
        assert_eq!(
            (outcome.verdict, outcome.reason),
            (Verdict::Fail, Reason::Status)
        );
        assert_eq!(
            outcome.message,
            "status 503, expected 200; took 2s, limit 1s"
        );
    }

    #[test]
    fn reason_words_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let word = reason.as_str();
            assert!(seen.insert(word), "duplicate reason {word}");
            assert!(
                word.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{word}"
            );
        }
    }

    #[test]
    fn measure_names_follow_the_contract() {
        for measure in Measure::ALL {
            let name = measure.name();
            assert!(name.starts_with("vouch_"), "{name}");
            assert!(!name.ends_with("_total"), "{name}: measures are gauges");
            assert!(!measure.label_names().contains(&"check"), "{name}");
        }
    }
}
