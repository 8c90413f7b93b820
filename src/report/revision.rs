//! Which source the binary was built from, as build.rs stamped it: the git commit and whether
//! the sources (src/, bin/, build.rs, Cargo.*) differed from it. Unknown outside a checkout.

const COMMIT: &str = env!("RACEPOOL_GIT_COMMIT");
const DIRTY: &str = env!("RACEPOOL_GIT_DIRTY");

/// The full commit hash, or None when the build could not tell.
pub fn commit() -> Option<&'static str> {
    (COMMIT != "unknown").then_some(COMMIT)
}

/// Whether the sources differed from the commit, or None when the build could not tell.
pub fn dirty() -> Option<bool> {
    match DIRTY {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// For people, as `git describe --dirty` writes it: `dfbf42a`, `dfbf42a-dirty` or `unknown`.
pub fn describe(commit: Option<&str>, dirty: Option<bool>) -> String {
    match (commit, dirty) {
        (None, _) => "unknown".into(),
        (Some(c), Some(true)) => format!("{}-dirty", &c[..c.len().min(7)]),
        (Some(c), _) => c[..c.len().min(7)].into(),
    }
}

/// The tool's name as every summary records it: `racepool 0.1.0 (git dfbf42a)`.
pub fn tool() -> String {
    format!(
        "racepool {} (git {})",
        env!("CARGO_PKG_VERSION"),
        describe(commit(), dirty())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_reads_short_and_says_when_it_is_dirty_or_unknown() {
        let c = "dfbf42a0123456789abcdef0123456789abcdef0";
        assert_eq!(describe(Some(c), Some(false)), "dfbf42a");
        assert_eq!(describe(Some(c), Some(true)), "dfbf42a-dirty");
        assert_eq!(describe(None, None), "unknown");
        // The stamp is either a full hash or "unknown", never empty.
        assert!(commit().is_none_or(|c| c.len() == 40));
    }
}
