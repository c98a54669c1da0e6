//! The config file as read: decoded, located, and shown back with
//! secrets redacted.

use std::path::{Path, PathBuf};

use super::problem::{ConfigError, LocatedProblem, Problem};
use super::spans::{self, LineIndex};
use super::{hints, pieces, syntax, ConfigFile};
use crate::secret::SecretResolver;

/// The largest config file read: ten thousand checks fit in a few MiB.
pub const MAX_CONFIG_BYTES: u64 = 32 << 20;

/// A decoded config file with the means to locate its keys.
pub struct SourcedConfig {
    pub file: ConfigFile,
    pub origin: String,
    /// Directory relative paths in the config (CA files, secret files) are
    /// resolved against.
    pub base_dir: PathBuf,
    lines: LineIndex,
    /// The file as a YAML tree, for showing a check's own config.
    tree: serde_yaml_ng::Value,
    /// The number in the file of each of `file.checks`, when checks that
    /// did not decode were left out (None: the same numbers).
    numbering: Option<Vec<usize>>,
}

/// The directory of a config file, for its relative paths.
fn base_dir_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl SourcedConfig {
    /// Reads and decodes `path`. The origin in messages is the path as given.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = spans::read_yaml(path, MAX_CONFIG_BYTES).map_err(|err| {
            ConfigError::single(
                &origin,
                err.line,
                "",
                format!("cannot read config: {}", err.message),
            )
        })?;
        Self::parse(&text, &origin, base_dir_of(path))
    }

    pub fn parse(text: &str, origin: &str, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let (config, problems) = Self::parse_lenient(text, origin, base_dir)?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Like [`SourcedConfig::load`], but a file whose checks do not all
    /// decode still gives the checks that do, with the problems of the
    /// others, so the rules spanning fields can look at the rest.
    pub fn load_lenient(path: &Path) -> Result<(Self, Vec<LocatedProblem>), ConfigError> {
        let origin = path.display().to_string();
        let text = spans::read_yaml(path, MAX_CONFIG_BYTES).map_err(|err| {
            ConfigError::single(
                &origin,
                err.line,
                "",
                format!("cannot read config: {}", err.message),
            )
        })?;
        Self::parse_lenient(&text, &origin, base_dir_of(path))
    }

    /// Decodes `text`; see [`SourcedConfig::load_lenient`].
    pub fn parse_lenient(
        text: &str,
        origin: &str,
        base_dir: PathBuf,
    ) -> Result<(Self, Vec<LocatedProblem>), ConfigError> {
        let lines = LineIndex::build(text)
            .map_err(|err| ConfigError::single(origin, err.line, "", err.message))?;
        // Repeated keys first: the decoder either rejects them without
        // naming the repeat's line (struct fields) or keeps only the last
        // one (maps such as `labels`), and the index knows every one.
        let repeated: Vec<LocatedProblem> = lines
            .duplicate_keys()
            .iter()
            .map(|(path, line)| LocatedProblem {
                origin: origin.to_string(),
                line: Some(*line),
                path: path.clone(),
                message: match lines.exact_line_of(path) {
                    Some(first) => format!("duplicate key (first given on line {first})"),
                    None => "duplicate key".to_string(),
                },
            })
            .collect();
        if !repeated.is_empty() {
            return Err(ConfigError { problems: repeated });
        }
        let whole = match serde_yaml_ng::from_str::<ConfigFile>(text) {
            Ok(file) => {
                let config = SourcedConfig {
                    file,
                    origin: origin.to_string(),
                    base_dir,
                    lines,
                    tree: serde_yaml_ng::from_str(text).unwrap_or_default(),
                    numbering: None,
                };
                return Ok((config, Vec::new()));
            }
            Err(err) => err,
        };
        if let Some(syntax) = syntax::syntax_error(origin, text) {
            return Err(syntax);
        }
        let decoded = pieces::decode_in_pieces(text, origin, &lines, &whole)?;
        let config = SourcedConfig {
            file: decoded.file,
            origin: origin.to_string(),
            base_dir,
            lines,
            tree: serde_yaml_ng::from_str(&decoded.text).unwrap_or_default(),
            numbering: Some(decoded.numbering),
        };
        Ok((config, decoded.problems))
    }

    /// Attaches file and line to problems found after decoding, in the
    /// order of the file (problems with environment variables, which have
    /// no line, first).
    pub fn locate(&self, problems: Vec<Problem>) -> ConfigError {
        let mut problems: Vec<LocatedProblem> = problems
            .into_iter()
            .map(|p| {
                let from_env = p.path.starts_with('$');
                let path = self.renumber(p.path);
                LocatedProblem {
                    origin: if from_env {
                        ENVIRONMENT_ORIGIN.to_string()
                    } else {
                        self.origin.clone()
                    },
                    line: if from_env {
                        None
                    } else {
                        self.lines.line_of(&path)
                    },
                    path,
                    message: p.message,
                }
            })
            .collect();
        problems.sort_by_key(|p| p.line);
        ConfigError { problems }
    }

    /// A config without checks, which `vouch validate` refuses: it would
    /// verify nothing and pass every gate.
    pub fn no_checks(&self) -> Option<LocatedProblem> {
        self.file.checks.is_empty().then(|| LocatedProblem {
            origin: self.origin.clone(),
            line: self.lines.exact_line_of("checks"),
            path: "checks".to_string(),
            message: "no checks given: add at least one (examples/ has one of each kind)"
                .to_string(),
        })
    }

    /// Warnings for `*_env` references to variables `is_set` says are not
    /// set: the check would fail when it runs. Only the variable's name is
    /// shown, never a value.
    pub fn unset_env_references(&self, is_set: impl Fn(&str) -> bool) -> Vec<LocatedProblem> {
        let mut found = Vec::new();
        env_references(&self.tree, String::new(), &mut found);
        found
            .into_iter()
            .filter(|(_, variable)| !is_set(variable))
            .map(|(path, variable)| {
                let path = self.renumber(path);
                LocatedProblem {
                    origin: self.origin.clone(),
                    line: self.lines.line_of(&path),
                    message: format!(
                        "warning: ${variable} is not set here; the check fails until it is set where vouch runs"
                    ),
                    path,
                }
            })
            .collect()
    }

    /// `checks[i]…` of the decoded checks as the check's number in the file.
    fn renumber(&self, path: String) -> String {
        let Some(numbering) = &self.numbering else {
            return path;
        };
        let Some((index, rest)) = path
            .strip_prefix("checks[")
            .and_then(|tail| tail.split_once(']'))
        else {
            return path;
        };
        match index.parse::<usize>().ok().and_then(|i| numbering.get(i)) {
            Some(number) => format!("checks[{number}]{rest}"),
            None => path,
        }
    }

    /// The `checks[index]` block as YAML, with values of secret-looking keys
    /// replaced by `[redacted]` (references such as `*_file` and `*_env`
    /// are kept: they name where a secret is, not what it is).
    pub fn check_yaml(&self, index: usize) -> String {
        let mut block = self.tree["checks"][index].clone();
        redact(&mut block, false);
        serde_yaml_ng::to_string(&block).unwrap_or_default()
    }

    /// The `checks[index]` block as written, secrets included: only for
    /// comparing configs, never for showing.
    pub fn check_yaml_unredacted(&self, index: usize) -> String {
        serde_yaml_ng::to_string(&self.tree["checks"][index]).unwrap_or_default()
    }

    /// The resolver of this config's secret references (files relative
    /// to the config's directory).
    pub fn secrets(&self) -> SecretResolver {
        SecretResolver::new(self.base_dir.clone())
    }
}

/// Every `KEY_env: NAME` below `value`: its path and the variable's name.
fn env_references(value: &serde_yaml_ng::Value, at: String, found: &mut Vec<(String, String)>) {
    match value {
        serde_yaml_ng::Value::Mapping(map) => {
            for (key, child) in map {
                let Some(key) = key.as_str() else { continue };
                let path = if at.is_empty() {
                    key.to_string()
                } else {
                    format!("{at}.{key}")
                };
                match child.as_str() {
                    Some(variable) if key.ends_with("_env") => {
                        found.push((path, variable.to_string()))
                    }
                    _ => env_references(child, path, found),
                }
            }
        }
        serde_yaml_ng::Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                env_references(item, format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Replaces values that may be secrets: under keys naming a password,
/// token, secret, key or credential (unless the key is a `_file`/`_env`
/// reference), and header values of credential-looking headers.
fn redact(value: &mut serde_yaml_ng::Value, in_headers: bool) {
    const SENSITIVE: [&str; 7] = [
        "password",
        "token",
        "secret",
        "key",
        "credential",
        "auth",
        "cookie",
    ];
    match value {
        serde_yaml_ng::Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let name = key.as_str().unwrap_or_default().to_ascii_lowercase();
                let reference = name.ends_with("_file") || name.ends_with("_env");
                let sensitive = SENSITIVE.iter().any(|word| name.contains(word));
                if sensitive && !reference && !in_headers && child.is_sequence() {
                    // A list under such a key (`secret_age.secrets`): its
                    // mappings are judged key by key, its bare values hidden.
                    if let serde_yaml_ng::Value::Sequence(items) = child {
                        for item in items.iter_mut() {
                            if item.is_mapping() {
                                redact(item, false);
                            } else {
                                *item = serde_yaml_ng::Value::String("[redacted]".into());
                            }
                        }
                    }
                } else if sensitive && !reference && (in_headers || !child.is_mapping()) {
                    *child = serde_yaml_ng::Value::String("[redacted]".into());
                } else {
                    redact(child, name == "headers");
                }
            }
        }
        serde_yaml_ng::Value::Sequence(items) => items.iter_mut().for_each(|v| redact(v, false)),
        _ => {}
    }
}

/// The origin of problems with environment overrides (`$VOUCH_...`), which
/// are not in the file.
pub const ENVIRONMENT_ORIGIN: &str = "environment";

/// Turns a decoder error into `file:line: path: message`. The decoder puts
/// the path in front of its message and the position inside it; the line
/// is moved to the front to match every other problem.
///
/// The decoder's position is where it noticed the problem: for an unknown
/// field that is the key itself, but for a missing field or a mapping of
/// the wrong type it is the first line *inside* the block. The line of the
/// key named by the path is used instead whenever the index has it.
pub(crate) fn decode_error(
    origin: &str,
    err: &serde_yaml_ng::Error,
    lines: &LineIndex,
) -> ConfigError {
    decode_error_in(origin, err, lines, None)
}

/// [`decode_error`] for a vouch config (`text`, or the piece of it that
/// was decoded): an unknown key also gets the block it belongs in.
pub(crate) fn decode_config_error(
    origin: &str,
    err: &serde_yaml_ng::Error,
    lines: &LineIndex,
    text: &str,
) -> ConfigError {
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap_or_default();
    decode_error_in(origin, err, lines, Some(&tree))
}

fn decode_error_in(
    origin: &str,
    err: &serde_yaml_ng::Error,
    lines: &LineIndex,
    config: Option<&serde_yaml_ng::Value>,
) -> ConfigError {
    let mut full = err.to_string();
    let location = err.location();
    if let Some(location) = &location {
        // Remove only the position the line number stands for; a syntax
        // error's second position ("while parsing a flow mapping at line 3
        // column 11") is where the construct began and stays useful.
        let position = format!(" at line {} column {}", location.line(), location.column());
        if let Some(at) = full.find(&position) {
            full.replace_range(at..at + position.len(), "");
        }
    }
    let (path, message) = split_decoder_path(&full);
    // An unknown field is reported at its parent's path, with the key in
    // the message; the decoder's position is the key's own line already.
    if message.starts_with("unknown field") {
        return ConfigError::single(
            origin,
            location.map(|l| l.line()),
            path,
            hints::unknown_field(path, &humanize_decoder_message(message), config),
        );
    }
    let line = if path.is_empty() {
        None
    } else {
        lines.exact_line_of(path)
    }
    .or(location.map(|l| l.line()))
    .or_else(|| lines.line_for_unlocated(message));
    ConfigError::single(
        origin,
        line,
        path,
        hints::unknown_variant(&humanize_decoder_message(message)),
    )
}

/// Replaces the decoder's Rust vocabulary (`expected struct HttpConfig`,
/// `expected usize`) with the words of the config reference.
fn humanize_decoder_message(message: &str) -> String {
    static RUST_TYPES: std::sync::LazyLock<[(regex::Regex, &'static str); 2]> =
        std::sync::LazyLock::new(|| {
            [
                (
                    regex::Regex::new(r"expected struct [A-Za-z0-9_]+").expect("valid regex"),
                    "expected a mapping",
                ),
                (
                    regex::Regex::new(r"expected (?:u8|u16|u32|u64|usize)\b").expect("valid regex"),
                    "expected a whole number of at least 0",
                ),
            ]
        });
    let mut text = message.to_string();
    for (pattern, replacement) in RUST_TYPES.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text
}

/// Splits `checks[0].http: unknown field ...` into path and message when
/// the text before the first `: ` looks like a key path.
fn split_decoder_path(message: &str) -> (&str, &str) {
    if let Some((head, tail)) = message.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_alphanumeric() || "_-.[]?".contains(c));
        if looks_like_path {
            return (head, tail);
        }
    }
    ("", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SourcedConfig, ConfigError> {
        SourcedConfig::parse(text, "t.yaml", PathBuf::from("."))
    }

    #[test]
    fn decoder_errors_name_file_line_and_path() {
        let err = parse("checks:\n  - name: a\n    http:\n      url: http://x\n      bogus: 1\n")
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.starts_with("t.yaml:5: checks[0].http: unknown field `bogus`"),
            "{text}"
        );
    }

    #[test]
    fn lists_under_secret_looking_keys_show_names_but_hide_bare_values() {
        let mut block: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "secret_age:\n  secrets:\n    - { name: jwt-secret, max_age: 90d }\n  tokens: [hunter2]\n  password: hunter3\n",
        )
        .unwrap();
        redact(&mut block, false);
        let shown = serde_yaml_ng::to_string(&block).unwrap();
        assert!(shown.contains("name: jwt-secret"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
    }
}
