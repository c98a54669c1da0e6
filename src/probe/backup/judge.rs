//! The listing of one run, streamed into a tally of the newest two
//! objects, and the tally judged against the expectations.

use super::*;

/// One object as the tally keeps it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) modified: SystemTime,
    pub(super) size: u64,
}

impl Entry {
    /// Newer first by time; among equal times the later name counts as
    /// newer, so a listing's order never changes the verdict.
    pub(super) fn is_newer_than(&self, other: &Entry) -> bool {
        (self.modified, &self.name) > (other.modified, &other.name)
    }
}

/// What a listing adds up to, in constant memory: the newest two matching
/// objects and the counters.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) newest: Option<Entry>,
    pub(super) previous: Option<Entry>,
    pub(super) count: u64,
    pub(super) bytes: u64,
    /// Objects listed, matching or not.
    pub(super) listed: u64,
}

impl Tally {
    pub(super) fn add(&mut self, entry: Entry) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(entry.size);
        match &self.newest {
            Some(newest) if !entry.is_newer_than(newest) => {
                if self
                    .previous
                    .as_ref()
                    .is_none_or(|p| entry.is_newer_than(p))
                {
                    self.previous = Some(entry);
                }
            }
            _ => self.previous = self.newest.replace(entry),
        }
    }
}

impl BackupProbe {
    pub(super) async fn check(&self, ctx: &ProbeContext, store: &dyn ObjectStore) -> Outcome {
        ctx.progress.set("listing objects");
        let prefix_text = self.prefix.as_ref().map(|p| p.as_ref().to_string());
        let mut tally = Tally::default();
        let mut listing = store.list(self.prefix.as_ref());
        while let Some(item) = listing.next().await {
            let meta = match item {
                Ok(meta) => meta,
                Err(err) => {
                    let f = classify(&err, self.request_timeout);
                    let f = self.listing_failure(f, &tally);
                    return match f.reason {
                        Reason::BackupMissing => f.into_fail(),
                        _ => f.into_error(),
                    };
                }
            };
            tally.listed += 1;
            let full = meta.location.as_ref();
            let name = match &prefix_text {
                Some(prefix) => full
                    .strip_prefix(prefix.as_str())
                    .map(|rest| rest.trim_start_matches('/'))
                    .unwrap_or(full),
                None => full,
            };
            // The prefix's own folder marker (`db/`, as S3 consoles and
            // some tools create it) is not a backup.
            if name.is_empty() || self.pattern.as_ref().is_some_and(|p| !p.is_match(name)) {
                continue;
            }
            tally.add(Entry {
                name: name.to_string(),
                modified: meta.last_modified.into(),
                size: meta.size,
            });
        }
        ctx.progress.set("judging");
        self.judge(&tally, SystemTime::now())
    }

    /// A listing error in words: a missing container or bucket is a
    /// missing backup (the store answered), everything else an error.
    pub(super) fn listing_failure(&self, f: Failure, tally: &Tally) -> Failure {
        let after = if tally.listed > 0 {
            format!(" after {} objects", tally.listed)
        } else {
            String::new()
        };
        if f.reason == Reason::BackupMissing {
            let what = match self.location {
                Location::Azure { .. } => "container",
                _ => "bucket",
            };
            return Failure::new(
                Reason::BackupMissing,
                format!(
                    "{}: the {what} does not exist ({})",
                    self.display, f.message
                ),
            );
        }
        Failure::new(
            f.reason,
            format!("listing {}{after}: {}", self.display, f.message),
        )
    }

    pub(super) fn judge(&self, tally: &Tally, now: SystemTime) -> Outcome {
        let mut measurements = vec![
            Measurement::new(Measure::BackupObjects, tally.count as f64),
            Measurement::new(Measure::BackupObjectsSizeBytes, tally.bytes as f64),
        ];
        let matching = match &self.pattern {
            Some(p) => format!(" matching {:?}", p.as_str()),
            None => String::new(),
        };
        let Some(newest) = &tally.newest else {
            let message = if tally.listed == 0 {
                format!("no object under {}", self.display)
            } else {
                format!(
                    "no object{matching} under {} ({} listed, none matching)",
                    self.display, tally.listed
                )
            };
            return Outcome::fail(Reason::BackupMissing, message).with_measurements(measurements);
        };
        let age = now.duration_since(newest.modified).unwrap_or_default();
        measure_newest(tally, newest, age, &mut measurements);
        let age_text = format_age(age);
        let mut failures = self.limit_failures(tally, newest, age, &matching);
        let mut notes = Vec::new();
        if let Some(limit) = self.max_shrink {
            match &tally.previous {
                Some(previous) if previous.size > 0 => {
                    failures.extend(shrink_failure(newest, previous, limit));
                }
                Some(_) => {}
                None => notes.push("only one backup: shrink not judged".to_string()),
            }
        }
        if let Some(outcome) =
            Outcome::from_failures(failures.iter().map(|f| (f.reason, f.message.as_str())))
        {
            return outcome.with_measurements(measurements);
        }
        let mut message = format!(
            "newest {} ({}, {age_text} old); {} object{}{matching}, {} in all",
            newest.name,
            size_text(newest.size),
            tally.count,
            if tally.count == 1 { "" } else { "s" },
            size_text(tally.bytes)
        );
        if let Some(previous) = &tally.previous {
            message.push_str(&format!("; previous {}", size_text(previous.size)));
        }
        for note in notes {
            message.push_str("; ");
            message.push_str(&note);
        }
        Outcome::pass(message).with_measurements(measurements)
    }

    /// The newest backup against `max_age` and `min_size`, the count
    /// against `min_count`.
    fn limit_failures(
        &self,
        tally: &Tally,
        newest: &Entry,
        age: Duration,
        matching: &str,
    ) -> Vec<Failure> {
        let mut failures = Vec::new();
        if let Some(limit) = self.max_age {
            if age > limit {
                failures.push(Failure::new(
                    Reason::BackupAge,
                    format!(
                        "newest backup {} is {} old, limit {}",
                        newest.name,
                        format_age(age),
                        format_duration(limit)
                    ),
                ));
            }
        }
        if let Some(min) = self.min_size {
            if newest.size < min.0 {
                failures.push(Failure::new(
                    Reason::BackupSize,
                    format!(
                        "newest backup {} is {}, minimum {min}",
                        newest.name,
                        size_text(newest.size)
                    ),
                ));
            }
        }
        if let Some(min) = self.min_count {
            if tally.count < min {
                failures.push(Failure::new(
                    Reason::BackupCount,
                    format!(
                        "{} object{}{matching} under {}, minimum {min}",
                        tally.count,
                        if tally.count == 1 { "" } else { "s" },
                        self.display
                    ),
                ));
            }
        }
        failures
    }
}

/// The newest (and previous) backup's age, time and sizes.
fn measure_newest(
    tally: &Tally,
    newest: &Entry,
    age: Duration,
    measurements: &mut Vec<Measurement>,
) {
    let modified_unix = newest
        .modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    measurements.push(Measurement::new(
        Measure::BackupAgeSeconds,
        age.as_secs_f64(),
    ));
    measurements.push(Measurement::new(
        Measure::BackupLastModifiedTimestamp,
        modified_unix,
    ));
    measurements.push(Measurement::new(
        Measure::BackupSizeBytes,
        newest.size as f64,
    ));
    if let Some(previous) = &tally.previous {
        measurements.push(Measurement::new(
            Measure::BackupPreviousSizeBytes,
            previous.size as f64,
        ));
    }
}

/// The newest backup against `max_shrink` of the previous one's size
/// (not zero).
fn shrink_failure(newest: &Entry, previous: &Entry, limit: Ratio) -> Option<Failure> {
    let shrink = 1.0 - newest.size as f64 / previous.size as f64;
    (shrink > limit.0).then(|| {
        Failure::new(
            Reason::BackupShrunk,
            format!(
                "newest backup {} is {}, {} smaller than the previous {} ({}), limit {limit}",
                newest.name,
                size_text(newest.size),
                Ratio(shrink),
                previous.name,
                size_text(previous.size)
            ),
        )
    })
}

/// A size for messages: exact bytes below 1 KiB, else rounded.
pub(super) fn size_text(bytes: u64) -> String {
    ByteSize(bytes).approx()
}

/// An age for people: its largest unit and the next one when not zero,
/// rounded down (`2d`, `1d 1h`, `3h 5m`, `42s`).
pub(super) fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    for (i, (unit, size)) in units.iter().enumerate() {
        if secs >= *size || *size == 1 {
            let mut text = format!("{}{unit}", secs / size);
            if let Some((next, next_size)) = units.get(i + 1) {
                let rest = secs % size / next_size;
                if rest > 0 {
                    text.push_str(&format!(" {rest}{next}"));
                }
            }
            return text;
        }
    }
    unreachable!("the last unit matches every age")
}
