//! Stamps the git commit the binary is built from, and whether its sources differ from that
//! commit, into `RACEPOOL_GIT_COMMIT` and `RACEPOOL_GIT_DIRTY` (read by `report::revision`).
//!
//! Stamped at build time, not read from the current directory when a bench runs: a binary run
//! from elsewhere still names its own commit. Without git, or outside a git checkout of this
//! package (a crate tarball, a copy inside another repository), both say "unknown"; the build
//! never fails for it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the binary is made of: a change to any of these is a change to what it does, so these
/// (and nothing else, not results/ or docs/) decide "dirty".
const SOURCES: [&str; 5] = ["src", "bin", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    for source in SOURCES {
        println!("cargo::rerun-if-changed={source}");
    }
    let (commit, dirty) = match stamp(&root) {
        Some((commit, dirty)) => (commit, dirty.to_string()),
        None => ("unknown".to_string(), "unknown".to_string()),
    };
    println!("cargo::rustc-env=RACEPOOL_GIT_COMMIT={commit}");
    println!("cargo::rustc-env=RACEPOOL_GIT_DIRTY={dirty}");
}

/// The commit and whether the sources differ from it; None when this is not a git checkout
/// of this package or git cannot tell.
fn stamp(root: &Path) -> Option<(String, bool)> {
    let top = git(root, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != root.canonicalize().ok()? {
        return None;
    }
    // Build again when HEAD moves (a commit, a checkout): watch HEAD, the branch it names, and
    // packed-refs. Only files that exist: a missing one would rerun this script every build.
    let mut watch = vec![git(root, &["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        watch.extend(git(root, &["rev-parse", "--git-path", &branch]));
    }
    watch.extend(git(root, &["rev-parse", "--git-path", "packed-refs"]));
    for path in watch {
        if root.join(&path).exists() {
            println!("cargo::rerun-if-changed={path}");
        }
    }
    let commit = git(root, &["rev-parse", "HEAD"])?;
    let mut args = vec!["status", "--porcelain", "--untracked-files=normal", "--"];
    args.extend(SOURCES);
    let status = Command::new("git")
        .args(&args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some((commit, !status.stdout.is_empty()))
}

/// One line of a git command's output, or None when git is absent or the command fails.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (!line.is_empty()).then(|| line.to_string())
}
