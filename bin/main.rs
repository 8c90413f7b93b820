//! The `torture` binary's root. Under `cfg(loom)` (the model checks of `tests/loom.rs`) the
//! library builds only its core steps, so the binary is an empty stub there; otherwise it is
//! `torture.rs`.

#[cfg(not(loom))]
#[path = "torture.rs"]
mod torture;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    torture::main()
}

#[cfg(loom)]
fn main() {}
