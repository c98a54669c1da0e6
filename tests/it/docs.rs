//! The documentation renders: every Markdown file of the repository goes
//! through a CommonMark parser, and an unclosed code fence or a relative
//! link (or image) to a file or heading that does not exist fails. Every
//! example config passes `vouch validate`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

/// Directories that hold no documentation of the project's own.
const SKIPPED: &[&str] = &["target", ".git", "node_modules", "corpus"];

fn files(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED.contains(&name.as_str()) {
                files(&path, extension, found);
            }
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
}

fn markdown_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    files(Path::new("."), "md", &mut found);
    found.sort();
    assert!(found.len() >= 8, "README, CONTRIBUTING, CHANGELOG, docs/");
    found
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped,
/// spaces turned into hyphens; a repeated heading gets `-1`, `-2`, ...
fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

struct Document {
    anchors: HashSet<String>,
    /// (destination, line) of every link and image.
    links: Vec<(String, usize)>,
    /// Problems with code fences, by line.
    fence_problems: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// A line that opens a fence with an info string (```` ```yaml ````) can
/// never close one: inside a code block it means the block before was
/// left open and swallowed the text after it.
fn opens_a_fence(line: &str) -> bool {
    let trimmed = line.trim_start();
    let ticks = trimmed.chars().take_while(|c| *c == '`').count();
    let tildes = trimmed.chars().take_while(|c| *c == '~').count();
    let run = ticks.max(tildes);
    run >= 3
        && trimmed[run..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric)
}

fn parse(text: &str) -> Document {
    let mut document = Document {
        anchors: HashSet::new(),
        links: Vec::new(),
        fence_problems: Vec::new(),
    };
    let mut heading: Option<String> = None;
    let mut code: Option<(String, usize, std::ops::Range<usize>)> = None;
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for (event, range) in Parser::new_ext(text, pulldown_cmark::Options::all()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => {
                heading = Some(String::new());
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let count = seen.entry(base.clone()).or_insert(0);
                let anchor = if *count == 0 {
                    base.clone()
                } else {
                    format!("{base}-{count}")
                };
                *count += 1;
                document.anchors.insert(anchor);
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
                if let Some((body, _, _)) = code.as_mut() {
                    body.push_str(&t);
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                code = Some((String::new(), line_of(text, range.start), range));
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((body, line, range)) = code.take() {
                    let source = &text[range.clone()];
                    let fence: String = source
                        .trim_start()
                        .chars()
                        .take_while(|c| *c == '`' || *c == '~')
                        .collect();
                    let closing = source.trim_end().lines().last().unwrap_or_default();
                    if source.trim_end().lines().count() < 2 || !closing.trim().starts_with(&fence)
                    {
                        document
                            .fence_problems
                            .push(format!("line {line}: a code fence is never closed"));
                    }
                    if let Some(inner) = body.lines().find(|l| opens_a_fence(l)) {
                        document.fence_problems.push(format!(
                            "line {line}: a code block swallows {inner:?}: the fence before it is not closed"
                        ));
                    }
                }
            }
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => {
                document
                    .links
                    .push((dest_url.to_string(), line_of(text, range.start)));
            }
            _ => {}
        }
    }
    document
}

fn is_external(destination: &str) -> bool {
    destination.contains("://") || destination.starts_with("mailto:")
}

#[test]
fn every_markdown_file_renders_with_closed_fences_and_working_relative_links() {
    let files = markdown_files();
    let mut parsed = std::collections::HashMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        parsed.insert(file.canonicalize().unwrap(), parse(&text));
    }
    let mut problems = Vec::new();
    for file in &files {
        let document = &parsed[&file.canonicalize().unwrap()];
        for problem in &document.fence_problems {
            problems.push(format!("{}: {problem}", file.display()));
        }
        for (destination, line) in &document.links {
            if is_external(destination) {
                continue;
            }
            let (path, fragment) = match destination.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (destination.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let Ok(target) = target.canonicalize() else {
                problems.push(format!(
                    "{}:{line}: link to {destination}: no such file",
                    file.display()
                ));
                continue;
            };
            if let (Some(fragment), Some(linked)) = (fragment, parsed.get(&target)) {
                if !linked.anchors.contains(fragment) {
                    problems.push(format!(
                        "{}:{line}: link to {destination}: no such heading",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_an_unclosed_fence_and_a_missing_heading() {
    // The README's old mistake: a yaml example left open, so the next
    // section rendered as code until the next example's closing fence.
    let broken = "# A\n\n```yaml\nx: 1\n## B\n\n```yaml\ny: 2\n```\n";
    assert_eq!(parse(broken).fence_problems.len(), 1, "swallowed fence");
    let open = "# A\n\n```sh\necho\n";
    assert_eq!(parse(open).fence_problems.len(), 1, "open to the end");
    let fine = "# A title\n\n```yaml\nx: 1\n```\n\n## `http` kind\n[a](#a-title)\n";
    let document = parse(fine);
    assert!(document.fence_problems.is_empty());
    assert!(document.anchors.contains("a-title"));
    assert!(document.anchors.contains("http-kind"));
}

#[test]
fn the_readme_is_a_landing_page_that_starts_with_the_two_commands() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(
        readme.lines().count() <= 160,
        "README.md has {} lines",
        readme.lines().count()
    );
    let first_block: Vec<&str> = readme
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap()
        .lines()
        .collect();
    assert!(first_block[0].starts_with("cargo run --release -- serve --config config/demo.yaml"));
    assert!(first_block[1].starts_with("bash scripts/test.sh"));
}

#[test]
fn every_example_config_passes_vouch_validate() {
    let mut examples = Vec::new();
    files(Path::new("examples"), "yaml", &mut examples);
    // A directory under examples/ is an overlay (examples/broxiva): its
    // vouch.yaml is a config, its other files are kustomize's.
    examples.retain(|p| {
        p.parent() == Some(Path::new("examples")) || p.file_name() == Some("vouch.yaml".as_ref())
    });
    examples.sort();
    // Every kind the config knows, so a new kind cannot be left out.
    let kinds = vouch::config::Kind::ALL.iter().map(|kind| kind.as_str());
    for kind in kinds {
        assert!(
            examples.iter().any(|p| p.ends_with(format!("{kind}.yaml"))),
            "examples/{kind}.yaml is missing"
        );
    }
    for example in &examples {
        let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["validate", "--config"])
            .arg(example)
            .env_remove("VOUCH_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vouch validate --config {}:\n{}{}",
            example.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(example).unwrap();
        assert!(
            text.starts_with('#'),
            "{} starts with a comment saying what it shows",
            example.display()
        );
    }
}
