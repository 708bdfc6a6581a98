//! Conditions and input mappings, written in CEL (the Common Expression Language).
//!
//! Expressions see these variables:
//! - `context`: the run's `context` object (from the run input);
//! - `steps`: a map from node id to the output of every completed step;
//! - `actions`: the actions delivered to this node (a list of objects with
//!   `action_id`, `action_type`, `source_node` and `payload`);
//! - `run`: `{"run_id", "workflow_id", "correlation_id", "workflow_type"}`;
//! - `metadata`: the run's `metadata` object;
//! - `config`: the contract config's `domain_specific_config` object.
//!
//! Every evaluation runs under a budget (`budget.rs`): comprehensions nest
//! at most [`MAX_COMPREHENSION_NESTING`] deep, and a [`Meter`] bounds the
//! iterations, what they build and the time they take.

mod budget;

pub use budget::{MAX_COMPREHENSION_NESTING, Meter, comprehension_nesting, measure};

use crate::contract::ExprBudget;
use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr, LiteralValue, operators};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

/// Longest expression source accepted, in bytes.
pub const MAX_EXPR_BYTES: usize = 16 << 10;

/// Most operator characters (`+ - * / % . [ & | < > = ! ?`) in one expression:
/// CEL recurses once per link of an operator chain, and on a 2 MiB thread
/// stack (tokio's) chains of ~1,500 links abort the process; 500 leaves a
/// margin, also in debug builds.
pub const MAX_EXPR_OPERATORS: usize = 500;

/// A CEL expression that parsed, compiled once.
#[derive(Clone)]
pub struct Expr {
    source: String,
    program: Arc<cel::Program>,
    /// With comprehensions: the tree evaluated instead, which ticks the
    /// evaluation's [`Meter`] on every iteration.
    guarded: Option<Arc<IdedExpr>>,
    uses: Uses,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Expr {}

/// What expressions read: the top-level variables they name, and which
/// steps' outputs, so that evaluating one costs what it reads, not the size
/// of every output so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    /// Top-level identifiers (`context`, `steps`, `actions`, `run`, `metadata`, ...).
    pub variables: BTreeSet<String>,
    /// Step ids read as `steps.ID` or `steps['ID']`.
    pub steps: BTreeSet<String>,
    /// True when `steps` is used any other way (`steps[x]`, `size(steps)`,
    /// ...): every completed output must be bound.
    pub all_steps: bool,
}

impl Uses {
    /// Adds what `other` reads.
    pub fn merge(&mut self, other: &Uses) {
        self.variables.extend(other.variables.iter().cloned());
        self.steps.extend(other.steps.iter().cloned());
        self.all_steps |= other.all_steps;
    }

    /// True when the top-level variable `name` is read.
    pub fn reads(&self, name: &str) -> bool {
        self.variables.contains(name)
    }

    fn walk(&mut self, e: &IdedExpr) {
        match &e.expr {
            Ast::Ident(name) => {
                if name == "steps" {
                    self.all_steps = true;
                }
                self.variables.insert(name.clone());
            }
            Ast::Select(sel) => match &sel.operand.expr {
                Ast::Ident(name) if name == "steps" => {
                    self.variables.insert(name.clone());
                    self.steps.insert(sel.field.clone());
                }
                _ => self.walk(&sel.operand),
            },
            Ast::Call(call) => {
                if let (true, None, [target, key]) = (
                    call.func_name == operators::INDEX || call.func_name == operators::OPT_INDEX,
                    &call.target,
                    &call.args[..],
                ) && matches!(&target.expr, Ast::Ident(n) if n == "steps")
                    && let Ast::Literal(LiteralValue::String(id)) = &key.expr
                {
                    self.variables.insert("steps".into());
                    self.steps.insert(id.inner().to_string());
                    return;
                }
                if let Some(t) = &call.target {
                    self.walk(t);
                }
                call.args.iter().for_each(|a| self.walk(a));
            }
            Ast::Comprehension(c) => {
                for part in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.walk(part);
                }
            }
            Ast::List(l) => l.elements.iter().for_each(|x| self.walk(x)),
            Ast::Map(m) => m.entries.iter().for_each(|x| self.walk_entry(&x.expr)),
            Ast::Struct(st) => st.entries.iter().for_each(|x| self.walk_entry(&x.expr)),
            Ast::Literal(_) | Ast::Unspecified => {}
        }
    }

    fn walk_entry(&mut self, e: &EntryExpr) {
        match e {
            EntryExpr::StructField(f) => self.walk(&f.value),
            EntryExpr::MapEntry(m) => {
                self.walk(&m.key);
                self.walk(&m.value);
            }
        }
    }
}

/// The variables an expression is evaluated against. Only what the
/// expressions read needs to be filled in (see [`Uses`]).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The run's context object.
    pub context: Value,
    /// node id -> output of completed steps.
    pub steps: serde_json::Map<String, Value>,
    /// Actions delivered to the node being evaluated.
    pub actions: Vec<Value>,
    /// Identity of the run.
    pub run: Value,
    /// The run's metadata object.
    pub metadata: Value,
    /// The config's `domain_specific_config` object.
    pub config: Value,
}

/// CEL's standard library, built once per process.
fn stdlib() -> Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

/// A scope turned into CEL variables once, for every expression of a node,
/// with the [`Meter`] its evaluations are counted on.
pub struct Bound {
    ctx: cel::Context<'static, 'static>,
    meter: Arc<Meter>,
}

impl Scope {
    /// Converts the scope to CEL once, under the default budget; evaluate
    /// with [`Expr::eval_in`].
    pub fn bind(&self) -> Bound {
        let steps: Vec<(&str, &Value)> = self.steps.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let meter = Meter::new(ExprBudget::default(), None, None);
        let (context, metadata) = (CelValue::from_json(&self.context), CelValue::from_json(&self.metadata));
        let config = CelValue::from_json(&self.config);
        bind_with(&context, &steps, &self.actions, &self.run, &[&metadata, &config], meter)
    }
}

/// A JSON value converted to CEL once, to be bound into many scopes (the
/// run's `context` and `metadata`: binding it again costs a reference count,
/// not a copy).
#[derive(Debug, Clone)]
pub struct CelValue(cel::Value);

impl CelValue {
    /// Converts `v`.
    pub fn from_json(v: &Value) -> Self {
        Self(to_cel(v))
    }
}

/// Binds the scope's variables from borrowed parts (step outputs are not
/// copied before they are converted); `shared` is `[metadata, config]`,
/// converted once per run. Evaluations count on `meter`.
pub fn bind_with(
    context: &CelValue,
    steps: &[(&str, &Value)],
    actions: &[Value],
    run: &Value,
    shared: &[&CelValue; 2],
    meter: Meter,
) -> Bound {
    let [metadata, config] = shared;
    let meter = Arc::new(meter);
    let mut ctx = cel::Context::with_env(stdlib());
    // The names cannot be written in CEL, so these cannot clash with anything.
    for (name, f) in Meter::functions(meter.clone()) {
        let _ = ctx.add_function(name, f);
    }
    ctx.add_variable_from_value("context", context.0.clone());
    ctx.add_variable_from_value("metadata", metadata.0.clone());
    ctx.add_variable_from_value("config", config.0.clone());
    ctx.add_variable_from_value("run", to_cel(run));
    ctx.add_variable_from_value("actions", cel::Value::List(Arc::new(actions.iter().map(to_cel).collect())));
    let steps: std::collections::HashMap<String, cel::Value> =
        steps.iter().map(|(k, v)| (k.to_string(), to_cel(v))).collect();
    ctx.add_variable_from_value("steps", cel::Value::from(steps));
    Bound { ctx, meter }
}

impl Expr {
    /// Parses `source`; the error is CEL's own message.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        // CEL's parser and evaluator recurse once per operator of a chain
        // (`a + b + c ...`, `x.y.z ...`): a long enough chain would overflow
        // the stack and abort the process, so chains are bounded first.
        if source.len() > MAX_EXPR_BYTES {
            return Err(format!(
                "the expression is {} bytes; expressions are limited to {MAX_EXPR_BYTES} bytes (map a large input \
                 key by key under `input:`, or compute it in a step)",
                source.len()
            ));
        }
        let operators = source.bytes().filter(|b| b"+-*/%.[&|<>=!?".contains(b)).count();
        if operators > MAX_EXPR_OPERATORS {
            return Err(format!(
                "the expression has {operators} operator characters (`+-*/%.[&|<>=!?`, counted everywhere, in \
                 strings too); at most {MAX_EXPR_OPERATORS} are allowed, so that evaluating it cannot exhaust the \
                 stack (split it: map the input key by key, or use several nodes)"
            ));
        }
        let program = cel::Program::compile(source).map_err(|e| e.to_string().replace('\n', "; "))?;
        let nesting = comprehension_nesting(program.expression());
        if nesting > MAX_COMPREHENSION_NESTING {
            return Err(format!(
                "the expression nests comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`) {nesting} deep; \
                 at most {MAX_COMPREHENSION_NESTING} are allowed, because each level multiplies the work by the \
                 length of its list (compute it in a step instead)"
            ));
        }
        let guarded = budget::guard(program.expression()).map(Arc::new);
        let mut uses = Uses::default();
        uses.walk(program.expression());
        Ok(Self { source: source.to_string(), program: Arc::new(program), guarded, uses })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the expression reads.
    pub fn uses(&self) -> &Uses {
        &self.uses
    }

    /// Evaluates the expression to JSON (binds `scope` first; to evaluate
    /// several against one scope, bind it once and use [`Expr::eval_in`]).
    pub fn eval(&self, scope: &Scope) -> Result<Value, String> {
        self.eval_in(&scope.bind())
    }

    /// Evaluates the expression against a bound scope.
    pub fn eval_in(&self, bound: &Bound) -> Result<Value, String> {
        let out = match &self.guarded {
            Some(tree) => bound.ctx.resolve(tree),
            None => self.program.execute(&bound.ctx),
        };
        let out = out.map_err(|e| bound.meter.tripped().unwrap_or_else(|| e.to_string()))?;
        let limit = bound.meter.budget().max_built_bytes;
        if measure(&out, limit).is_none() {
            return Err(format!(
                "the expression's result is larger than its budget of {limit} bytes (`max_built_bytes`, estimated \
                 as 16 bytes per value plus string lengths); return less, or compute it in a step"
            ));
        }
        out.json().map_err(|e| format!("the result cannot be turned into JSON: {e:?}"))
    }

    /// Evaluates a condition: it must give a boolean.
    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, String> {
        self.eval_bool_in(&scope.bind())
    }

    /// Evaluates a condition against a bound scope.
    pub fn eval_bool_in(&self, bound: &Bound) -> Result<bool, String> {
        match self.eval_in(bound)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("the condition gave {other}, not a boolean")),
        }
    }
}

/// JSON to CEL, with whole numbers as CEL `int` (so `steps.a.n + 1` works)
/// and only those beyond `i64` as `uint`.
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(std::sync::Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(std::sync::Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: std::collections::HashMap<String, cel::Value> =
                m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_against_steps_and_context() {
        let scope = Scope {
            context: json!({"limit": 100}),
            steps: json!({"price": {"total_cents": 150}}).as_object().cloned().unwrap_or_default(),
            ..Scope::default()
        };
        let e = Expr::parse("steps.price.total_cents > context.limit").expect("parses");
        assert!(e.eval_bool(&scope).expect("evaluates"));
        let sum = Expr::parse("steps.price.total_cents + 1").expect("parses");
        assert_eq!(sum.eval(&scope).expect("int arithmetic on JSON numbers"), json!(151));
        let m = Expr::parse("{'total': steps.price.total_cents, 'ok': true}").expect("parses");
        assert_eq!(m.eval(&scope).expect("evaluates"), json!({"total": 150, "ok": true}));
        assert!(Expr::parse("steps.price.total_cents >").is_err());
        assert!(Expr::parse("context.limit").expect("parses").eval_bool(&scope).is_err());
    }

    #[test]
    fn operator_chains_long_enough_to_overflow_the_stack_are_refused_and_wide_maps_are_not() {
        // Each of these aborted the process (stack overflow) before the limit.
        for src in [vec!["1"; 2000].join("+"), format!("context{}", ".a".repeat(1600)), "'x'".repeat(6000)] {
            let e = Expr::parse(&src).err().unwrap_or_default();
            assert!(e.contains("operator characters") || e.contains("bytes"), "{e}");
        }
        let e = Expr::parse(&vec!["1"; 600].join("+")).err().unwrap_or_default();
        assert!(e.starts_with("the expression has 599 operator characters"), "{e}");
        // A chain under the limit runs, on a thread with tokio's 2 MiB stack.
        let src = vec!["1"; 500].join("+");
        let sum = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || Expr::parse(&src).and_then(|e| e.eval(&Scope::default())))
            .expect("thread")
            .join()
            .expect("no stack overflow");
        assert_eq!(sum, Ok(json!(500)));
        let wide: Vec<String> = (0..150).map(|i| format!("'k{i}': steps.a.v")).collect();
        assert!(Expr::parse(&format!("{{{}}}", wide.join(", "))).is_ok(), "150 keys, 150 dots");
    }

    fn uses(src: &str) -> (Vec<String>, Vec<String>, bool) {
        let e = Expr::parse(src).expect("parses");
        let u = e.uses();
        (u.variables.iter().cloned().collect(), u.steps.iter().cloned().collect(), u.all_steps)
    }

    #[test]
    fn the_steps_an_expression_reads_are_found_and_anything_unclear_reads_them_all() {
        let named = |src: &str| {
            let (_, steps, all) = uses(src);
            assert!(!all, "{src} should name its steps");
            steps
        };
        assert_eq!(named("steps.a.x + steps['b'].y"), ["a", "b"]);
        assert_eq!(named("has(steps.c) && steps.c.ok"), ["c"]);
        assert_eq!(named("[1, 2].map(x, steps.d.v + x)"), ["d"]);
        assert_eq!(named("{'k': steps.e, 'n': context.n}"), ["e"]);
        assert_eq!(named("context.k > 1"), Vec::<String>::new());
        for src in ["size(steps) > 0", "steps[context.k].x", "steps", "[steps].size()"] {
            assert!(uses(src).2, "{src} may read any step");
        }
        let (vars, _, _) = uses("context.a + metadata.b + size(actions) + run.run_id.size()");
        assert_eq!(vars, ["actions", "context", "metadata", "run"]);
    }
}
