//! Conditions and input mappings, written in CEL (the Common Expression Language).
//!
//! Expressions see these variables:
//! - `context`: the run's `context` object (from the run input);
//! - `steps`: a map from node id to the output of every completed step;
//! - `actions`: the actions delivered to this node (a list of objects with
//!   `action_id`, `action_type`, `source_node` and `payload`);
//! - `run`: `{"run_id", "workflow_id", "correlation_id", "workflow_type"}`;
//! - `metadata`: the run's `metadata` object.

use serde_json::Value;

/// A CEL expression that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    source: String,
}

/// The variables an expression is evaluated against.
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
}

impl Expr {
    /// Parses `source`; the error is CEL's own message.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        cel::Program::compile(source).map_err(|e| e.to_string().replace('\n', "; "))?;
        Ok(Self { source: source.to_string() })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression to JSON.
    pub fn eval(&self, scope: &Scope) -> Result<Value, String> {
        let program = cel::Program::compile(&self.source).map_err(|e| e.to_string())?;
        let mut ctx = cel::Context::default();
        for (name, value) in [
            ("context", &scope.context),
            ("actions", &Value::Array(scope.actions.clone())),
            ("steps", &Value::Object(scope.steps.clone())),
            ("run", &scope.run),
            ("metadata", &scope.metadata),
        ] {
            ctx.add_variable_from_value(name, to_cel(value));
        }
        let out = program.execute(&ctx).map_err(|e| e.to_string())?;
        out.json().map_err(|e| format!("the result cannot be turned into JSON: {e:?}"))
    }

    /// Evaluates a condition: it must give a boolean.
    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, String> {
        match self.eval(scope)? {
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
}
