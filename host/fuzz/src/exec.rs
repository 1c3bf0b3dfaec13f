//! The fuzzing executor: answers each Run call from the input's plan, or
//! with a fresh generated response the first time a call is seen, and
//! records what it answered, so the run can be written as a responses file
//! (the `--responses` format of [`ScriptedExecutor`]) that answers the same.
//!
//! Calls are told apart by function and resource (a call whose command is
//! a resource's text) or by their command text (inline commands; the
//! source directory for `RunSync`): the same call always gets the same
//! answer within one run, as it does from a responses file.
//!
//! A planned call that hangs ends the run at once as its deadline would: a
//! hanging call returns only when the deadline passes, and the hook is then
//! stopped as a time limit with nothing more to run, so waiting for the
//! deadline would only leave a core idle. A responses file (replaying a
//! finding) hangs for real, as it does for `run-hook`.

use std::sync::{Arc, Mutex};

use lunabox_run::executors::scripted::{Match, Response, ScriptedExecutor};
use lunabox_run::{ExecError, Executor, RawResult, RunCall, RunContext, RunFunction, resource_of};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::respond;

/// Which call a response answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey {
    /// The Run function called.
    pub function: RunFunction,
    /// The resource whose text is the command.
    pub resource: Option<String>,
    /// The inline command's text (the source directory for `RunSync`);
    /// empty for a resource.
    pub text: String,
}

impl CallKey {
    /// The key of `call`.
    pub fn of(call: &RunCall, ctx: &RunContext) -> CallKey {
        let resource = call
            .command
            .as_deref()
            .and_then(|c| resource_of(c, &ctx.resources));
        let text = match &resource {
            Some(_) => String::new(),
            None => call
                .command
                .clone()
                .or_else(|| call.source_directory.clone())
                .unwrap_or_default(),
        };
        CallKey {
            function: call.function,
            resource,
            text,
        }
    }

    /// The responses file's `match` for this call.
    pub fn to_match(&self) -> Match {
        Match {
            function: Some(self.function),
            resource: self.resource.clone(),
            command_contains: match &self.resource {
                Some(_) => None,
                None if self.text.is_empty() => None,
                None => Some(self.text.clone()),
            },
            ..Match::default()
        }
    }
}

/// One planned answer.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Which call (function and command) it answers.
    pub key: CallKey,
    /// The answer given.
    pub response: Response,
    /// The call's `outputSchema` when it was last seen (for mutations).
    pub schema: Option<Value>,
}

/// One call that reached the executor, and what it was answered.
#[derive(Debug, Clone)]
pub struct Executed {
    /// Which call (function and command) it answers.
    pub key: CallKey,
    /// The command's text.
    pub command: Option<String>,
    /// The answer given.
    pub response: Response,
}

impl Executed {
    /// The answer makes the call fail (non-zero exit, or a document the
    /// call's schema may reject), or never comes.
    pub fn may_fail(&self) -> bool {
        self.response.exit_code != 0 || self.response.hang
    }
}

/// A responses file ordered so that the first matching entry is the
/// call's own: resources first, then inline commands longest first (an
/// entry matches by substring).
pub fn scripted(plan: &[Planned], default: Option<Response>) -> ScriptedExecutor {
    let mut entries: Vec<&Planned> = plan.iter().collect();
    entries.sort_by(|a, b| {
        let rank = |p: &Planned| (p.key.resource.is_none(), usize::MAX - p.key.text.len());
        rank(a).cmp(&rank(b)).then_with(|| {
            (a.key.function.name(), &a.key.resource, &a.key.text).cmp(&(
                b.key.function.name(),
                &b.key.resource,
                &b.key.text,
            ))
        })
    });
    ScriptedExecutor::new(
        entries
            .into_iter()
            .map(|p| (p.key.to_match(), p.response.clone()))
            .collect(),
        default,
    )
}

enum Answers {
    /// The plan, and fresh responses for calls it lacks.
    Fuzz {
        plan: Vec<Planned>,
        rng: Box<StdRng>,
        dict: Arc<Vec<String>>,
    },
    /// A responses file, as `run-hook --responses` reads it.
    Scripted(ScriptedExecutor),
}

/// The executor of one fuzzing run.
pub struct FuzzExecutor {
    answers: Mutex<Answers>,
    executed: Mutex<Vec<Executed>>,
}

impl FuzzExecutor {
    /// Answer from `plan`; a call it lacks gets a fresh response made with
    /// a generator seeded by `seed` (and is added to the plan).
    /// `dict`: words of the hook's script, for the documents made.
    pub fn fuzz(plan: Vec<Planned>, seed: u64, dict: Arc<Vec<String>>) -> FuzzExecutor {
        FuzzExecutor {
            answers: Mutex::new(Answers::Fuzz {
                plan,
                rng: Box::new(StdRng::seed_from_u64(seed)),
                dict,
            }),
            executed: Mutex::new(Vec::new()),
        }
    }

    /// Answer exactly as `scripted` does, recording.
    pub fn scripted(scripted: ScriptedExecutor) -> FuzzExecutor {
        FuzzExecutor {
            answers: Mutex::new(Answers::Scripted(scripted)),
            executed: Mutex::new(Vec::new()),
        }
    }

    /// The plan as it ended (every call answered, in first-seen order),
    /// and the calls answered, in order.
    pub fn finish(self) -> (Vec<Planned>, Vec<Executed>) {
        let executed = self
            .executed
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let plan = match self.answers.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Answers::Fuzz { plan, .. } => plan,
            Answers::Scripted(_) => Vec::new(),
        };
        (plan, executed)
    }
}

impl Executor for FuzzExecutor {
    fn execute(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError> {
        let key = CallKey::of(call, ctx);
        let (response, fuzzing) = {
            let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
            let fuzzing = matches!(*answers, Answers::Fuzz { .. });
            let response = match &mut *answers {
                Answers::Fuzz { plan, rng, dict } => match plan.iter_mut().find(|p| p.key == key) {
                    Some(p) => {
                        p.schema = call.output_schema.clone();
                        p.response.clone()
                    }
                    None => {
                        let r = respond::fresh(call.output_schema.as_ref(), rng, dict);
                        plan.push(Planned {
                            key: key.clone(),
                            response: r.clone(),
                            schema: call.output_schema.clone(),
                        });
                        r
                    }
                },
                Answers::Scripted(s) => match s.response_for(call, ctx) {
                    Some(r) => r.clone(),
                    None => return s.execute(call, ctx),
                },
            };
            (response, fuzzing)
        };
        self.executed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Executed {
                key,
                command: call.command.clone(),
                response: response.clone(),
            });
        if fuzzing && response.hang {
            // What the hang answers once the deadline comes (see above).
            return Err(ExecError::Deadline {
                stdout: String::new(),
                stderr: String::new(),
            });
        }
        response.answer(ctx)
    }
}
