//! Servers from the npm registry (Azurite, s3rver): `scripts/test.sh`
//! installs them when missing into `test-tools/` of the cargo target
//! directory, outside the repository; a command of the same name on PATH
//! wins.

use std::path::PathBuf;

/// The directory npm installs the test tools into: `<target>/test-tools`.
pub fn prefix() -> PathBuf {
    // The vouch binary is `<target>/debug/vouch`.
    PathBuf::from(super::vouch::bin())
        .ancestors()
        .nth(2)
        .expect("the target directory")
        .join("test-tools")
}

/// The path of the npm command `name` (`azurite-blob`, `s3rver`).
pub fn command(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }) {
        return path;
    }
    let installed = prefix().join("node_modules/.bin").join(name);
    assert!(
        installed.exists(),
        "{name} is not installed: run scripts/test.sh, or `npm install --prefix {} azurite s3rver`",
        prefix().display()
    );
    installed
}
