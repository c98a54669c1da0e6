//! Where each key of a YAML document sits, so that problems found after
//! decoding (cross-field rules, duplicate names, bad regexes) can name the
//! line as precisely as decoding errors do.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Maps key paths in the notation of decoding errors (`checks[2].http.url`)
/// to 1-based line numbers.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    duplicates: Vec<(String, usize)>,
}

impl LineIndex {
    /// Indexes `text`; a document that does not parse yields an empty index
    /// (the decoder reports the syntax error itself).
    pub fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return LineIndex::default();
        }
        LineIndex {
            lines: builder.lines,
            duplicates: builder.duplicates,
        }
    }

    /// The line of exactly `path`, without falling back to an ancestor.
    pub fn exact_line_of(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    /// Keys given more than once in the same mapping: the path of each
    /// repeat and its line, in document order. YAML forbids them, and a
    /// decoder filling a map would silently keep only the last one.
    pub fn duplicate_keys(&self) -> &[(String, usize)] {
        &self.duplicates
    }

    /// The line of `path`, or of its nearest ancestor that is present.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut current = path;
        loop {
            if let Some(line) = self.lines.get(current) {
                return Some(*line);
            }
            current = parent_path(current)?;
        }
    }
}

fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

enum Frame {
    Mapping {
        path: String,
        key: Option<String>,
        seen: HashSet<String>,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
    duplicates: Vec<(String, usize)>,
}

impl Builder {
    /// Called for every node; returns the node's path, or None when the node
    /// is a mapping key (recorded, not descended into).
    fn node_path(&mut self, mark: Marker, is_scalar_key_candidate: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, next_index }) => {
                let item = format!("{path}[{next_index}]");
                *next_index += 1;
                self.lines.entry(item.clone()).or_insert(mark.line());
                Some(item)
            }
            Some(Frame::Mapping { path, key, seen }) => match key.take() {
                Some(key) => Some(join(path, &key)),
                None => {
                    let key_text = is_scalar_key_candidate.unwrap_or("?").to_string();
                    let key_path = join(path, &key_text);
                    if is_scalar_key_candidate.is_some() && !seen.insert(key_text.clone()) {
                        self.duplicates.push((key_path.clone(), mark.line()));
                    }
                    self.lines.entry(key_path).or_insert(mark.line());
                    *key = Some(key_text);
                    None
                }
            },
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => {
                self.node_path(mark, Some(&value));
            }
            Event::Alias(_) => {
                self.node_path(mark, None);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key is not addressable; index it as "?".
                let path = self.node_path(mark, None).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Mapping {
                    path,
                    key: None,
                    seen: HashSet::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(mark, None).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Sequence {
                    path,
                    next_index: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
defaults:
  interval: 30s
checks:
  - name: a
    http:
      url: http://x
      expect:
        status: [200]
  - name: b
    http: {url: http://y}
";

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        let index = LineIndex::build(DOC);
        assert_eq!(index.line_of("defaults.interval"), Some(2));
        assert_eq!(index.line_of("checks[0]"), Some(4));
        assert_eq!(index.line_of("checks[0].name"), Some(4));
        assert_eq!(index.line_of("checks[0].http.expect.status"), Some(8));
        assert_eq!(index.line_of("checks[1].http.url"), Some(10));
    }

    #[test]
    fn finds_repeated_keys_in_the_same_mapping_only() {
        let index =
            LineIndex::build("checks:\n  - name: a\n    labels: {team: x, team: y}\n  - name: a\n");
        assert_eq!(
            index.duplicate_keys(),
            &[("checks[0].labels.team".to_string(), 3)]
        );
        assert_eq!(index.exact_line_of("checks[1].name"), Some(4));
        assert_eq!(index.exact_line_of("checks[1].timeout"), None);
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let index = LineIndex::build(DOC);
        assert_eq!(index.line_of("checks[0].http.expect.status[3]"), Some(8));
        assert_eq!(index.line_of("checks[1].timeout"), Some(9));
        assert_eq!(index.line_of("nowhere"), None);
    }
}
