// Records the source revision for `vouch_build_info` and `--version`.
use std::process::Command;

fn main() {
    let revision = std::env::var("VOUCH_REVISION").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_string())
    });
    println!(
        "cargo:rustc-env=VOUCH_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=VOUCH_REVISION");
    // Where git keeps HEAD and the branches, asked of git: in a worktree
    // `.git` is a file (HEAD is under the worktree's own directory, the
    // branches under the shared one), and naming a path that does not
    // exist would rerun this script, and rebuild the library, every build.
    let paths = Command::new("git")
        .args(["rev-parse", "--path-format=absolute"])
        .args(["--git-path", "HEAD", "--git-path", "refs/heads"])
        .args(["--git-path", "packed-refs"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    for path in paths.lines().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}
