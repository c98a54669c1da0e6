//! The status page: the checklist, live. Server-rendered HTML with inline
//! styles and no script or outside asset, so it works in an air-gapped
//! cluster and without JavaScript; it reloads itself every few seconds.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use quick_xml::escape::escape;

use super::gate::{GateItem, Unreachable};
use super::peers::ShardView;
use super::status::{
    CheckStatus, HistoryView, RejectedReload, StatusSnapshot, Summary, HISTORY_LEN,
};
use crate::config::{format_duration, Severity};
use crate::plan::PlannedCheck;
use crate::result::Verdict;

const REFRESH_SECONDS: u32 = 10;

const STYLE: &str = "\
body{font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}\
header{padding:16px 20px;color:#fff}header h1{margin:0;font-size:20px}header p{margin:4px 0 0}\
.ok{background:#1a7f37}.bad{background:#cf222e}.wait{background:#6e7781}\
main{padding:8px 20px 24px;max-width:1200px}\
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}.counts a{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:6px 10px;color:inherit;text-decoration:none}\
h2{font-size:16px;margin:20px 0 6px}summary{cursor:pointer;margin:14px 0 6px}summary h2{display:inline;margin:0}\
.attention{background:#fff8f8;border:1px solid #f5c2c7;border-radius:6px;padding:4px 12px 12px}.attention h2{margin:8px 0}\
.reload{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:10px 12px;margin:12px 0}.reload ul{margin:6px 0 0;padding-left:20px}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}\
th,td{text-align:left;padding:6px 8px;border-top:1px solid #eaeef2;vertical-align:top}th{font-size:12px;color:#57606a;font-weight:600}\
.v{white-space:nowrap;font-weight:600}.v-pass{color:#1a7f37}.v-fail{color:#cf222e}.v-error{color:#9a6700}.v-pending{color:#6e7781}\
.strip{white-space:nowrap;font:11px/1 monospace}.strip i{display:inline-block;width:6px;height:14px;margin-right:1px;font-style:normal}\
.s-pass{background:#2da44e}.s-fail{background:#cf222e}.s-error{background:#bf8700}\
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:#fff;border:1px solid #d0d7de;padding:10px;overflow-x:auto}\
.muted{color:#57606a;font-size:13px}a{color:#0969da}\
@media(max-width:640px){.n{display:none}main{padding:4px 10px 16px}}";

fn icon(state: &str) -> (&'static str, &'static str) {
    match state {
        "pass" => ("\u{2714}", "PASS"),
        "fail" => ("\u{2718}", "FAIL"),
        "error" => ("!", "ERROR"),
        _ => ("\u{2026}", "NOT RUN"),
    }
}

pub(super) fn verdict_cell(state: &str) -> String {
    let (mark, word) = icon(state);
    format!("<span class=\"v v-{state}\">{mark} {word}</span>")
}

fn ago(now: SystemTime, rfc3339: Option<&str>) -> String {
    let Some(text) = rfc3339 else {
        return "\u{2014}".into();
    };
    let Ok(when) = humantime::parse_rfc3339(text) else {
        return escape(text).into_owned();
    };
    let relative = match now.duration_since(when) {
        Ok(past) => format!("{} ago", coarse(past)),
        Err(future) => format!("in {}", coarse(future.duration())),
    };
    format!("<span title=\"{}\">{relative}</span>", escape(text))
}

/// A duration rounded for people: `12s`, `4m`, `3h`, `2d`.
fn coarse(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..=89 => format!("{seconds}s"),
        90..=5399 => format!("{}m", (seconds + 30) / 60),
        5400..=172_799 => format!("{}h", (seconds + 1800) / 3600),
        _ => format!("{}d", (seconds + 43_200) / 86_400),
    }
}

fn strip(recent: &[Verdict]) -> String {
    let mut out = String::from("<span class=\"strip\" aria-label=\"recent runs, oldest first\">");
    for verdict in recent {
        let word = verdict.as_str();
        let _ = write!(out, "<i class=\"s-{word}\" title=\"{word}\"></i>");
    }
    out.push_str("</span>");
    out
}

fn page(title: &str, banner_class: &str, banner: &str, sub: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
<title>{title}</title><style>{STYLE}</style></head><body>\
<header class=\"{banner_class}\"><h1>{banner}</h1><p>{sub}</p></header><main>{body}</main></body></html>",
        title = escape(title),
    )
}

/// The page's headline, computed as `GET /api/v1/gate` answers with its
/// defaults (and as `vouch check` decides with its default `--fail-on`):
/// the checks at or above the gate's threshold decide the colour; those
/// below it are counted beside, and so are shards that did not answer
/// (which hold the gate). Returns (banner class, banner, title).
fn headline(items: &[GateItem], unreachable: &[Unreachable]) -> (&'static str, String, String) {
    let threshold = crate::round::DEFAULT_FAIL_ON;
    let scope = format!("{} and above", threshold.as_str());
    let below: Vec<&GateItem> = items
        .iter()
        .filter(|c| {
            super::gate::severity(&c.severity).is_ok_and(|s| s < threshold)
                && matches!(c.state.as_str(), "fail" | "error")
        })
        .collect();
    let mut aside = match below.len() {
        0 => String::new(),
        n => format!(
            " \u{b7} {n} {} {} failing",
            below_words(&below),
            plural(n, "check")
        ),
    };
    if !unreachable.is_empty() {
        let _ = write!(
            aside,
            " \u{b7} {} {} not answering",
            unreachable.len(),
            plural(unreachable.len(), "shard")
        );
    }
    let answer =
        super::gate::evaluate_items(items, unreachable, &super::gate::GateQuery::default());
    let (class, banner, state) = match answer {
        Ok(answer) if answer.passed => (
            "ok",
            format!("\u{2714} Gate passing ({scope}){aside}"),
            "passing",
        ),
        Ok(answer) => {
            let failing = answer
                .holding
                .iter()
                .filter(|h| !matches!(h.state.as_str(), "pending" | "unreachable"))
                .count();
            if failing > 0 {
                (
                    "bad",
                    format!(
                        "\u{2718} Gate failing ({scope}): {failing} of {} not pass{aside}",
                        gated(answer.selected, items.len(), threshold, ("does", "do")),
                    ),
                    "failing",
                )
            } else if !unreachable.is_empty() {
                (
                    "bad",
                    format!("\u{2718} Gate held ({scope}): a shard does not answer{aside}"),
                    "held",
                )
            } else {
                (
                    "wait",
                    format!(
                        "\u{2026} Gate waiting ({scope}): {} of {} not run yet{aside}",
                        answer.holding.len(),
                        gated(answer.selected, items.len(), threshold, ("has", "have")),
                    ),
                    "waiting",
                )
            }
        }
        // No check at or above the threshold: the gate has nothing to hold.
        Err(_) => (
            "wait",
            format!("No check of severity {scope}{aside}"),
            "no checks",
        ),
    };
    let title = format!("vouch: gate {state} ({scope})");
    (class, banner, title)
}

/// "80 checks do" of a headline's "3 of 80 checks do not pass": the
/// `selected` checks the gate counts, of `total`, with the verb (singular,
/// plural). When checks below the threshold are left out, their severities
/// are named ("80 warning and critical checks do"), so the count does not
/// read as all of the page's checks.
fn gated(selected: usize, total: usize, threshold: Severity, verb: (&str, &str)) -> String {
    let verb = if selected == 1 { verb.0 } else { verb.1 };
    let checks = plural(selected, "check");
    if selected >= total {
        return format!("{selected} {checks} {verb}");
    }
    let counted: Vec<&str> = [Severity::Info, Severity::Warning, Severity::Critical]
        .into_iter()
        .filter(|s| *s >= threshold)
        .map(Severity::as_str)
        .collect();
    let severities = match counted.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    format!("{selected} {severities} {checks} {verb}")
}

/// The counts of checks by state.
fn tally(items: &[GateItem]) -> Summary {
    let count = |state: &str| items.iter().filter(|c| c.state == state).count();
    Summary {
        total: items.len(),
        pass: count("pass"),
        fail: count("fail"),
        error: count("error"),
        pending: count("pending"),
    }
}

/// "info" when every check counted has that severity, else "lower-severity".
fn below_words<'a>(checks: &[&'a GateItem]) -> &'a str {
    let first = &checks[0].severity;
    if checks.iter().all(|c| c.severity == *first) {
        first
    } else {
        "lower-severity"
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// `/`: what needs attention first, then every check by section, in
/// config order, with sections whose checks all pass folded to one line.
pub fn checklist(snapshot: &StatusSnapshot, shards: Option<&ShardView>, now: SystemTime) -> String {
    let local: Vec<GateItem>;
    let (items, unreachable) = match shards {
        Some(view) => (&view.items[..], &view.unreachable[..]),
        None => {
            local = snapshot
                .checks
                .iter()
                .map(|c| GateItem::of(c, None))
                .collect();
            (&local[..], &[][..])
        }
    };
    let summary = match shards {
        Some(view) => tally(&view.items),
        None => snapshot.summary.clone(),
    };
    let (class, banner, title) = headline(items, unreachable);
    let mut body = String::new();
    if let Some(rejected) = &snapshot.rejected_reload {
        body.push_str(&reload_banner(rejected, now));
    }
    let _ = write!(
        body,
        "<nav class=\"counts\"><a href=\"#checks\">\u{2714} passing <b>{}</b></a><a href=\"#attention\">\u{2718} failing <b>{}</b></a>\
<a href=\"#attention\">! erroring <b>{}</b></a><a href=\"#attention\">\u{2026} not yet run <b>{}</b></a></nav>",
        summary.pass, summary.fail, summary.error, summary.pending
    );
    body.push_str(&attention(snapshot, now));
    if let Some(view) = shards {
        body.push_str(&super::page_shards::shards_block(view));
    }
    let _ = write!(
        body,
        "<p class=\"muted\" id=\"checks\">History: the last {HISTORY_LEN} runs of each check, kept in memory only (lost on restart). \
This page reloads every {REFRESH_SECONDS}s. <a href=\"api/v1/checks\">JSON</a> \u{b7} <a href=\"metrics\">metrics</a></p>"
    );
    for (section, checks) in super::in_sections(&snapshot.checks, |c| c.check.section.as_str()) {
        body.push_str(&section_block(section, &checks, now));
    }
    page(
        &title,
        class,
        &banner,
        &format!("vouch {}", env!("CARGO_PKG_VERSION")),
        &body,
    )
}

/// While the running config is older than the file: the rejected reload's
/// problems, each `file:line: key: message`.
fn reload_banner(rejected: &RejectedReload, now: SystemTime) -> String {
    let mut out = format!(
        "<div class=\"reload\" role=\"alert\"><b>\u{26a0} The last config reload was rejected</b> ({}): \
the checks below run the previous config until the file is fixed and reloaded.<ul>",
        ago(now, Some(&rejected.at))
    );
    for problem in &rejected.problems {
        let _ = write!(out, "<li><code>{}</code></li>", escape(problem));
    }
    out.push_str("</ul></div>");
    out
}

/// Every check that does not pass, the most severe first (failing before
/// not-yet-run), with its reason, message and since when.
fn attention(snapshot: &StatusSnapshot, now: SystemTime) -> String {
    let mut needing: Vec<&CheckStatus> = snapshot
        .checks
        .iter()
        .filter(|c| c.state != "pass")
        .collect();
    // A stable sort: config order within each rank.
    needing.sort_by_key(|c| (c.state == "pending", std::cmp::Reverse(c.check.severity)));
    let mut out = format!(
        "<section id=\"attention\" class=\"attention\"><h2>Needs attention ({})</h2>",
        needing.len()
    );
    if needing.is_empty() {
        out.push_str("<p>Nothing: every check passes.</p></section>");
        return out;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Verdict</th><th>Check</th><th class=\"n\">Severity</th>\
<th>Result</th><th>Since</th></tr></thead><tbody>",
    );
    for status in needing {
        let (result, since) = match (&status.last_run, status.state) {
            (_, "pending") => (
                "not run yet".to_string(),
                format!("planned {}", ago(now, status.next_run_at.as_deref())),
            ),
            (Some(run), _) => (
                format!(
                    "<code>{}</code> {}",
                    run.reason.as_str(),
                    escape(&run.message)
                ),
                ago(now, status.failing_since.as_deref()),
            ),
            (None, _) => (String::new(), String::new()),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a href=\"checks/{}\">{}</a><div class=\"muted\">{}</div></td><td class=\"n\">{}</td><td>{result}</td><td>{since}</td></tr>",
            verdict_cell(status.state),
            url_segment(&status.check.name),
            escape(&status.check.name),
            escape(&status.check.section),
            status.check.severity,
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// One section: folded to its heading line when every check passes.
fn section_block(section: &str, checks: &[&CheckStatus], now: SystemTime) -> String {
    let passing = checks.iter().filter(|c| c.state == "pass").count();
    let all_pass = passing == checks.len();
    let tally = if all_pass {
        format!("\u{2714} all {} pass", checks.len())
    } else {
        format!("{passing} of {} pass", checks.len())
    };
    let mut out = format!(
        "<details{}><summary><h2>{}</h2> <span class=\"muted\">{tally}</span></summary>\
<div class=\"scroll\"><table><thead><tr><th>Verdict</th><th>Check</th><th class=\"n\">Severity</th>\
<th>Result</th><th class=\"n\">Last run</th><th class=\"n\">Next run</th><th>Recent runs</th></tr></thead><tbody>",
        if all_pass { "" } else { " open" },
        escape(section)
    );
    for status in checks {
        out.push_str(&check_row(status, now));
    }
    out.push_str("</tbody></table></div></details>");
    out
}

fn check_row(status: &CheckStatus, now: SystemTime) -> String {
    let name = &status.check.name;
    let (result, last) = match &status.last_run {
        None => ("not run yet".to_string(), None),
        Some(run) => {
            let reason = if run.verdict == Verdict::Pass {
                String::new()
            } else {
                format!("<code>{}</code> ", run.reason.as_str())
            };
            let raw = if run.verdict.as_str() != status.state {
                format!(" <span class=\"muted\">(last run: {})</span>", run.verdict)
            } else {
                String::new()
            };
            (
                format!("{reason}{}{raw}", escape(&run.message)),
                Some(run.started_at.as_str()),
            )
        }
    };
    format!(
        "<tr><td>{}</td><td><a href=\"checks/{}\">{}</a></td><td class=\"n\">{}</td><td>{result}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
        verdict_cell(status.state),
        url_segment(name),
        escape(name),
        status.check.severity,
        ago(now, last),
        ago(now, status.next_run_at.as_deref()),
        strip(&status.recent)
    )
}

/// `/checks/NAME`: one check's facts, config and recent runs.
pub fn detail(
    status: &CheckStatus,
    check: &PlannedCheck,
    history: &[HistoryView],
    now: SystemTime,
) -> String {
    let class = match status.state {
        "pass" => "ok",
        "pending" => "wait",
        _ => "bad",
    };
    let (mark, word) = icon(status.state);
    let banner = format!("{mark} {} \u{2014} {word}", escape(&check.name));
    let mut body = String::from("<p><a href=\"../\">\u{2190} all checks</a></p><table><tbody>");
    let mut row = |key: &str, value: String| {
        let _ = write!(body, "<tr><th>{key}</th><td>{value}</td></tr>");
    };
    row("Section", escape(&check.section).into_owned());
    row("Kind", check.kind.as_str().into());
    row("Severity", check.severity.as_str().into());
    row("Interval", format_duration(check.interval));
    row("Timeout", format_duration(check.timeout));
    if let Some(fast) = check.interval_when_failing {
        row("Interval when failing", format_duration(fast));
    }
    row(
        "Flap thresholds",
        format!(
            "{} failing run(s) to fail, {} passing run(s) to pass",
            check.failures_before_fail, check.successes_before_pass
        ),
    );
    for (key, value) in &check.labels {
        row(
            &format!("Label {}", escape(key)),
            escape(value).into_owned(),
        );
    }
    row(
        "Last run",
        ago(now, status.last_run.as_ref().map(|r| r.started_at.as_str())),
    );
    row("Next run", ago(now, status.next_run_at.as_deref()));
    row("Last passed", ago(now, status.last_success_at.as_deref()));
    row(
        "Consecutive failures",
        status.consecutive_failures.to_string(),
    );
    body.push_str("</tbody></table>");
    let _ = write!(
        body,
        "<h2>Config</h2><pre>{}</pre><h2>Recent runs (newest first, at most {HISTORY_LEN}, in memory)</h2>\
<div class=\"scroll\"><table><thead><tr><th>Verdict</th><th>Reason</th><th>Message</th><th>Started</th><th>Duration</th></tr></thead><tbody>",
        escape(&check.config_yaml)
    );
    for run in history.iter().rev() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.3}s</td></tr>",
            verdict_cell(run.verdict.as_str()),
            run.reason.as_str(),
            escape(&run.message),
            ago(now, Some(&run.started_at)),
            run.duration_seconds
        );
    }
    if history.is_empty() {
        body.push_str("<tr><td colspan=\"5\">not run yet</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    page(
        &format!("vouch: {}", check.name),
        class,
        &banner,
        &escape(&check.section),
        &body,
    )
}

/// A check name as a URL path segment.
pub fn url_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_for_people() {
        assert_eq!(coarse(Duration::from_secs(12)), "12s");
        assert_eq!(coarse(Duration::from_secs(240)), "4m");
        assert_eq!(coarse(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(coarse(Duration::from_secs(2 * 86400)), "2d");
    }

    #[test]
    fn names_are_escaped_for_paths() {
        assert_eq!(url_segment("api health/live"), "api%20health%2Flive");
    }
}
