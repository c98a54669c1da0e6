//! The container image, built here without a daemon by `scripts/image.sh`
//! (Debian's buildah) from the debug binary the tests already built, as CI
//! does: its config (user, entrypoint, labels), its files (no shell), its
//! root filesystem running `vouch --version` and `vouch validate` on the
//! baked-in demo config as the non-root user (chroot), and a push to a
//! local registry whose tag vouch's own `registry` kind then finds.
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::registry::{Auth, Registry};

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/image.sh --binary <the tests' vouch> EXTRA...`.
fn image_sh(extra: &[&str]) -> Output {
    run(Command::new("bash")
        .arg("scripts/image.sh")
        .args(["--binary", support::vouch::bin(), "--tag", "vouch:test"])
        .args(extra))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &Value) -> PathBuf {
    let digest = digest.as_str().unwrap();
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// Every file and directory under `root`, relative, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
                found.push(format!("{relative}/"));
            } else {
                found.push(relative);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_image_is_built_without_a_daemon_runs_as_non_root_and_is_pushed() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("vouch.tar");
    let registry = Registry::start_new(Auth::None);
    let binary_version = text(&run(Command::new(support::vouch::bin()).arg("--version")));
    let revision = binary_version
        .trim()
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .expect("vouch X (REVISION)")
        .to_string();
    assert_ne!(revision, "unknown");
    let reference = format!("127.0.0.1:{}/vouch:{revision}", registry.port);
    let started = std::time::Instant::now();
    image_sh(&[
        "--archive",
        archive.to_str().unwrap(),
        "--push",
        &reference,
        "--insecure",
    ]);
    eprintln!("image built and pushed in {:?}", started.elapsed());

    // The OCI layout inside the archive: index → manifest → config, layers.
    let layout = work.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout));
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&layout, &index["manifests"][0]["digest"]));
    let config = json(&blob(&layout, &manifest["config"]["digest"]));
    let settings = &config["config"];
    assert_eq!(settings["User"], "65532:65532");
    assert_eq!(
        settings["Entrypoint"],
        serde_json::json!(["/usr/local/bin/vouch"])
    );
    assert_eq!(settings["ExposedPorts"]["9847/tcp"], serde_json::json!({}));
    let labels = &settings["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        revision.as_str()
    );
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "libraries and files, then the binary");
    let sizes: Vec<u64> = layers.iter().map(|l| l["size"].as_u64().unwrap()).collect();
    eprintln!("layers (compressed bytes): {sizes:?}");

    // The root filesystem: exactly the binary, its libraries, certificates,
    // users and the demo config; no shell or other program.
    let root = work.path().join("rootfs");
    std::fs::create_dir(&root).unwrap();
    for layer in layers {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(blob(&layout, &layer["digest"]))
            .arg("-C")
            .arg(&root));
    }
    let files: Vec<String> = listing(&root)
        .into_iter()
        .filter(|f| !f.ends_with('/'))
        .collect();
    let mut expected = vec![
        "etc/group",
        "etc/nsswitch.conf",
        "etc/passwd",
        "etc/ssl/certs/ca-certificates.crt",
        "usr/local/bin/vouch",
        "usr/share/vouch/demo/demo-tls/ca.pem",
        "usr/share/vouch/demo/demo-tls/tls.crt",
        "usr/share/vouch/demo/vouch.yaml",
    ];
    let libraries: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("lib") || f.starts_with("usr/lib"))
        .collect();
    assert!(
        libraries.iter().any(|l| l.contains("libc.so")),
        "{libraries:?}"
    );
    assert!(
        libraries.iter().any(|l| l.contains("ld-linux")),
        "{libraries:?}"
    );
    expected.extend(libraries.iter().map(|l| l.as_str()));
    expected.sort();
    assert_eq!(files, expected, "the image's files");
    for name in ["sh", "bash", "dash", "busybox"] {
        assert!(
            !files.iter().any(|f| f.rsplit('/').next() == Some(name)),
            "a shell ({name}) in the image"
        );
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("vouch:x:65532:65532:"), "{passwd}");

    // The image's own files run: as the non-root user, in a chroot.
    let in_image = |args: &[&str]| {
        run(Command::new("/usr/sbin/chroot")
            .arg("--userspec=65532:65532")
            .arg(&root)
            .arg("/usr/local/bin/vouch")
            .args(args)
            .env_clear())
    };
    assert_eq!(text(&in_image(&["--version"])), binary_version);
    assert_eq!(
        text(&in_image(&[
            "validate",
            "--config",
            "/usr/share/vouch/demo/vouch.yaml"
        ])),
        "/usr/share/vouch/demo/vouch.yaml: ok, 7 checks\n"
    );

    // The pushed tag, through vouch's own registry kind: present, and a
    // tag never pushed is missing.
    let checks = support::write_config(&format!(
        "checks:\n\
         \x20 - name: pushed\n    registry: {{ url: \"{url}\", repository: vouch, tag: \"{revision}\" }}\n\
         \x20 - name: never-pushed\n    registry: {{ url: \"{url}\", repository: vouch, tag: no-such-tag }}\n",
        url = registry.url()
    ));
    let out = Command::new(support::vouch::bin())
        .args(["check", "--format", "json", "--config"])
        .arg(&checks.path)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = |name: &str| {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        (
            check["state"].as_str().unwrap().to_string(),
            check["last_run"]["reason"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(state("pushed"), ("pass".into(), "ok".into()), "{report:#}");
    assert_eq!(
        state("never-pushed"),
        ("fail".into(), "tag_missing".into()),
        "{report:#}"
    );
}

/// The final stage's lines from `FROM scratch` on, with `COPY` reduced
/// to the directory copied (the Dockerfile copies from its build stage)
/// and `ARG` defaults left out.
fn final_stage(text: &str) -> Vec<String> {
    let start = text.find("\nFROM scratch\n").expect("a FROM scratch stage");
    text[start + 1..]
        .lines()
        .take_while(|line| *line != "EOF")
        .map(|line| {
            if let Some(copy) = line.strip_prefix("COPY ") {
                let source = copy.split_whitespace().rev().nth(1).unwrap_or_default();
                let directory = source.trim_end_matches('/').rsplit('/').next();
                format!("COPY {}", directory.unwrap_or_default())
            } else if line.starts_with("ARG ") {
                line.split('=').next().unwrap().to_string()
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_the_same_image_as_the_script() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    let script = std::fs::read_to_string("scripts/image.sh").unwrap();
    let docker = final_stage(&dockerfile);
    assert!(docker.len() >= 8, "{docker:?}");
    assert_eq!(docker, final_stage(&script));
    // Its version default is the package's; the revision must be given.
    assert!(dockerfile.contains(&format!("ARG VERSION={}\n", env!("CARGO_PKG_VERSION"))));
    assert!(dockerfile.contains("test -n \"$REVISION\""));
    let ignored = std::fs::read_to_string(".dockerignore").unwrap();
    assert!(ignored.lines().any(|l| l == "target"));
}
