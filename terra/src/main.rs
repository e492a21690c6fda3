//! The `terra` command. Everything is in the library; this binary stops at
//! no crash point, whatever the environment says.

use std::sync::Arc;

fn main() -> std::process::ExitCode {
    terra::cmd::main(Arc::new(terra::hooks::NoHooks))
}
