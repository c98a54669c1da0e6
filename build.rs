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
    // `.git` is a file, and naming a path that does not exist would rerun
    // this script, and rebuild the library, on every build.
    if let Some(dir) = git_path("--git-dir") {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let Some(common) = git_path("--git-common-dir") {
        for refs in ["refs/heads", "packed-refs"] {
            if std::path::Path::new(&common).join(refs).exists() {
                println!("cargo:rerun-if-changed={common}/{refs}");
            }
        }
    }
}

/// A path `git rev-parse --path-format=absolute ARG` prints, if git runs.
fn git_path(arg: &str) -> Option<String> {
    Command::new("git")
        .args(["rev-parse", "--path-format=absolute", arg])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
}
