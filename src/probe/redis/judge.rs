//! Reading one `INFO` answer: its measurements and the expectations it
//! breaks, section by section (memory, clients, the window since the
//! previous run, persistence, replication and loading).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{AofExpect, RedisProbe, RoleExpect};
use crate::config::{format_duration, ByteSize, Ratio};
use crate::lock::lock;
use crate::result::{Failure, Measure, Measurement, Reason};

/// `INFO`'s `key:value` lines (public for the fuzz targets: INFO is
/// outside input).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) struct Info(pub(super) HashMap<String, String>);

impl Info {
    fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.text(key).and_then(|v| v.parse::<f64>().ok())
    }

    fn count(&self, key: &str) -> Option<u64> {
        self.text(key).and_then(|v| v.parse::<u64>().ok())
    }

    fn required(&self, key: &str) -> Result<f64, Failure> {
        self.number(key).ok_or_else(|| {
            Failure::new(
                Reason::Protocol,
                format!("INFO has no numeric {key}; is this Redis?"),
            )
        })
    }

    /// Whether `key` is exactly `value`.
    fn flag(&self, key: &str, value: &str) -> bool {
        self.text(key) == Some(value)
    }
}

/// Counters from the previous run, the start of the next window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Counters {
    run_id: String,
    hits: u64,
    misses: u64,
    evicted: u64,
}

/// A yes/no state as a 0/1 gauge.
fn gauge(measure: Measure, on: bool) -> Measurement {
    Measurement::new(measure, f64::from(u8::from(on)))
}

impl RedisProbe {
    /// Measures and judges one INFO answer: the broken expectations, and
    /// notes for the pass message.
    pub(super) fn judge(
        &self,
        info: &Info,
        measurements: &mut Vec<Measurement>,
    ) -> Result<(Vec<Failure>, Vec<String>), Failure> {
        let mut failures = Vec::new();
        let mut notes = Vec::new();
        self.judge_memory(info, measurements, &mut failures, &mut notes)?;
        for (key, measure) in [
            ("connected_clients", Measure::RedisConnectedClients),
            ("blocked_clients", Measure::RedisBlockedClients),
        ] {
            if let Some(value) = info.number(key) {
                measurements.push(Measurement::new(measure, value));
            }
        }
        self.judge_window(info, measurements, &mut failures, &mut notes);
        self.judge_persistence(info, measurements, &mut failures);
        self.judge_replication(info, measurements, &mut failures);
        Ok((failures, notes))
    }

    /// Memory against maxmemory: the measurements, `max_memory_used` and
    /// the expected `maxmemory`.
    fn judge_memory(
        &self,
        info: &Info,
        measurements: &mut Vec<Measurement>,
        failures: &mut Vec<Failure>,
        notes: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let used = info.required("used_memory")?;
        let max = info.number("maxmemory").unwrap_or(0.0);
        measurements.push(Measurement::new(Measure::RedisMemoryUsedBytes, used));
        measurements.push(Measurement::new(Measure::RedisMemoryMaxBytes, max));
        if max > 0.0 {
            let ratio = used / max;
            measurements.push(Measurement::new(Measure::RedisMemoryUsedRatio, ratio));
            let text = format!(
                "memory {} of maxmemory {} ({})",
                ByteSize(used as u64).approx(),
                ByteSize(max as u64),
                Ratio(ratio)
            );
            match self.max_memory_used {
                Some(limit) if ratio > limit.0 => failures.push(Failure::new(
                    Reason::Memory,
                    format!("{text}, limit {limit}"),
                )),
                _ => notes.push(text),
            }
        } else {
            notes.push(match self.max_memory_used {
                Some(limit) => format!(
                    "memory {}, maxmemory 0 (unlimited): max_memory_used {limit} not judged",
                    ByteSize(used as u64).approx()
                ),
                None => format!(
                    "memory {}, maxmemory 0 (unlimited)",
                    ByteSize(used as u64).approx()
                ),
            });
        }

        if let Some(expected) = self.maxmemory {
            if max as u64 != expected.0 {
                let actual = match max as u64 {
                    0 => "0 (unlimited)".to_string(),
                    bytes => ByteSize(bytes).to_string(),
                };
                failures.push(Failure::new(
                    Reason::Memory,
                    format!("maxmemory {actual}, expected {expected}"),
                ));
            }
        }
        Ok(())
    }

    /// Swaps in this run's counters and returns the window since the
    /// previous run: hits, misses and evicted keys.
    fn advance_window(&self, info: &Info) -> (u64, u64, u64) {
        let now = Counters {
            run_id: info.text("run_id").unwrap_or_default().to_string(),
            hits: info.count("keyspace_hits").unwrap_or(0),
            misses: info.count("keyspace_misses").unwrap_or(0),
            evicted: info.count("evicted_keys").unwrap_or(0),
        };
        let previous = {
            let mut slot = lock(&self.previous);
            slot.replace(now.clone())
        };
        // A first run, or a restarted server (new run_id, or counters that
        // went back after CONFIG RESETSTAT), measures since the server's
        // counters began.
        let start = previous
            .filter(|p| {
                p.run_id == now.run_id
                    && p.hits <= now.hits
                    && p.misses <= now.misses
                    && p.evicted <= now.evicted
            })
            .unwrap_or(Counters {
                run_id: now.run_id.clone(),
                hits: 0,
                misses: 0,
                evicted: 0,
            });
        (
            now.hits - start.hits,
            now.misses - start.misses,
            now.evicted - start.evicted,
        )
    }

    /// The window since the previous run: evictions and the hit ratio,
    /// against `max_evictions` and `min_hit_ratio`.
    fn judge_window(
        &self,
        info: &Info,
        measurements: &mut Vec<Measurement>,
        failures: &mut Vec<Failure>,
        notes: &mut Vec<String>,
    ) {
        let (hits, misses, evicted) = self.advance_window(info);
        let lookups = hits + misses;
        measurements.push(Measurement::new(Measure::RedisEvictedKeys, evicted as f64));
        // A ratio over fewer lookups than min_lookups is noise: not exported.
        if lookups > 0 && lookups >= self.min_lookups {
            measurements.push(Measurement::new(
                Measure::RedisHitRatio,
                hits as f64 / lookups as f64,
            ));
        }
        if let Some(min) = self.min_hit_ratio {
            if lookups < self.min_lookups {
                notes.push(format!(
                    "hit ratio not judged: {lookups} lookups in the window, fewer than min_lookups {}",
                    self.min_lookups
                ));
            } else {
                let ratio = hits as f64 / lookups as f64;
                let text = format!(
                    "hit ratio {} over the window ({hits} hits, {misses} misses)",
                    Ratio(ratio)
                );
                if ratio < min.0 {
                    failures.push(Failure::new(
                        Reason::HitRatio,
                        format!("{text}, minimum {min}"),
                    ));
                } else {
                    notes.push(text);
                }
            }
        }
        if let Some(limit) = self.max_evictions {
            if evicted > limit {
                failures.push(Failure::new(
                    Reason::Evictions,
                    format!("{evicted} keys evicted in the window, limit {limit}"),
                ));
            }
        }
    }

    /// RDB saves and AOF, against `max_last_save_age` and `aof`.
    fn judge_persistence(
        &self,
        info: &Info,
        measurements: &mut Vec<Measurement>,
        failures: &mut Vec<Failure>,
    ) {
        let server_now = info
            .number("server_time_usec")
            .map(|us| us / 1e6)
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            });
        let bgsave_ok = !info.flag("rdb_last_bgsave_status", "err");
        measurements.push(gauge(Measure::RedisLastBgsaveSuccess, bgsave_ok));
        if let Some(saved) = info.number("rdb_last_save_time") {
            let age = (server_now - saved).max(0.0);
            measurements.push(Measurement::new(Measure::RedisLastSaveAgeSeconds, age));
            if let Some(limit) = self.max_last_save_age {
                if age > limit.as_secs_f64() {
                    failures.push(Failure::new(
                        Reason::Persistence,
                        format!(
                            "last RDB save {} ago, limit {}",
                            format_duration(Duration::from_secs(age as u64)),
                            format_duration(limit)
                        ),
                    ));
                }
                if !bgsave_ok {
                    failures.push(Failure::new(Reason::Persistence, "the last BGSAVE failed"));
                }
            }
        }
        let aof_on = info.flag("aof_enabled", "1");
        let aof_write_ok = !info.flag("aof_last_write_status", "err");
        measurements.push(gauge(Measure::RedisAofEnabled, aof_on));
        measurements.push(gauge(Measure::RedisAofLastWriteSuccess, aof_write_ok));
        match self.aof {
            Some(AofExpect::Enabled) if !aof_on => failures.push(Failure::new(
                Reason::Persistence,
                "AOF is disabled, expected enabled",
            )),
            Some(AofExpect::Enabled) if !aof_write_ok => failures.push(Failure::new(
                Reason::Persistence,
                "the last AOF write failed",
            )),
            Some(AofExpect::Disabled) if aof_on => failures.push(Failure::new(
                Reason::Persistence,
                "AOF is enabled, expected disabled",
            )),
            _ => {}
        }
    }

    /// The role and the replica's link against `role`, and whether the
    /// server is still loading its data set.
    fn judge_replication(
        &self,
        info: &Info,
        measurements: &mut Vec<Measurement>,
        failures: &mut Vec<Failure>,
    ) {
        let role = match info.text("role") {
            Some("slave") | Some("replica") => "replica",
            Some("master") => "master",
            _ => "unknown",
        };
        measurements.push(Measurement::labelled(Measure::RedisRoleInfo, &[role], 1.0));
        let link_up = info.text("master_link_status").map(|s| s == "up");
        if let Some(up) = link_up {
            measurements.push(gauge(Measure::RedisMasterLinkUp, up));
        }
        if let Some(expected) = self.role {
            if role != expected.as_str() {
                failures.push(Failure::new(
                    Reason::Role,
                    format!("role {role}, expected {}", expected.as_str()),
                ));
            } else if expected == RoleExpect::Replica && link_up != Some(true) {
                failures.push(Failure::new(
                    Reason::Role,
                    format!(
                        "replica's link to its master is {}",
                        info.text("master_link_status").unwrap_or("unknown")
                    ),
                ));
            }
        }
        let loading = info.flag("loading", "1");
        measurements.push(gauge(Measure::RedisLoading, loading));
        if loading {
            failures.push(Failure::new(
                Reason::Loading,
                "the server is loading its data set",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_become_a_map() {
        let info = parse_info("# Server\r\nredis_version:7.0.15\r\nrole:master\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0\r\n");
        assert_eq!(info["redis_version"], "7.0.15");
        assert_eq!(info["role"], "master");
        assert_eq!(info["db0"], "keys=1,expires=0");
    }
}
