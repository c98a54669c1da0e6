//! Every integration test in one binary: one link instead of one per
//! file, and one copy of the support code. Each module is one area
//! (`cargo test --test it http_kind::` runs one).

#[path = "../support/mod.rs"]
mod support;

mod alert_pairs;
mod alert_stack;
mod alerts;
mod argo_rollouts;
mod backup_kind;
mod checklist_coverage;
mod cli;
mod config_errors;
mod config_watch;
mod contract;
mod cross_checks;
mod deploy;
mod dns_kind;
mod docs;
mod fault_matrix;
mod fuzz_corpus;
mod gate_callers;
mod hostile;
mod http_kind;
mod image;
mod integration_docs;
mod kube_fake;
mod kubernetes_kind;
mod mixin;
mod monitoring;
mod postgres_kind;
mod rbac;
mod redis_kind;
mod registry_kind;
mod reload;
mod scheduler;
mod secret_age_kind;
mod secret_age_kubernetes;
mod secrets_never_leak;
mod serve;
mod sharded;
mod status_page;
mod tls_kind;
mod twin;
mod web_config;
