//! The status page's part for a sharded install: which shard runs which
//! checks, what does not pass on the other shards, and which shards did
//! not answer (they hold the gate: their checks are unknown until they
//! answer).

use std::fmt::Write as _;

use quick_xml::escape::escape;

use super::gate::GateItem;
use super::page::{url_segment, verdict_cell};
use super::peers::ShardView;

/// One row per shard: its checks and their tally, the ones not passing
/// with their reason, or why it did not answer.
pub fn shards_block(view: &ShardView) -> String {
    let mut out = format!(
        "<section id=\"shards\"><h2>Shards ({})</h2><p class=\"muted\">The checks are split over {} shards; \
shard {} serves this page and asked the others just now. The counts and the headline cover every shard \
that answered. A shard that does not answer holds the gate: its checks are unknown until it answers.</p>\
<div class=\"scroll\"><table><thead><tr><th>Shard</th><th>Checks</th><th>Not passing</th></tr></thead><tbody>",
        view.urls.len(),
        view.urls.len(),
        view.index
    );
    for (shard, url) in view.urls.iter().enumerate() {
        let shard = shard as u32;
        let here = if shard == view.index {
            " (this page)"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><td><b>shard {shard}</b>{here}<div class=\"muted\">{}</div></td>",
            escape(url)
        );
        match view.unreachable.iter().find(|u| u.shard == shard) {
            Some(silent) => {
                let _ = write!(
                    out,
                    "<td>unknown</td><td><span class=\"v v-error\">! NOT ANSWERING</span> {}: holds the gate until it answers</td></tr>",
                    escape(&silent.why)
                );
            }
            None => {
                let checks: Vec<&GateItem> = view
                    .items
                    .iter()
                    .filter(|c| c.shard == Some(shard))
                    .collect();
                out.push_str(&shard_cells(&checks, shard == view.index));
            }
        }
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// The tally and names of one answering shard's checks, and those of its
/// checks that do not pass (this page's own are in the table above).
fn shard_cells(checks: &[&GateItem], here: bool) -> String {
    let passing = checks.iter().filter(|c| c.state == "pass").count();
    let mut names = String::new();
    for check in checks {
        let _ = write!(names, "{} ", escape(&check.name));
    }
    let mut out = format!(
        "<td>{passing} of {} pass<details><summary class=\"muted\">names</summary><code>{}</code></details></td><td>",
        checks.len(),
        names.trim_end()
    );
    let needing: Vec<&&GateItem> = checks.iter().filter(|c| c.state != "pass").collect();
    if needing.is_empty() {
        out.push_str("none");
    } else if here {
        let _ = write!(out, "{} (see above)", needing.len());
    }
    for check in needing.iter().filter(|_| !here) {
        let result = match &check.last_run {
            Some(run) => format!(
                "<code>{}</code> {}",
                escape(&run.reason),
                escape(&run.message)
            ),
            None => "not run yet".to_string(),
        };
        let _ = write!(
            out,
            "<div>{} <a href=\"api/v1/checks/{}\">{}</a> {result}</div>",
            verdict_cell(&check.state),
            url_segment(&check.name),
            escape(&check.name),
        );
    }
    out.push_str("</td></tr>");
    out
}
