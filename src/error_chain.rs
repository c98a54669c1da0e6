//! The one walk down an error's chain of causes, for the places that
//! classify an error (which reason word?) or quote it (which message?).

use std::error::Error;
use std::sync::Arc;

/// `err` and every error beneath it, outermost first. An `io::Error` is
/// followed into the error it wraps (its own `source()` skips that one),
/// and an `Arc` of an error (how some clients share theirs) into its
/// content.
pub fn walk<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e| {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io.get_ref().map(|inner| inner as &(dyn Error + 'static))
        } else if let Some(shared) = e.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
            Some(&**shared as &(dyn Error + 'static))
        } else {
            e.source()
        }
    })
}

/// The first error of type `E` in `err`'s chain.
pub fn find<'a, E: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a E> {
    walk(err).find_map(|e| e.downcast_ref::<E>())
}

/// The texts of the chain, outermost first, each part said once: a part
/// the text holds already (clients often repeat their cause's words) is
/// left out, and so is an empty one.
pub fn parts(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for e in walk(err) {
        let part = e.to_string();
        if !part.is_empty() && !parts.iter().any(|said| said.contains(&part)) {
            parts.push(part);
        }
    }
    parts
}

/// The whole chain as one line, `outer: inner: innermost`, each said once.
pub fn text(err: &(dyn Error + 'static)) -> String {
    parts(err).join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("request failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_walk_goes_into_what_an_io_error_wraps() {
        let inner = std::fmt::Error;
        let err = Outer(std::io::Error::other(inner));
        assert!(find::<std::fmt::Error>(&err).is_some());
        assert_eq!(walk(&err).count(), 3);
        // io::Error shows the error it wraps: said once.
        assert_eq!(
            text(&err),
            "request failed: an error occurred when formatting an argument"
        );
    }
}
