//! One fuzzing input (the context a hook sees and the plan of Run-call
//! answers) and how inputs are made and mutated for one hook.

use lunabox_sandbox::hook::{HookContext, HookId, Toolkit};
use lunabox_toolkit::HookGroup;
use lunabox_toolkit::hook::catalog::{Global, HookSpec, Returns, UpgradeTarget};
use lunabox_toolkit::hook::globals::parameters_schema;
use lunabox_toolkit::schema::{Budget, Schema};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Value, json};

use crate::exec::Planned;
use crate::respond;
use crate::values::{Canaries, EDGE_STRINGS, Gen, Style};

/// What one run of a hook is given.
#[derive(Debug, Clone)]
pub struct Input {
    /// The context file's object: `parameters`, `config`, `repository`,
    /// `source`, `remote`, `snapshotJson` (the parts the hook sees).
    pub context: Map<String, Value>,
    /// The answers to its Run calls (others are made fresh).
    pub plan: Vec<Planned>,
    /// Seeds the fresh answers.
    pub seed: u64,
    /// The canaries in `context`.
    pub canaries: Canaries,
}

impl Input {
    /// The hook context of this input.
    pub fn hook_context(&self) -> HookContext {
        let get = |k: &str| self.context.get(k).cloned();
        HookContext {
            parameters: get("parameters"),
            config: get("config"),
            repository: get("repository"),
            source: get("source"),
            remote: get("remote"),
            snapshot_json: self.context.get("snapshotJson").map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            }),
        }
    }

    /// Some answer in the plan hangs.
    pub fn hangs(&self) -> bool {
        self.plan.iter().any(|p| p.response.hang)
    }
}

/// The schemas one hook's inputs are made from.
pub struct Shapes {
    /// What the hook's kind sees and returns.
    pub spec: &'static HookSpec,
    parameters: Option<Value>,
    config: Option<Value>,
    repository: Option<Value>,
    snapshot: Option<Value>,
    parameters_check: Option<Schema>,
    config_check: Option<Schema>,
    repository_check: Option<Schema>,
    /// The context given with `--context` (its parts are used as given in
    /// the first input, and source and remote always).
    base: Map<String, Value>,
    /// Words of the hook's script.
    pub dict: std::sync::Arc<Vec<String>>,
}

fn upgrade_schema(toolkit: &Toolkit, target: UpgradeTarget) -> Option<Value> {
    match target {
        UpgradeTarget::Snapshot => toolkit.snapshot_schema().cloned(),
        UpgradeTarget::VirtualParameters => toolkit.virtual_parameters_schema().cloned(),
        UpgradeTarget::LinkedParameters => toolkit.linked_parameters_schema().cloned(),
        UpgradeTarget::SourceConfig => toolkit.source_config_schema().cloned(),
    }
}

/// The `source` a hook of `group` gets when the context gives none.
fn default_source(group: HookGroup) -> Value {
    match group {
        HookGroup::Staged => json!({
            "environment": "source-env", "environmentUser": "source-user", "host": "source-host",
            "stagingEnvironment": "staging-env", "stagingEnvironmentUser": "staging-user",
            "stagingHost": "staging-host", "dataDirectory": "/mnt/provision/staging data",
            "guid": "8e2f0c1a-0000-4000-8000-000000000001"
        }),
        _ => json!({
            "environment": "target-env", "environmentUser": "target-user", "host": "target-host",
            "dataDirectory": "/mnt/provision/vdb data",
            "guid": "8e2f0c1a-0000-4000-8000-000000000002"
        }),
    }
}

impl Shapes {
    /// The shapes of `hook`'s inputs.
    pub fn new(
        toolkit: &Toolkit,
        spec: &'static HookSpec,
        hook: &HookId,
        base: Map<String, Value>,
    ) -> Shapes {
        let dict = toolkit
            .script(hook)
            .map(|s| crate::values::dictionary(&lunabox_toolkit::model::lua_source(s)))
            .unwrap_or_default();
        let parameters = match (hook.group, spec.returns) {
            (HookGroup::Upgrade, Returns::Upgraded(t)) => upgrade_schema(toolkit, t),
            (g, _) => parameters_schema(toolkit, g).map(|(_, s)| s.clone()),
        };
        let config = toolkit.source_config_schema().cloned();
        let repository = toolkit.repository_schema().cloned();
        let compile = |s: &Option<Value>| s.as_ref().and_then(|s| Schema::compile(s).ok());
        Shapes {
            spec,
            parameters_check: compile(&parameters),
            config_check: compile(&config),
            repository_check: compile(&repository),
            parameters,
            config,
            repository,
            snapshot: toolkit.snapshot_schema().cloned(),
            base,
            dict: std::sync::Arc::new(dict),
        }
    }

    /// The first input: the given context, plain values for the rest.
    pub fn first(&self, seed: u64, rng: &mut StdRng) -> Input {
        let mut input = Input {
            context: Map::new(),
            plan: Vec::new(),
            seed,
            canaries: Canaries::default(),
        };
        for part in self.parts() {
            let v = match self.base.get(part) {
                Some(v) => Canaries::rebuild(v, part, &mut input.canaries),
                None => match self.make(part, Style::Plain, rng, &mut input.canaries) {
                    Some(v) => v,
                    None => continue,
                },
            };
            input.context.insert(part.to_string(), v);
        }
        input
    }

    /// A new input, every part generated.
    pub fn fresh(&self, seed: u64, rng: &mut StdRng) -> Input {
        let mut input = Input {
            context: Map::new(),
            plan: Vec::new(),
            seed,
            canaries: Canaries::default(),
        };
        for part in self.parts() {
            let style = if rng.random_bool(0.2) {
                Style::Plain
            } else {
                Style::Wild
            };
            if let Some(v) = self.make(part, style, rng, &mut input.canaries) {
                input.context.insert(part.to_string(), v);
            }
        }
        input
    }

    /// The context parts the hook sees.
    fn parts(&self) -> Vec<&'static str> {
        let spec = self.spec;
        let mut out = Vec::new();
        for (g, name) in [
            (Global::Parameters, "parameters"),
            (Global::Config, "config"),
            (Global::Repository, "repository"),
            (Global::Source, "source"),
            (Global::Remote, "remote"),
            (Global::SnapshotJson, "snapshotJson"),
        ] {
            if spec.sees(g) {
                out.push(name);
            }
        }
        out
    }

    /// A value for one part (`None`: leave it out).
    fn make(
        &self,
        part: &str,
        style: Style,
        rng: &mut StdRng,
        canaries: &mut Canaries,
    ) -> Option<Value> {
        let dict = self.dict.as_slice();
        let mut gen_from = |schema: &Option<Value>, with_canaries: bool, rng: &mut StdRng| {
            let mut g = Gen {
                rng,
                canaries: &mut *canaries,
                style,
                with_canaries,
                dict,
            };
            match schema {
                Some(s) => g.value(s, s, part),
                None => json!({}),
            }
        };
        match part {
            "parameters" => Some(gen_from(&self.parameters, true, rng)),
            "config" => {
                // configure/reconfigure/initialize make the config: it may
                // be absent.
                if self.spec.returns == Returns::SourceConfig
                    && style == Style::Wild
                    && rng.random_bool(0.2)
                {
                    return None;
                }
                Some(self.valid_or_plain(&self.config, &self.config_check, gen_from(&self.config, true, rng)))
            }
            "repository" => Some(self.valid_or_plain(
                &self.repository,
                &self.repository_check,
                gen_from(&self.repository, true, rng),
            )),
            "snapshotJson" => {
                let v = match style {
                    Style::Wild if rng.random_bool(0.3) => json!({}),
                    _ => gen_from(&self.snapshot, false, rng),
                };
                Some(Value::String(v.to_string()))
            }
            "source" => Some(
                self.base
                    .get("source")
                    .cloned()
                    .unwrap_or_else(|| default_source(self.spec.group)),
            ),
            "remote" => Some(self.base.get("remote").cloned().unwrap_or_else(|| {
                json!({"environment": "remote-env", "environmentUser": "remote-user", "host": "remote-host"})
            })),
            _ => None,
        }
    }

    /// `v` when valid against the part's schema (what discovery would have
    /// stored), else the schema's plain value.
    fn valid_or_plain(&self, schema: &Option<Value>, check: &Option<Schema>, v: Value) -> Value {
        if valid(check, &v) {
            return v;
        }
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(0);
        let mut c = Canaries::default();
        let plain = match schema {
            Some(s) => Gen {
                rng: &mut rng,
                canaries: &mut c,
                style: Style::Plain,
                with_canaries: false,
                dict: &[],
            }
            .value(s, s, "plain"),
            None => json!({}),
        };
        if valid(check, &plain) { plain } else { v }
    }

    /// Whether the input's config and repository are valid against their
    /// schemas (as discovery would have stored them).
    pub fn context_valid(&self, input: &Input) -> bool {
        let ok = |part: &str, check: &Option<Schema>| {
            input.context.get(part).is_none_or(|v| valid(check, v))
        };
        ok("config", &self.config_check) && ok("repository", &self.repository_check)
    }

    /// A mutation of `input`.
    pub fn mutate(&self, input: &Input, rng: &mut StdRng) -> Input {
        let mut out = input.clone();
        let rounds = if rng.random_bool(0.3) { 2 } else { 1 };
        for _ in 0..rounds {
            match rng.random_range(0..10) {
                0..=3 if !out.plan.is_empty() => {
                    let i = rng.random_range(0..out.plan.len());
                    let p = &mut out.plan[i];
                    respond::mutate(&mut p.response, p.schema.as_ref(), rng, true, &self.dict);
                }
                4 if !out.plan.is_empty() => {
                    let i = rng.random_range(0..out.plan.len());
                    out.plan.remove(i);
                }
                5 => out.seed = rng.random(),
                6 => {
                    let parts = self.parts();
                    let part = *parts.choose(rng).unwrap_or(&"parameters");
                    if part != "source" && part != "remote" {
                        let style = if rng.random_bool(0.2) {
                            Style::Plain
                        } else {
                            Style::Wild
                        };
                        match self.make(part, style, rng, &mut out.canaries) {
                            Some(v) => out.context.insert(part.to_string(), v),
                            None => out.context.remove(part),
                        };
                    }
                }
                _ => self.mutate_leaf(&mut out, rng),
            }
        }
        out
    }

    /// Change one value inside parameters, config or repository (kept
    /// valid against the schema for config and repository).
    fn mutate_leaf(&self, input: &mut Input, rng: &mut StdRng) {
        let parts: Vec<&str> = ["parameters", "config", "repository"]
            .into_iter()
            .filter(|p| input.context.get(*p).is_some_and(Value::is_object))
            .collect();
        let Some(part) = parts.choose(rng).copied() else {
            return;
        };
        for _ in 0..4 {
            let mut candidate = input.context[part].clone();
            let mut leaves = Vec::new();
            leaves_of(&candidate, String::new(), &mut leaves);
            let Some(at) = leaves.choose(rng).cloned() else {
                return;
            };
            let path = format!("{part}{}", at.replace('/', "."));
            let Some(node) = candidate.pointer_mut(&at) else {
                return;
            };
            *node = match node {
                Value::String(_) => {
                    let edge = *EDGE_STRINGS.choose(rng).expect("not empty");
                    if rng.random_bool(0.8) {
                        Value::String(format!("{edge}{}", input.canaries.token(&path)))
                    } else {
                        Value::String(edge.to_string())
                    }
                }
                Value::Number(_) => [
                    json!(0),
                    json!(-1),
                    json!(1),
                    json!(65536),
                    json!(i64::MAX),
                    json!(2.5),
                ]
                .choose(rng)
                .expect("not empty")
                .clone(),
                Value::Bool(b) => Value::Bool(!*b),
                Value::Array(_) => json!([]),
                _ => Value::Null,
            };
            if rng.random_bool(0.2) {
                // Or leave an optional field out.
                remove_at(&mut candidate, &at);
            }
            let ok = match part {
                "parameters" => {
                    let mut with_defaults = candidate.clone();
                    if let Some(s) = &self.parameters {
                        lunabox_toolkit::hook::params::apply_defaults(s, &mut with_defaults);
                    }
                    valid(&self.parameters_check, &with_defaults)
                }
                "config" => valid(&self.config_check, &candidate),
                "repository" => valid(&self.repository_check, &candidate),
                _ => true,
            };
            if ok {
                input.context.insert(part.to_string(), candidate);
                return;
            }
        }
    }
}

fn valid(check: &Option<Schema>, v: &Value) -> bool {
    match check {
        Some(s) => s.is_valid(v, &Budget::default()).unwrap_or(false),
        None => true,
    }
}

/// The pointers of the scalar (and empty) values in `v`.
fn leaves_of(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                leaves_of(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                leaves_of(x, format!("{at}/{i}"), out);
            }
        }
        _ if !at.is_empty() => out.push(at),
        _ => {}
    }
}

/// Remove the member or element at pointer `at`.
pub fn remove_at(v: &mut Value, at: &str) -> bool {
    let Some((parent, last)) = at.rsplit_once('/') else {
        return false;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match v.pointer_mut(parent) {
        Some(Value::Object(o)) => o.remove(&last).is_some(),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}
