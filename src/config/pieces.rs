//! Decoding a config so that one mistake does not hide the next.
//!
//! The decoder stops at its first error. When the whole file does not
//! decode, each top-level entry and each item of `checks` is decoded again
//! on its own, from its own lines, and again without the key of each
//! problem found, so every mistake is reported in one run; what decodes
//! once the bad keys are out is then handed on to the rules that span
//! fields and to the kinds' own checks, so their problems come in the same
//! run too. The rules that read a value left out (a check's kind block, a
//! timing inherited from a bad `defaults` value) wait for the next run.
//!
//! Pieces are cut by lines: a block-style file (what every example and
//! every hand-written config is) has each top-level key and each check
//! start on a line of its own. A file that is not cut that way (flow
//! style on one line, aliases that reach across entries) keeps the
//! decoder's single error.

use super::problem::{ConfigError, LocatedProblem};
use super::source::decode_config_error;
use super::spans::LineIndex;
use super::ConfigFile;

/// What decoding a file piece by piece gave.
pub(crate) struct Decoded {
    pub file: ConfigFile,
    /// The original index of each check of `file` (checks that did not
    /// decode are left out, so the two differ after the first of those).
    pub numbering: Vec<usize>,
    /// The text `file` was decoded from: the entries and checks that
    /// decoded.
    pub text: String,
    /// Problems of the entries that did not decode.
    pub problems: Vec<LocatedProblem>,
}

/// Lines `start..end` (0-based, end exclusive) of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// A top-level entry; for `checks`, the span of each item too.
#[derive(Debug)]
struct Entry {
    key: String,
    span: Span,
    items: Vec<Span>,
}

/// Decodes `text` whose whole-file decoding failed with `whole`, piece by
/// piece: each top-level entry and each check again and again without the
/// key of each problem found. An entry or check that decodes once its bad
/// keys are out is kept, and the paths of its bad values are recorded in
/// [`ConfigFile::undecoded`], so the rules that read them wait for the
/// next run while every other rule looks at the rest now (a bad `defaults`
/// value does not hide the checks' problems, a bad `severity` does not
/// hide its check's URL). Gives the decoder's own error when the file
/// cannot be cut into pieces or no piece fails alone.
pub(crate) fn decode_in_pieces(
    text: &str,
    origin: &str,
    lines: &LineIndex,
    whole: &serde_yaml_ng::Error,
) -> Result<Decoded, ConfigError> {
    let fallback = || decode_config_error(origin, whole, lines, text);
    let source: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(entries) = outline(text, &source, lines) else {
        return Err(fallback());
    };
    let mut problems = Vec::new();
    let mut kept: Vec<Span> = Vec::new();
    let mut numbering = Vec::new();
    let mut undecoded = Vec::new();
    for entry in &entries {
        if entry.key != "checks" || entry.items.is_empty() {
            let piece = decode_dropping(&source, None, entry.span, origin);
            match piece.spans {
                Some(spans) => {
                    kept.extend(spans);
                    undecoded.extend(bad_values(&piece.problems));
                }
                // Left out whole (a flow mapping on one line): everything
                // it sets is unknown to the rules.
                None => undecoded.push(entry.key.clone()),
            }
            problems.extend(piece.problems);
            continue;
        }
        // The `checks:` line (and anything before the first item) with
        // one item at a time: the item is `checks[0]` of its piece.
        let head = Span {
            start: entry.span.start,
            end: entry.items[0].start,
        };
        kept.push(head);
        for (number, item) in entry.items.iter().enumerate() {
            let piece = decode_dropping(&source, Some(head), *item, origin);
            if let Some(spans) = piece.spans {
                // The check is `checks[numbering.len()]` of what is kept.
                let decoded = numbering.len();
                undecoded.extend(
                    bad_values(&piece.problems)
                        .iter()
                        .map(|path| renumber_path(path, decoded)),
                );
                kept.extend(spans);
                numbering.push(number);
            }
            problems.extend(
                piece
                    .problems
                    .into_iter()
                    .map(|p| renumber_problem(p, number)),
            );
        }
    }
    if problems.is_empty() {
        return Err(fallback());
    }
    problems.sort_by_key(|p| p.line);
    let rest = join(&source, &kept);
    match serde_yaml_ng::from_str::<ConfigFile>(&rest) {
        Ok(mut file) => {
            file.undecoded = undecoded;
            Ok(Decoded {
                file,
                numbering,
                text: rest,
                problems,
            })
        }
        Err(_) => Err(ConfigError { problems }),
    }
}

/// The paths of the values `problems` found bad, as far as the rules
/// read them: `checks[0].severity`, `checks[0].http` (a check's kind
/// block as a whole), `defaults.interval`. An unknown key changes nothing
/// and is left out.
fn bad_values(problems: &[LocatedProblem]) -> Vec<String> {
    problems
        .iter()
        .filter(|p| !p.message.starts_with("unknown field") && !p.path.is_empty())
        .map(|p| p.path.splitn(3, '.').take(2).collect::<Vec<_>>().join("."))
        .collect()
}

impl Span {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// The most problems looked for in one check or entry: each is found by
/// decoding it again without the key of the one before.
const MAX_PROBLEMS_PER_CHECK: usize = 8;

/// What decoding one entry or check piece by piece gave.
struct Piece {
    problems: Vec<LocatedProblem>,
    /// Its lines without the keys of its problems, when they decode (and
    /// a check still has its kind block).
    spans: Option<Vec<Span>>,
}

/// Decodes one top-level entry or check (`item`, below the `checks:` line
/// `head`), again and again without the key of each problem found, so an
/// entry with two mistakes shows both, and gives the lines that decode
/// once they are out, for the rules.
fn decode_dropping(source: &[&str], head: Option<Span>, item: Span, origin: &str) -> Piece {
    let mut spans = vec![item];
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS_PER_CHECK {
        let piece: Vec<Span> = head.into_iter().chain(spans.iter().copied()).collect();
        let err = match decode_piece(source, &piece, origin) {
            // A check left without a kind block once its bad keys are out
            // (a misspelt `redsi:`, `http: "url"`) would only add "no
            // check kind".
            Ok(file) if file.checks.iter().any(|c| c.kinds_present().is_empty()) => break,
            Ok(_) => {
                return Piece {
                    problems,
                    spans: Some(spans),
                }
            }
            Err(err) => err,
        };
        let Some(first) = err.problems.into_iter().next() else {
            break;
        };
        // Once keys are left out, a problem without a key (the piece no
        // longer parses) is of the cutting, not of the file.
        if first.path.is_empty() && !problems.is_empty() {
            break;
        }
        if caused_by_cut(&first, &problems) {
            break;
        }
        // A missing field is fixed by adding, not removing: leaving its
        // block out would hide the block's other problems behind "no kind".
        let cut = match first.line {
            Some(line) if line > 0 && !first.message.starts_with("missing field") => {
                key_lines(source, line - 1, &first, &spans)
            }
            _ => None,
        };
        problems.push(first);
        match cut {
            Some(cut) => spans = without(&spans, cut),
            None => break,
        }
    }
    Piece {
        problems,
        spans: None,
    }
}

/// A missing field that is only missing because a key reported before
/// was left out: the typo of it (`uri`, "did you mean `url`?") or the key
/// itself with a bad value.
fn caused_by_cut(problem: &LocatedProblem, before: &[LocatedProblem]) -> bool {
    let Some(field) = problem
        .message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    else {
        return false;
    };
    before.iter().any(|p| {
        p.message.contains(&format!("did you mean `{field}`?"))
            || p.path.rsplit('.').next() == Some(field)
    })
}

/// The lines of the key `problem` is about, starting at line `at`: that
/// line and the more indented ones after it. None when the key does not
/// start its line (a flow mapping, a list item's first key), so that
/// leaving the lines out would leave out more than the key.
fn key_lines(source: &[&str], at: usize, problem: &LocatedProblem, spans: &[Span]) -> Option<Span> {
    let span = spans.iter().find(|s| s.start <= at && at < s.end)?;
    let key = match problem.message.strip_prefix("unknown field `") {
        Some(rest) => rest.split('`').next()?,
        None => problem.path.rsplit('.').next()?,
    };
    let line = source[at];
    let indent = line.len() - line.trim_start().len();
    if !line.trim_start().starts_with(&format!("{key}:")) {
        return None;
    }
    let end = (at + 1..span.end)
        .find(|&i| {
            let text = source[i].trim_start();
            let blank = text.is_empty() || text.starts_with('#');
            !blank && source[i].len() - text.len() <= indent
        })
        .unwrap_or(span.end);
    Some(Span { start: at, end })
}

/// `spans` less the lines of `cut` (which lies inside one of them).
fn without(spans: &[Span], cut: Span) -> Vec<Span> {
    let mut rest = Vec::new();
    for span in spans {
        if cut.start >= span.start && cut.end <= span.end {
            rest.push(Span {
                start: span.start,
                end: cut.start,
            });
            rest.push(Span {
                start: cut.end,
                end: span.end,
            });
        } else {
            rest.push(*span);
        }
    }
    rest.retain(|s| s.len() > 0);
    rest
}

/// Decodes the lines of `spans`, joined, as a config; problems name the
/// lines of the original text.
fn decode_piece(source: &[&str], spans: &[Span], origin: &str) -> Result<ConfigFile, ConfigError> {
    let text = join(source, spans);
    let err = match serde_yaml_ng::from_str::<ConfigFile>(&text) {
        Ok(file) => return Ok(file),
        Err(err) => err,
    };
    let lines = LineIndex::build(&text).unwrap_or_default();
    let mut error = decode_config_error(origin, &err, &lines, &text);
    // A line of the piece → the line of the file: each span is shifted by
    // where it starts less the piece lines before it.
    for problem in &mut error.problems {
        if let Some(line) = problem.line {
            let mut before = 0;
            for span in spans {
                if line <= before + span.len() {
                    problem.line = Some(line - before + span.start);
                    break;
                }
                before += span.len();
            }
        }
    }
    Err(error)
}

/// `checks[0]…` of a one-item piece as `checks[number]…`, in the path
/// and in a hint that names a path (the line is already the file's).
fn renumber_problem(mut problem: LocatedProblem, number: usize) -> LocatedProblem {
    problem.path = renumber_path(&problem.path, number);
    problem.message = problem
        .message
        .replace("`checks[0].", &format!("`checks[{number}]."));
    problem
}

fn renumber_path(path: &str, number: usize) -> String {
    match path.strip_prefix("checks[0]") {
        Some(rest) => format!("checks[{number}]{rest}"),
        None => path.to_string(),
    }
}

/// The lines of `spans`, in order, as one text.
fn join(source: &[&str], spans: &[Span]) -> String {
    let mut text = String::new();
    for span in spans {
        for line in source
            .get(span.start..span.end.min(source.len()))
            .unwrap_or_default()
        {
            text.push_str(line);
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// The top-level entries of a block-style mapping and the items of its
/// `checks`, by line; None when the file is not cut that way.
fn outline(text: &str, source: &[&str], lines: &LineIndex) -> Option<Vec<Entry>> {
    // Aliases reach across pieces; line breaks other than `\n` (a lone
    // `\r`) number lines differently from the cutting below.
    let other_breaks = text
        .replace("\r\n", "\n")
        .contains(['\r', '\u{85}', '\u{2028}', '\u{2029}']);
    if lines.has_aliases() || other_breaks {
        return None;
    }
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let map = tree.as_mapping()?;
    let mut starts: Vec<(usize, String)> = Vec::new();
    for key in map.keys() {
        let key = key.as_str()?;
        if key.is_empty() || key.contains(['.', '[']) {
            return None;
        }
        let line = lines
            .exact_line_of(key)
            .filter(|l| (1..=source.len()).contains(l))?;
        starts.push((line - 1, key.to_string()));
    }
    starts.sort();
    if starts.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let mut entries = Vec::new();
    for (i, (start, key)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(source.len(), |next| next.0);
        let span = Span { start: *start, end };
        let items = match (key.as_str(), map.get(key.as_str())) {
            ("checks", Some(serde_yaml_ng::Value::Sequence(list))) => {
                item_spans(list.len(), span, source, lines)?
            }
            _ => Vec::new(),
        };
        entries.push(Entry {
            key: key.clone(),
            span,
            items,
        });
    }
    Some(entries)
}

/// The lines of each of the `count` checks inside `entry`: from the line
/// of its dash to the next one's.
fn item_spans(count: usize, entry: Span, source: &[&str], lines: &LineIndex) -> Option<Vec<Span>> {
    let mut starts = Vec::with_capacity(count);
    for i in 0..count {
        let mut start = lines
            .exact_line_of(&format!("checks[{i}]"))
            .filter(|l| (1..=source.len()).contains(l))?
            - 1;
        // `-` alone on the line above the item's first key.
        if start > 0 && source[start - 1].trim() == "-" {
            start -= 1;
        }
        starts.push(start);
    }
    let ordered = starts.first().is_none_or(|first| *first > entry.start)
        && starts.windows(2).all(|w| w[0] < w[1]);
    if !ordered {
        return None;
    }
    Some(
        starts
            .iter()
            .enumerate()
            .map(|(i, start)| Span {
                start: *start,
                end: starts.get(i + 1).copied().unwrap_or(entry.end),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let lines = LineIndex::build(text).unwrap();
        let whole = serde_yaml_ng::from_str::<ConfigFile>(text).err().unwrap();
        match decode_in_pieces(text, "t.yaml", &lines, &whole) {
            Ok(decoded) => decoded.problems.iter().map(|p| p.to_string()).collect(),
            Err(err) => err.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn every_check_that_does_not_decode_is_reported_at_its_line() {
        let text = "checks:\n  - name: a\n    http: {url: http://x, bogus: 1}\n  - name: b\n    tls:\n      host: x\n  -\n    name: c\n    redis:\n      url_env: R\n      nope: 2\n      role: leader\n";
        let found = problems(text);
        let starts: Vec<&str> = found
            .iter()
            .map(|p| &p[..p.find(", expected").unwrap_or(p.len())])
            .collect();
        assert_eq!(
            starts,
            [
                "t.yaml:3: checks[0].http: unknown field `bogus`",
                "t.yaml:11: checks[2].redis: unknown field `nope`",
                "t.yaml:12: checks[2].redis.role: unknown variant `leader`",
            ]
        );
    }

    #[test]
    fn checks_that_decode_are_kept_with_their_numbers() {
        let text = "defaults:\n  interval: 30s\nchecks:\n  - name: a\n    bogus: 1\n  - name: b\n    http: {url: http://x}\n";
        let lines = LineIndex::build(text).unwrap();
        let whole = serde_yaml_ng::from_str::<ConfigFile>(text).err().unwrap();
        let decoded = decode_in_pieces(text, "t.yaml", &lines, &whole)
            .ok()
            .unwrap();
        assert_eq!(decoded.numbering, [1]);
        assert_eq!(decoded.file.checks[0].name, "b");
        assert!(decoded.file.defaults.interval.is_some());
    }

    #[test]
    fn bad_values_are_left_out_and_recorded_for_the_rules() {
        let text = "defaults:\n  interval: 30\n  timeout: 5s\nchecks:\n  - name: a\n    severity: high\n    http: {url: http://x}\n  - name: b\n    bogus: 1\n    http:\n      url: http://y\n      method: [GET]\n";
        let lines = LineIndex::build(text).unwrap();
        let whole = serde_yaml_ng::from_str::<ConfigFile>(text).err().unwrap();
        let decoded = decode_in_pieces(text, "t.yaml", &lines, &whole)
            .ok()
            .unwrap();
        assert_eq!(decoded.problems.len(), 4, "{:?}", decoded.problems);
        // Both checks are kept; the unknown `bogus` changes nothing.
        assert_eq!(decoded.numbering, [0, 1]);
        assert_eq!(
            decoded.file.undecoded,
            ["defaults.interval", "checks[0].severity", "checks[1].http"]
        );
        // What decoded of `defaults` is kept.
        assert!(decoded.file.defaults.timeout.is_some());
        let file = &decoded.file;
        assert!(file.is_undecoded("checks[1].http.method") && file.is_undecoded("checks[1]"));
        assert!(!file.is_undecoded("checks[1].name") && !file.is_undecoded("checks[10].http"));
        assert!(!file.timings_known(0) && !file.timings_known(1));
    }

    #[test]
    fn the_placement_hint_names_the_check_it_is_about() {
        let text = "checks:\n  - name: a\n    http: {url: http://x}\n  - name: b\n    http: {url: http://y}\n    expect: {status: [200]}\n";
        let found = problems(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.yaml:6: checks[1]: unknown field `expect` (it goes inside the kind block, as `checks[1].http.expect`)"),
            "{found:?}"
        );
    }

    #[test]
    fn other_line_breaks_keep_the_single_error() {
        let text = "checks:\r  - name: a\r    bogus: 1\r  - name: b\r    nope: 1\r";
        assert_eq!(problems(text).len(), 1);
    }

    #[test]
    fn a_flow_style_file_keeps_the_single_error() {
        let text = "checks: [{name: a, bogus: 1}, {name: b, nope: 2}]\n";
        let found = problems(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("bogus"), "{found:?}");
    }
}
