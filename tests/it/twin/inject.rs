//! How each fault of the matrix is injected into the twin and repaired.
use crate::support;

use std::time::Duration;

use support::twin::{cluster, Twin};

/// Sessions a fault holds until its repair.
#[derive(Default)]
pub(super) struct Held {
    sessions: Vec<tokio_postgres::Client>,
}

pub(super) async fn inject(twin: &mut Twin, fault: &str, held: &mut Held) {
    let ns = cluster::NAMESPACE;
    match fault {
        "redis-down" => twin.redis.stop(),
        "postgres-down" => twin.postgres.stop(),
        "api-stopped" => twin.api.stop(),
        "www-not-redirecting" => {
            let mut spec = twin.ingress.spec.clone();
            spec.www_redirects = false;
            twin.ingress.reload(spec);
        }
        "cluster-issuer-not-ready" => {
            twin.kube.apply(cluster::cluster_issuer(false));
        }
        "external-secret-stale" => {
            twin.kube.apply(cluster::external_secret(3 * 3600));
        }
        "snapshot-8-days-old" => {
            twin.kube.apply(cluster::volume_snapshot(8 * 86_400));
        }
        "hpa-pinned-at-max" => {
            twin.kube.apply(cluster::hpa("broxiva-api", 5, 20, 20));
        }
        "servicemonitor-missing" => {
            twin.kube.delete(
                "monitoring.coreos.com/v1",
                "ServiceMonitor",
                Some(cluster::NAMESPACE),
                "broxiva-web",
            );
        }
        "configmap-port-wrong" => {
            let mut map = cluster::config_map();
            map["data"]["PORT"] = "3000".into();
            twin.kube.apply(map);
        }
        "pending-migration" => {
            // The release's newest migration is newer than the applied one:
            // the table as TypeORM leaves it after a failed migration run.
            twin.broxiva_session()
                .await
                .batch_execute(
                    "UPDATE migrations SET timestamp = 1733011200000, name = 'Catalogue1733011200000'",
                )
                .await
                .unwrap();
        }
        "rollout-stuck-3-of-5" => {
            twin.kube.set_deployment_status(
                ns,
                "broxiva-api",
                support::kube_api::objects::DeploymentNumbers {
                    replicas: 5,
                    updated: 3,
                    ready: 3,
                    available: 3,
                },
            );
        }
        "pod-crash-looping" => {
            twin.kube.crash_loop_pod(ns, "broxiva-api-0", "app");
        }
        "certificate-10-days-left" => {
            twin.reissue_api_certificate(chrono::Utc::now() + chrono::Duration::days(10));
        }
        "served-certificate-not-cert-managers" => {
            // cert-manager renewed; the ingress still serves the old one.
            twin.kube.renew_certificate(
                ns,
                "broxiva-api-tls-production",
                twin.platform.cert_not_before,
                twin.platform.api_cert_not_after + chrono::Duration::days(30),
            );
        }
        "certificate-not-ready" => {
            let mut certificate = twin
                .kube
                .get(
                    "cert-manager.io/v1",
                    "Certificate",
                    Some(ns),
                    "broxiva-api-tls-production",
                )
                .unwrap();
            certificate["status"]["conditions"][0]["status"] = "False".into();
            certificate["status"]["conditions"][0]["reason"] = "Failed".into();
            twin.kube.apply(certificate);
        }
        "dns-old-address" => twin.answer_api_with("203.0.113.99"),
        "connections-85-percent" => {
            // As the application's role: sessions of other roles are not
            // visible to the check's role without pg_read_all_stats.
            for _ in 0..170 {
                held.sessions.push(twin.app_session().await);
            }
        }
        "query-10s" => {
            let session = twin.app_session().await;
            tokio::spawn(async move {
                let _ = session.batch_execute("SELECT pg_sleep(10)").await;
            });
        }
        "wrong-commit-after-rollout" => {
            // The release's image is pushed, then rolled out; the API
            // still runs the old commit.
            twin.registry.push_build("broxiva-api", "a1b2c3d005");
            let image = cluster::image("broxiva-api", "a1b2c3d005");
            twin.kube.start_rollout(ns, "broxiva-api", &image);
            while !twin.kube.rollout_step(ns, "broxiva-api") {}
            twin.kube.settle_deployment(ns, "broxiva-api");
        }
        "image-tag-missing" => {
            let current = twin.platform.api_tags.last().unwrap().clone();
            twin.registry.delete_tag("broxiva-api", &current);
        }
        "acr-pull-revoked" => twin.acr.revoke_pull(support::key_vault::CLIENT_ID),
        "federated-token-refused" => {
            // A service account token Entra ID has no federated credential
            // for.
            std::fs::write(
                twin.federated_token_file(),
                "eyJhbGciOiJSUzI1NiJ9.another-service-account-token.sig",
            )
            .unwrap();
        }
        "two-rollback-tags" => {
            let oldest = twin.platform.api_tags[0].clone();
            twin.registry.delete_tag("broxiva-api", &oldest);
        }
        "backup-30-hours-old" => twin.backups.delete(newest_backup()).await,
        "backup-shrank-70-percent" => {
            let size = support::twin::backups::DUMP_BYTES * 3 / 10;
            twin.backups
                .upload("backup-2026-12-08.sql.gz", size, Duration::ZERO)
                .await;
        }
        "secret-past-rotation" => twin.put_secret("jwt-access-secret", 100),
        "sentry-dsn-missing" => twin.vault.remove("sentry-dsn"),
        "vault-challenge-names-login-microsoftonline" => {
            twin.vault
                .set_challenge("login.microsoftonline.com", "https://vault.azure.net");
        }
        "redis-memory-95-percent-evicting" => fill_redis_until_evicting(twin).await,
        // The defect the shipped config had: with maxmemory 0 the memory
        // share was never judged and redis-metrics passed.
        "redis-maxmemory-unlimited" => {
            redis_command(twin, &["CONFIG", "SET", "maxmemory", "0"]).await;
        }
        "hsts-missing" => {
            let mut spec = twin.ingress.spec.clone();
            spec.hsts = false;
            twin.ingress.reload(spec);
        }
        other => panic!("unknown fault {other}"),
    }
}

pub(super) async fn repair(twin: &mut Twin, fault: &str, held: &mut Held) {
    let ns = cluster::NAMESPACE;
    match fault {
        "redis-down" => twin.redis.start(),
        "postgres-down" => twin.postgres.start(),
        "api-stopped" => {
            twin.api.start();
            twin.api
                .wait_for("/api/health/ready", 200, Duration::from_secs(60));
            twin.wait_for_api_series().await;
        }
        "www-not-redirecting" => {
            let mut spec = twin.ingress.spec.clone();
            spec.www_redirects = true;
            twin.ingress.reload(spec);
        }
        "cluster-issuer-not-ready" => {
            twin.kube.apply(cluster::cluster_issuer(true));
        }
        "external-secret-stale" => {
            twin.kube.apply(cluster::external_secret(600));
        }
        "snapshot-8-days-old" => {
            twin.kube.apply(cluster::volume_snapshot(86_400));
        }
        "hpa-pinned-at-max" => {
            twin.kube.apply(cluster::hpa("broxiva-api", 5, 20, 5));
        }
        "servicemonitor-missing" => {
            twin.kube.apply(cluster::service_monitor("broxiva-web"));
        }
        "configmap-port-wrong" => {
            twin.kube.apply(cluster::config_map());
        }
        "pending-migration" => {
            twin.broxiva_session()
                .await
                .batch_execute(
                    "UPDATE migrations SET timestamp = 1735689600000, name = 'InitialSchema1735689600000'",
                )
                .await
                .unwrap();
        }
        "rollout-stuck-3-of-5" => {
            twin.kube.settle_deployment(ns, "broxiva-api");
        }
        "pod-crash-looping" => {
            let image = cluster::image("broxiva-api", twin.platform.api_tags.last().unwrap());
            twin.kube.apply(support::kube_api::objects::ready_pod(
                ns,
                "broxiva-api-0",
                serde_json::json!({"app": "broxiva-api"}),
                &image,
            ));
        }
        "certificate-10-days-left" => {
            let not_after = twin.platform.api_cert_not_after;
            twin.reissue_api_certificate(not_after);
        }
        "served-certificate-not-cert-managers" | "certificate-not-ready" => {
            twin.kube.renew_certificate(
                ns,
                "broxiva-api-tls-production",
                twin.platform.cert_not_before,
                twin.platform.api_cert_not_after,
            );
        }
        "dns-old-address" => twin.answer_api_with(cluster::API_INGRESS_IP),
        "connections-85-percent" => held.sessions.clear(),
        "query-10s" => {
            twin.broxiva_session()
                .await
                .batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)'",
                )
                .await
                .unwrap();
        }
        "wrong-commit-after-rollout" => {
            // The API is redeployed with the new commit.
            twin.api.stop();
            twin.api.set_env("COMMIT", "a1b2c3d005");
            twin.api.start();
            twin.api
                .wait_for("/api/health/ready", 200, Duration::from_secs(60));
            twin.wait_for_api_series().await;
        }
        "image-tag-missing" => {
            let current = twin.platform.api_tags.last().unwrap().clone();
            twin.registry.push_build("broxiva-api", &current);
        }
        "acr-pull-revoked" => {
            for repository in support::twin::REPOSITORIES {
                twin.acr
                    .grant_pull(support::key_vault::CLIENT_ID, repository);
            }
        }
        "federated-token-refused" => {
            std::fs::write(
                twin.federated_token_file(),
                support::key_vault::FEDERATED_TOKEN,
            )
            .unwrap();
        }
        "two-rollback-tags" => {
            let oldest = twin.platform.api_tags[0].clone();
            twin.registry.push_build("broxiva-api", &oldest);
        }
        "backup-30-hours-old" => {
            let size = support::twin::backups::DUMP_BYTES;
            twin.backups
                .upload(newest_backup(), size, Duration::ZERO)
                .await;
        }
        "backup-shrank-70-percent" => twin.backups.delete("backup-2026-12-08.sql.gz").await,
        "secret-past-rotation" => {
            twin.put_secret("jwt-access-secret", support::twin::SECRET_AGE_DAYS);
        }
        "sentry-dsn-missing" => {
            twin.put_secret("sentry-dsn", support::twin::SECRET_AGE_DAYS);
        }
        "vault-challenge-names-login-microsoftonline" => {
            twin.vault
                .set_challenge("login.windows.net", "https://vault.azure.net");
        }
        // `vouch check` judges evictions over the server's lifetime (one
        // run has no previous one): the counters are reset with the data.
        "redis-memory-95-percent-evicting" => {
            redis_command(twin, &["FLUSHALL"]).await;
            redis_command(twin, &["CONFIG", "RESETSTAT"]).await;
        }
        "redis-maxmemory-unlimited" => {
            redis_command(twin, &["CONFIG", "SET", "maxmemory", "1gb"]).await;
        }
        "hsts-missing" => {
            let mut spec = twin.ingress.spec.clone();
            spec.hsts = true;
            twin.ingress.reload(spec);
        }
        other => panic!("unknown fault {other}"),
    }
}

/// Tonight's dump (the healthy history's newest).
fn newest_backup() -> &'static str {
    support::twin::backups::HISTORY.last().unwrap().0
}

async fn redis_command(twin: &Twin, args: &[&str]) {
    let mut connection = twin.redis.connection(None).await;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    let _: redis::Value = command.query_async(&mut connection).await.unwrap();
}

/// Writes 256 KiB values until Redis (maxmemory 1gb, allkeys-lru) holds
/// over 95% of maxmemory and has evicted more keys than redis-metrics
/// allows (100) in a window.
async fn fill_redis_until_evicting(twin: &Twin) {
    let mut connection = twin.redis.connection(None).await;
    let value = vec![b'x'; 256 * 1024];
    let mut key = 0u64;
    loop {
        let mut pipe = redis::pipe();
        for _ in 0..64 {
            pipe.cmd("SET")
                .arg(format!("fill:{key}"))
                .arg(&value)
                .ignore();
            key += 1;
        }
        let () = pipe.query_async(&mut connection).await.unwrap();
        let info: String = redis::cmd("INFO")
            .query_async(&mut connection)
            .await
            .unwrap();
        let field = |name: &str| -> f64 {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        if field("evicted_keys") > 200.0 && field("used_memory") > 0.95 * field("maxmemory") {
            return;
        }
    }
}
