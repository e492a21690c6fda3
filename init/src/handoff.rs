//! The handoff: what runs once the root is switched.
//!
//! `terra.init=PATH` wins; else the version's record says: `exec` a program
//! as PID 1, or `supervise` (stage 2 in this same process).

use std::convert::Infallible;

use terra_layout::record::Handoff;
use terra_layout::BootParams;

use crate::env::Env;
use crate::error::BootError;
use crate::stage2::{self, Handover};
use crate::version::Booted;

#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// argv[0] is the path.
    Exec {
        path: String,
        argv: Vec<String>,
    },
    Supervise,
}

/// Decides the handoff. Pure.
pub fn plan(params: &BootParams, handoff: &Handoff) -> Plan {
    match (&params.init, handoff) {
        (Some(init), _) => Plan::Exec {
            path: init.clone(),
            argv: vec![init.clone()],
        },
        (None, Handoff::Exec { path, args }) => {
            let mut argv = vec![path.clone()];
            argv.extend(args.iter().cloned());
            Plan::Exec {
                path: path.clone(),
                argv,
            }
        }
        (None, Handoff::Supervise) => Plan::Supervise,
    }
}

/// Hands off; returns only if exec failed.
pub fn run(env: &Env, params: &BootParams, booted: &Booted) -> Result<Infallible, BootError> {
    match plan(params, &booted.handoff) {
        Plan::Exec { path, argv } => {
            log::info!("handoff: exec {path}");
            crate::logger::restore_ratelimit();
            let source = env.kernel.exec(&path, &argv);
            Err(BootError::Handoff { path, source })
        }
        Plan::Supervise => {
            log::info!("handoff: supervise");
            crate::logger::restore_ratelimit();
            stage2::run(
                env,
                Handover {
                    version: booted.name.clone(),
                    debug: params.debug,
                    on_trial: booted.on_trial,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terra_init_wins_then_the_record_decides() {
        let exec = Handoff::Exec {
            path: "/sbin/init".into(),
            args: vec!["--x".into()],
        };
        let mut p = BootParams::default();
        assert_eq!(
            plan(&p, &exec),
            Plan::Exec {
                path: "/sbin/init".into(),
                argv: vec!["/sbin/init".into(), "--x".into()]
            }
        );
        assert_eq!(plan(&p, &Handoff::Supervise), Plan::Supervise);
        p.init = Some("/bin/sh".into());
        for h in [exec, Handoff::Supervise] {
            assert_eq!(
                plan(&p, &h),
                Plan::Exec {
                    path: "/bin/sh".into(),
                    argv: vec!["/bin/sh".into()]
                }
            );
        }
    }
}
