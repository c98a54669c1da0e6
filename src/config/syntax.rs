//! YAML syntax errors at the line to fix, with that line and a caret.
//!
//! The parser reports where it noticed the problem, which for an unclosed
//! bracket or quote is a later line (or one past the end of the file), and
//! where the construct it was reading began. The line to fix is the
//! beginning for constructs that were left open, the place noticed for
//! the rest.

use std::sync::LazyLock;

use regex::Regex;

use super::problem::{ConfigError, LocatedProblem};

/// Constructs whose error is best shown where they began: they were
/// opened and not closed (a bracket, a quote) or a key lacks its colon.
const OPENED: [&str; 4] = [
    "flow mapping",
    "flow sequence",
    "quoted scalar",
    "simple key",
];

/// The problem of a text that is not YAML, or None when it parses (or
/// failed on a limit, not on syntax: those have their own messages).
pub(crate) fn syntax_error(origin: &str, text: &str) -> Option<ConfigError> {
    let err = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).err()?;
    let noticed = err.location()?;
    let full = err.to_string();
    if full.contains("limit") {
        return None;
    }
    static CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(.*?) at line \d+ column \d+, while (?:parsing|scanning) (?:an? )?(.*) at line (\d+) column (\d+)$")
            .expect("valid regex")
    });
    static PLAIN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(.*?) at line \d+ column \d+$").expect("valid regex"));
    let source: Vec<&str> = text.lines().collect();
    let (line, column, message) = match CONTEXT.captures(&full) {
        Some(c) if OPENED.contains(&&c[2]) => {
            let (line, column): (usize, usize) = (c[3].parse().ok()?, c[4].parse().ok()?);
            let line = line.max(1);
            let (noticed_line, _) = clamp(&source, noticed.line(), noticed.column());
            let construct = if &c[2] == "simple key" { "key" } else { &c[2] };
            (
                line,
                column,
                format!(
                    "YAML syntax error in the {construct} that starts here: {} (noticed on line {noticed_line})",
                    &c[1]
                ),
            )
        }
        Some(c) => {
            let (line, column) = clamp(&source, noticed.line(), noticed.column());
            let started = &c[3];
            let message = if started.parse() == Ok(line) {
                format!(
                    "YAML syntax error: {} (in the {} on this line)",
                    &c[1], &c[2]
                )
            } else {
                format!(
                    "YAML syntax error: {} (in the {} that starts on line {started})",
                    &c[1], &c[2]
                )
            };
            (line, column, message)
        }
        None => {
            let main = PLAIN
                .captures(&full)
                .map_or(full.clone(), |c| c[1].to_string());
            let (line, column) = clamp(&source, noticed.line(), noticed.column());
            (line, column, format!("YAML syntax error: {main}"))
        }
    };
    Some(ConfigError {
        problems: vec![LocatedProblem {
            origin: origin.to_string(),
            line: Some(line),
            path: String::new(),
            message: format!("{message}\n{}", excerpt(&source, line, column)),
        }],
    })
}

/// A position on a line of the text: one past the end of the file is the
/// end of its last line that is not blank.
fn clamp(source: &[&str], line: usize, column: usize) -> (usize, usize) {
    if line >= 1 && line <= source.len() && !source[line - 1].trim().is_empty() {
        return (line, column);
    }
    match source.iter().rposition(|l| !l.trim().is_empty()) {
        Some(last) if last + 1 < line || line > source.len() => {
            (last + 1, source[last].chars().count() + 1)
        }
        _ => (line.max(1), column),
    }
}

/// The line, numbered, and a caret under `column` (1-based): tabs before
/// it are kept so the caret lines up however tabs are shown.
fn excerpt(source: &[&str], line: usize, column: usize) -> String {
    let text = source.get(line.saturating_sub(1)).copied().unwrap_or("");
    let pad: String = text
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    format!("  {number} | {text}\n  {gutter} | {pad}^")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        syntax_error("t.yaml", text).unwrap().to_string()
    }

    #[test]
    fn an_unclosed_bracket_is_shown_where_it_opens() {
        let text = "checks:\n  - name: api\n    http: {url: http://x\n  - name: web\n";
        assert_eq!(
            error(text),
            "t.yaml:3: YAML syntax error in the flow mapping that starts here: did not find expected ',' or '}' (noticed on line 4)\n  3 |     http: {url: http://x\n    |           ^"
        );
    }

    #[test]
    fn an_unclosed_quote_at_the_end_is_not_past_the_end() {
        let text = "checks:\n  - name: \"api\n";
        let shown = error(text);
        assert!(
            shown.starts_with("t.yaml:2: YAML syntax error in the quoted scalar that starts here"),
            "{shown}"
        );
        assert!(shown.contains("(noticed on line 2)"), "{shown}");
    }

    #[test]
    fn a_bad_indentation_is_shown_where_it_is() {
        let text = "checks:\n  - name: a\n    http:\n      url: x\n     bad: 1\n";
        let shown = error(text);
        assert!(shown.starts_with("t.yaml:5: YAML syntax error"), "{shown}");
        assert!(shown.contains("\n  5 |      bad: 1\n"), "{shown}");
    }

    #[test]
    fn valid_yaml_is_no_syntax_error() {
        assert!(syntax_error("t.yaml", "a: [1, 2]\n").is_none());
    }
}
