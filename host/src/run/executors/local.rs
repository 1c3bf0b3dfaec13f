//! Runs calls on this machine: bash, sh, expect, pwsh, rsync.

use crate::run::{ExecError, Executor, RawResult, RunCall, RunContext};

/// Runs every call on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {}

impl LocalExecutor {
    pub fn new() -> LocalExecutor {
        LocalExecutor {}
    }
}

impl Executor for LocalExecutor {
    fn execute(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError> {
        let _ = (call, ctx);
        Err(ExecError::Unavailable("not yet".into()))
    }
}
