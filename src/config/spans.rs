//! Where each key of a YAML document sits, so that problems found after
//! decoding (cross-field rules, duplicate names, bad regexes) can name the
//! line as precisely as decoding errors do.
//!
//! This is also the first reader of every YAML text vouch loads, so it
//! guards the others: characters YAML forbids are reported on their own
//! line, and nesting deeper than [`MAX_DEPTH`] is refused here, walking the
//! events in a loop, before any recursive reader (the decoder, the YAML
//! tree) sees the text. Each node is stored once, as its parent and its own
//! key, so memory is linear in the text however deep or long the keys.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// The deepest nesting of mappings and lists accepted. Real configs need
/// fewer than ten levels; the decoder refuses beyond 128, and recursive
/// readers overflow the stack a few thousand levels down.
pub const MAX_DEPTH: usize = 64;

/// Why a YAML text was refused before decoding: a line when one applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlProblem {
    pub line: Option<usize>,
    pub message: String,
}

/// Reads a YAML file of at most `cap` bytes as UTF-8. A file that is not
/// UTF-8 is reported at the line of its first bad byte.
pub fn read_yaml(path: &Path, cap: u64) -> Result<String, YamlProblem> {
    let unlocated = |message: String| YamlProblem {
        line: None,
        message,
    };
    // Capped, and a read that never returned (a FIFO, a hung mount) makes
    // later reads fail at once instead of blocking another thread each.
    let bytes = crate::file_read::read(path, cap).map_err(|err| unlocated(err.cause()))?;
    String::from_utf8(bytes).map_err(|err| {
        let valid = err.utf8_error().valid_up_to();
        let bytes = err.as_bytes();
        let line = 1 + bytes[..valid].iter().filter(|b| **b == b'\n').count();
        let column = valid
            - bytes[..valid]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |at| at + 1);
        YamlProblem {
            line: Some(line),
            message: format!("not UTF-8 text (an invalid byte at column {})", column + 1),
        }
    })
}

/// Whether YAML allows `c` in a document (its printable set).
fn allowed_in_yaml(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}')
        || (c >= '\u{a0}' && !matches!(c, '\u{fffe}' | '\u{ffff}'))
}

/// The first character YAML forbids, on its own line.
fn screen(text: &str) -> Result<(), YamlProblem> {
    let Some((at, c)) = text.char_indices().find(|(_, c)| !allowed_in_yaml(*c)) else {
        return Ok(());
    };
    Err(YamlProblem {
        line: Some(1 + text[..at].matches('\n').count()),
        message: format!(
            "the control character U+{:04X} is not allowed in YAML",
            u32::from(c)
        ),
    })
}

/// A node of the document: a key of a mapping or an item of a list.
#[derive(Debug)]
struct Node {
    /// Index of the enclosing node; `ROOT` for top-level ones.
    parent: u32,
    /// `.key` or `[index]`, as the node appears in a path.
    segment: Box<str>,
    line: usize,
}

const ROOT: u32 = u32::MAX;

/// Maps key paths in the notation of decoding errors (`checks[2].http.url`)
/// to 1-based line numbers.
#[derive(Debug, Default)]
pub struct LineIndex {
    nodes: Vec<Node>,
    /// Hash of a node's full path → the first node with that path.
    by_path: HashMap<u64, u32>,
    hashing: RandomState,
    /// Keys repeated in the same mapping, in document order.
    duplicates: Vec<u32>,
    /// The line of the first alias (`*name`): where an alias expansion
    /// the decoder refuses as too large most likely starts.
    first_alias: Option<usize>,
}

impl LineIndex {
    /// Indexes `text`. Forbidden characters and nesting deeper than
    /// [`MAX_DEPTH`] are errors; a document that does not otherwise parse
    /// yields an empty index (the decoder reports the syntax error itself).
    pub fn build(text: &str) -> Result<Self, YamlProblem> {
        screen(text)?;
        let mut builder = Builder {
            index: LineIndex::default(),
            stack: Vec::new(),
        };
        let mut parser = Parser::new_from_str(text);
        let mut documents = 0;
        loop {
            let (event, mark) = match parser.next_token() {
                Ok(next) => next,
                // The scanner's own limit on flow nesting (`[[[[`).
                Err(err) if err.info().contains("recursion limit") => {
                    return too_deep(MAX_DEPTH, *err.marker()).map(|()| LineIndex::default())
                }
                Err(_) => return Ok(LineIndex::default()),
            };
            match event {
                Event::StreamEnd => break,
                Event::DocumentEnd => documents += 1,
                // Later documents are walked for their depth only: the
                // decoder refuses them, but reads them first.
                event if documents > 0 => builder.depth_only(event, mark)?,
                event => builder.on_event(event, mark)?,
            }
        }
        Ok(builder.index)
    }

    /// The line of exactly `path`, without falling back to an ancestor.
    pub fn exact_line_of(&self, path: &str) -> Option<usize> {
        let mut hasher = self.hashing.build_hasher();
        hasher.write(path.as_bytes());
        let node = *self.by_path.get(&hasher.finish())?;
        // A hash collision must not give another key's line.
        (self.path_of(node) == path).then(|| self.nodes[node as usize].line)
    }

    /// Keys given more than once in the same mapping: the path of each
    /// repeat and its line, in document order (the first hundred). YAML
    /// forbids them, and a decoder filling a map would silently keep only
    /// the last one.
    pub fn duplicate_keys(&self) -> Vec<(String, usize)> {
        self.duplicates
            .iter()
            .take(100)
            .map(|node| (self.path_of(*node), self.nodes[*node as usize].line))
            .collect()
    }

    /// The line of `path`, or of its nearest ancestor that is present.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut current = path;
        loop {
            if let Some(line) = self.exact_line_of(current) {
                return Some(line);
            }
            current = parent_path(current)?;
        }
    }

    /// Whether the text has an alias (`*name`) anywhere.
    pub fn has_aliases(&self) -> bool {
        self.first_alias.is_some()
    }

    /// A line for a decoder error that carries none: the first alias for
    /// `repetition limit exceeded` (alias expansion is what repeats).
    pub fn line_for_unlocated(&self, message: &str) -> Option<usize> {
        message
            .contains("repetition limit exceeded")
            .then_some(self.first_alias)
            .flatten()
    }

    fn path_of(&self, mut node: u32) -> String {
        let mut segments = Vec::new();
        while node != ROOT {
            let n = &self.nodes[node as usize];
            segments.push(&*n.segment);
            node = n.parent;
        }
        segments.into_iter().rev().collect()
    }
}

fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// An open mapping or list, with its path's hash state so that children
/// hash theirs without rebuilding the path.
struct Frame {
    node: u32,
    hasher: DefaultHasher,
    kind: FrameKind,
}

enum FrameKind {
    Mapping {
        /// The key whose value comes next, with its hash state.
        key: Option<(u32, DefaultHasher)>,
        seen: HashSet<Box<str>>,
    },
    Sequence {
        next_index: usize,
    },
    /// A mapping or list used as a key: not addressable, not indexed.
    Detached,
}

struct Builder {
    index: LineIndex,
    stack: Vec<Frame>,
}

/// What a node event means for the index.
enum Place {
    /// The node's value is a collection to open at this node.
    Value(u32, DefaultHasher),
    /// The node was a key (recorded) or is not addressable.
    None,
}

impl Builder {
    fn add(&mut self, parent: u32, segment: String, hasher: &DefaultHasher, line: usize) -> u32 {
        let id = self.index.nodes.len() as u32;
        self.index.nodes.push(Node {
            parent,
            segment: segment.into_boxed_str(),
            line,
        });
        self.index.by_path.entry(hasher.finish()).or_insert(id);
        id
    }

    /// Places a node (scalar, alias or collection start) in its parent.
    fn place(&mut self, mark: Marker, scalar: Option<&str>) -> Place {
        let line = mark.line();
        let Some(frame) = self.stack.last_mut() else {
            return Place::Value(ROOT, self.index.hashing.build_hasher());
        };
        let parent = frame.node;
        let mut hasher = frame.hasher.clone();
        let (segment, repeated) = match &mut frame.kind {
            FrameKind::Detached => return Place::None,
            FrameKind::Mapping { key, .. } if key.is_some() => {
                let (node, hasher) = key.take().expect("checked");
                return Place::Value(node, hasher);
            }
            FrameKind::Sequence { next_index } => {
                *next_index += 1;
                (format!("[{}]", *next_index - 1), false)
            }
            FrameKind::Mapping { seen, .. } => {
                let text = scalar.unwrap_or("?");
                let repeated = scalar.is_some() && !seen.insert(text.into());
                let dot = if parent == ROOT { "" } else { "." };
                (format!("{dot}{text}"), repeated)
            }
        };
        hasher.write(segment.as_bytes());
        let id = self.add(parent, segment, &hasher, line);
        match self.stack.last_mut().map(|f| &mut f.kind) {
            Some(FrameKind::Mapping { key, .. }) => {
                // A key: its value comes next and takes its place.
                *key = Some((id, hasher));
                if repeated {
                    self.index.duplicates.push(id);
                }
                Place::None
            }
            _ => Place::Value(id, hasher),
        }
    }

    fn open(&mut self, mark: Marker, mapping: bool) -> Result<(), YamlProblem> {
        too_deep(self.stack.len(), mark)?;
        let kind = |detached: bool| match (detached, mapping) {
            (true, _) => FrameKind::Detached,
            (false, true) => FrameKind::Mapping {
                key: None,
                seen: HashSet::new(),
            },
            (false, false) => FrameKind::Sequence { next_index: 0 },
        };
        let frame = match self.place(mark, None) {
            Place::Value(node, hasher) => Frame {
                node,
                hasher,
                kind: kind(false),
            },
            Place::None => Frame {
                node: ROOT,
                hasher: self.index.hashing.build_hasher(),
                kind: kind(true),
            },
        };
        self.stack.push(frame);
        Ok(())
    }

    fn on_event(&mut self, event: Event, mark: Marker) -> Result<(), YamlProblem> {
        match event {
            Event::Scalar(value, ..) => {
                self.place(mark, Some(&value));
            }
            Event::Alias(_) => {
                self.index.first_alias.get_or_insert(mark.line());
                self.place(mark, None);
            }
            Event::MappingStart(..) => self.open(mark, true)?,
            Event::SequenceStart(..) => self.open(mark, false)?,
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
        Ok(())
    }

    /// Follows a later document's nesting without indexing it.
    fn depth_only(&mut self, event: Event, mark: Marker) -> Result<(), YamlProblem> {
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                too_deep(self.stack.len(), mark)?;
                self.stack.push(Frame {
                    node: ROOT,
                    hasher: self.index.hashing.build_hasher(),
                    kind: FrameKind::Detached,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
        Ok(())
    }
}

fn too_deep(open: usize, mark: Marker) -> Result<(), YamlProblem> {
    if open < MAX_DEPTH {
        return Ok(());
    }
    Err(YamlProblem {
        line: Some(mark.line()),
        message: format!(
            "nested more than {MAX_DEPTH} levels deep (mappings and lists); a vouch config needs far fewer"
        ),
    })
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
        let index = LineIndex::build(DOC).unwrap();
        assert_eq!(index.line_of("defaults.interval"), Some(2));
        assert_eq!(index.line_of("checks[0]"), Some(4));
        assert_eq!(index.line_of("checks[0].name"), Some(4));
        assert_eq!(index.line_of("checks[0].http.expect.status"), Some(8));
        assert_eq!(index.line_of("checks[1].http.url"), Some(10));
    }

    #[test]
    fn finds_repeated_keys_in_the_same_mapping_only() {
        let index =
            LineIndex::build("checks:\n  - name: a\n    labels: {team: x, team: y}\n  - name: a\n")
                .unwrap();
        assert_eq!(
            index.duplicate_keys(),
            vec![("checks[0].labels.team".to_string(), 3)]
        );
        assert_eq!(index.exact_line_of("checks[1].name"), Some(4));
        assert_eq!(index.exact_line_of("checks[1].timeout"), None);
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let index = LineIndex::build(DOC).unwrap();
        assert_eq!(index.line_of("checks[0].http.expect.status[3]"), Some(8));
        assert_eq!(index.line_of("checks[1].timeout"), Some(9));
        assert_eq!(index.line_of("nowhere"), None);
    }

    #[test]
    fn nesting_is_refused_past_the_limit_without_recursion() {
        let nested = |depth: usize| "- ".repeat(depth) + "x\n";
        assert!(LineIndex::build(&nested(MAX_DEPTH)).is_ok());
        let err = LineIndex::build(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(
            err.message.starts_with("nested more than 64 levels"),
            "{err:?}"
        );
        // 30,000 levels in 60 KB, block and flow style: an error, not a
        // stack overflow.
        assert!(LineIndex::build(&nested(30_000)).is_err());
        let flow = "[".repeat(30_000) + &"]".repeat(30_000);
        assert!(LineIndex::build(&flow).is_err());
        let mut indented = String::new();
        for level in 0..200 {
            indented.push_str(&" ".repeat(level));
            indented.push_str("k:\n");
        }
        assert_eq!(
            LineIndex::build(&indented).unwrap_err().line,
            Some(MAX_DEPTH + 1)
        );
        // A later document is no way around it.
        let second = format!("a: 1\n---\n{}", nested(30_000));
        assert_eq!(LineIndex::build(&second).unwrap_err().line, Some(3));
    }

    #[test]
    fn memory_is_linear_in_the_text() {
        // One long key above many children: storing full paths would
        // copy the long key once per child.
        // (An implicit key is at most 1,024 characters.)
        let long = "k".repeat(1_000);
        let mut doc = format!("{long}:\n");
        for i in 0..15_000 {
            doc.push_str(&format!("  c{i}: 1\n"));
        }
        let index = LineIndex::build(&doc).unwrap();
        let stored: usize = index.nodes.iter().map(|n| n.segment.len()).sum();
        assert!(
            stored <= doc.len(),
            "{stored} bytes of keys for {}",
            doc.len()
        );
        assert_eq!(index.line_of(&format!("{long}.c14999")), Some(15_001));
    }

    #[test]
    fn forbidden_characters_and_bad_utf8_are_on_their_own_line() {
        let err = LineIndex::build("a: 1\nb: 2\nc: x\0y\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("U+0000"), "{err:?}");
        assert_eq!(LineIndex::build("a: \u{7f}\n").unwrap_err().line, Some(1));
        assert!(LineIndex::build("a: \u{e9}\u{2603}\u{1f600}\ttab\r\n").is_ok());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        std::fs::write(&path, b"a: 1\nb: caf\xe9\n").unwrap();
        let err = read_yaml(&path, 1024).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("column 7"), "{err:?}");
        std::fs::write(&path, vec![b'#'; 2048]).unwrap();
        assert_eq!(
            read_yaml(&path, 1024).unwrap_err().message,
            "larger than 1 KiB"
        );
        assert_eq!(read_yaml(&path, 4096).unwrap().len(), 2048);
    }

    #[test]
    fn the_first_alias_locates_a_repetition_error() {
        let index = LineIndex::build("a: &x [1, 2]\nb: [*x, *x]\n").unwrap();
        assert_eq!(
            index.line_for_unlocated("repetition limit exceeded"),
            Some(2)
        );
        assert_eq!(index.line_for_unlocated("something else"), None);
    }

    #[test]
    fn a_top_level_list_and_complex_keys_are_indexed_as_before() {
        let index = LineIndex::build("- a: 1\n- b:\n    c: 2\n").unwrap();
        assert_eq!(index.exact_line_of("[1].b.c"), Some(3));
        let index = LineIndex::build("? [x]\n: v\nk: 1\n").unwrap();
        assert_eq!(index.exact_line_of("k"), Some(3));
        assert_eq!(index.exact_line_of("?"), Some(1));
    }
}
