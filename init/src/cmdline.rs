//! Step 3: read the kernel command line (the parser is
//! `terra_layout::BootParams::parse`, shared with the tools).

use terra_layout::BootParams;

use crate::env::Env;

/// Reads and parses the command line; problems are logged, never fatal.
pub fn read(env: &Env) -> BootParams {
    let params = match std::fs::read_to_string(&env.paths.cmdline) {
        Ok(text) => {
            let params = BootParams::parse(&text);
            log::debug!("command line: {}", text.trim());
            params
        }
        Err(e) => {
            log::warn!(
                "cannot read {}: {e}; using the defaults",
                env.paths.cmdline.display()
            );
            BootParams::default()
        }
    };
    crate::logger::configure(params.debug, params.quiet);
    for p in &params.problems {
        log::warn!("command line: {p}");
    }
    for k in &params.unknown {
        log::warn!("command line: unknown parameter {k} ignored");
    }
    params
}
