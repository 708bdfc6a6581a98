//! The cost budget of one CEL evaluation.
//!
//! CEL has no loops, but its comprehensions (`map`, `filter`, `all`,
//! `exists`, `exists_one`) nest, and each level multiplies the work by the
//! length of its list: three levels over 300 numbers are 27 million
//! iterations. Three bounds keep an evaluation cheap whatever the workflow
//! author wrote:
//!
//! - **nesting**, checked when the expression is parsed
//!   ([`comprehension_nesting`], at most [`MAX_COMPREHENSION_NESTING`]);
//! - **work**: every expression with a comprehension is evaluated from a
//!   copy of its tree in which each iteration calls the host's tick
//!   function ([`guard`]), and every value copied into a list or map
//!   literal or a `+` first passes a size charge. The [`Meter`] behind them
//!   counts iterations and the whole size of what is copied (the walk stops
//!   at the budget), checks the clock and the run's cancellation at every
//!   call, and fails the evaluation once a bound is passed;
//! - **size**: the result is measured ([`measure`]) before it is turned
//!   into JSON, so a small list of shared large lists cannot explode there.
//!
//! The tick wraps a `map`'s appended element (not the whole step), so that
//! CEL's in-place append still applies and a guarded `map` costs one call
//! per element.

use crate::contract::ExprBudget;
use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr as Ast, IdedExpr, operators};
use cel::common::value::{BuiltinRef, CowVal, Val};
use cel::{ExecutionError, FunctionContext};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most comprehensions nested inside one another in one expression.
pub const MAX_COMPREHENSION_NESTING: u32 = 2;

/// The name of the tick function in guarded trees (not writable in CEL
/// source, so no expression can call or shadow it).
pub(super) const TICK: &str = "@weft_tick";

/// The name of the size charge in guarded trees: counts what a value costs
/// to copy, before it is copied.
pub(super) const SIZE: &str = "@weft_size";

/// Bytes counted per value built.
const VALUE_BYTES: u64 = 16;

/// How deep comprehensions nest in `e` (0: none).
pub fn comprehension_nesting(e: &IdedExpr) -> u32 {
    let deepest = |parts: &mut dyn Iterator<Item = &IdedExpr>| parts.map(comprehension_nesting).max().unwrap_or(0);
    match &e.expr {
        // The range is evaluated once, outside the loop: a chain
        // (`l.filter(..).map(..)`) is not nesting.
        Ast::Comprehension(c) => comprehension_nesting(&c.iter_range)
            .max(1 + deepest(&mut [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result].into_iter())),
        Ast::Call(call) => deepest(&mut call.target.iter().map(|t| t.as_ref()).chain(call.args.iter())),
        Ast::Select(sel) => comprehension_nesting(&sel.operand),
        Ast::List(l) => deepest(&mut l.elements.iter()),
        Ast::Map(m) => deepest(&mut m.entries.iter().flat_map(|x| entry_parts(&x.expr))),
        Ast::Struct(st) => deepest(&mut st.entries.iter().flat_map(|x| entry_parts(&x.expr))),
        Ast::Ident(_) | Ast::Literal(_) | Ast::Unspecified => 0,
    }
}

fn entry_parts(e: &EntryExpr) -> Vec<&IdedExpr> {
    match e {
        EntryExpr::StructField(f) => vec![&f.value],
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
    }
}

/// A copy of `e` in which every comprehension iteration calls [`TICK`] (on
/// the element a `map`/`filter` appends, and on a `filter`'s guard, or on
/// the loop condition of any other comprehension), and every value copied
/// into a list or map literal, or into a `+`, first passes [`SIZE`]; `None`
/// when there is nothing to guard.
pub(super) fn guard(e: &IdedExpr) -> Option<IdedExpr> {
    let mut out = e.clone();
    guard_in_place(&mut out);
    (out != *e).then_some(out)
}

/// Wraps `e` in a call of `name` (a size charge already there becomes the tick).
fn wrap(e: &mut IdedExpr, name: &str) {
    if let Ast::Call(call) = &mut e.expr
        && call.func_name == SIZE
        && call.target.is_none()
    {
        call.func_name = name.into();
        return;
    }
    let inner = std::mem::replace(e, IdedExpr { id: 0, expr: Ast::Unspecified });
    // Ids only locate nodes for error messages; the wrapper borrows its operand's.
    *e = IdedExpr {
        id: inner.id,
        expr: Ast::Call(CallExpr { func_name: name.into(), target: None, args: vec![inner] }),
    };
}

fn tick(e: &mut IdedExpr) {
    wrap(e, TICK);
}

/// Charges what `e` gives before it is copied (literals cost nothing to check).
fn charge(e: &mut IdedExpr) {
    if !matches!(e.expr, Ast::Literal(_)) {
        wrap(e, SIZE);
    }
}

fn guard_in_place(e: &mut IdedExpr) {
    match &mut e.expr {
        Ast::Comprehension(c) => {
            for part in [&mut c.iter_range, &mut c.accu_init, &mut c.loop_cond, &mut c.loop_step, &mut c.result] {
                guard_in_place(part);
            }
            guard_iterations(c);
        }
        Ast::Call(call) => {
            if let Some(t) = call.target.as_deref_mut() {
                guard_in_place(t);
            }
            call.args.iter_mut().for_each(guard_in_place);
            // `a + b` copies both; a comprehension's own `@result + [x]` is
            // left as it is, so that CEL still appends in place.
            let accumulates = call.args.iter().any(|a| matches!(&a.expr, Ast::Ident(n) if n.starts_with('@')));
            if call.func_name == operators::ADD && call.target.is_none() && !accumulates {
                call.args.iter_mut().for_each(charge);
            }
        }
        Ast::Select(sel) => guard_in_place(&mut sel.operand),
        Ast::List(l) => l.elements.iter_mut().for_each(|x| {
            guard_in_place(x);
            charge(x);
        }),
        Ast::Map(m) => m.entries.iter_mut().for_each(|x| entry_in_place(&mut x.expr)),
        Ast::Struct(st) => st.entries.iter_mut().for_each(|x| entry_in_place(&mut x.expr)),
        Ast::Ident(_) | Ast::Literal(_) | Ast::Unspecified => {}
    }
}

fn entry_in_place(e: &mut EntryExpr) {
    match e {
        EntryExpr::StructField(f) => {
            guard_in_place(&mut f.value);
            charge(&mut f.value);
        }
        EntryExpr::MapEntry(m) => {
            guard_in_place(&mut m.key);
            guard_in_place(&mut m.value);
            charge(&mut m.value);
        }
    }
}

/// Puts the tick where each iteration of `c` passes.
fn guard_iterations(c: &mut ComprehensionExpr) {
    let accu = c.accu_var.as_str();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Ast::Ident(n) if n == accu);
    // `map` and `filter`: `@result + [x]`, or `g ? @result + [x] : @result`.
    if matches!(c.loop_cond.expr, Ast::Literal(_)) && is_accu(&c.result) {
        if let Some(elements) = appended(&mut c.loop_step, accu) {
            elements.iter_mut().for_each(tick);
            return;
        }
        if let Ast::Call(call) = &mut c.loop_step.expr
            && call.func_name == operators::CONDITIONAL
            && call.target.is_none()
            && let [g, step, otherwise] = call.args.as_mut_slice()
            && is_accu(otherwise)
            && let Some(elements) = appended(step, accu)
        {
            elements.iter_mut().for_each(tick);
            tick(g);
            return;
        }
    }
    tick(&mut c.loop_cond);
}

/// The elements of `[x]` when `e` is `accu + [x]`.
fn appended<'a>(e: &'a mut IdedExpr, accu: &str) -> Option<&'a mut Vec<IdedExpr>> {
    let Ast::Call(call) = &mut e.expr else { return None };
    if call.func_name != operators::ADD || call.target.is_some() {
        return None;
    }
    match call.args.as_mut_slice() {
        [lhs, rhs] if matches!(&lhs.expr, Ast::Ident(n) if n == accu) => match &mut rhs.expr {
            Ast::List(l) => Some(&mut l.elements),
            _ => None,
        },
        _ => None,
    }
}

/// The host function guarded trees call on every iteration.
pub(super) type TickFunction =
    Box<dyn for<'c, 'k> Fn(&mut FunctionContext<'c, 'k>) -> Result<CowVal<'c, 'k>, ExecutionError> + Send + Sync>;

/// Counts one evaluation's work against its budget.
pub struct Meter {
    budget: ExprBudget,
    deadline: Instant,
    cancel: Option<CancellationToken>,
    steps: AtomicU64,
    built: AtomicU64,
    /// Why the evaluation was stopped, once it was.
    tripped: Mutex<Option<String>>,
}

impl Meter {
    /// A meter for one evaluation: `budget`, and a deadline that is the
    /// sooner of `budget.max_time_ms` from now and `deadline`.
    pub fn new(budget: ExprBudget, deadline: Option<Instant>, cancel: Option<CancellationToken>) -> Self {
        let own = Instant::now() + std::time::Duration::from_millis(budget.max_time_ms);
        Self {
            budget,
            deadline: deadline.map_or(own, |d| d.min(own)),
            cancel,
            steps: AtomicU64::new(0),
            built: AtomicU64::new(0),
            tripped: Mutex::new(None),
        }
    }

    /// The budget it counts against.
    pub fn budget(&self) -> &ExprBudget {
        &self.budget
    }

    /// Why the evaluation was stopped, if it was.
    pub fn tripped(&self) -> Option<String> {
        self.tripped.lock().ok().and_then(|t| t.clone())
    }

    fn trip(&self, why: String) -> ExecutionError {
        if let Ok(mut t) = self.tripped.lock() {
            t.get_or_insert_with(|| why.clone());
        }
        ExecutionError::function_error("budget", why)
    }

    /// Charges `bytes` built so far; `Err` past the budget.
    fn charge_built(&self, bytes: u64) -> Result<(), String> {
        let built = self.built.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes);
        if built > self.budget.max_built_bytes {
            return Err(format!(
                "the expression built more than its budget of {} bytes (`max_built_bytes`, estimated as 16 bytes per \
                 value plus string lengths); build less, or compute it in a step",
                self.budget.max_built_bytes
            ));
        }
        Ok(())
    }

    /// One iteration that produced `value`.
    fn tick(&self, value: &dyn Val) -> Result<(), ExecutionError> {
        let steps = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        if steps > self.budget.max_steps {
            return Err(self.trip(format!(
                "the expression ran more than its budget of {} comprehension iterations (`max_steps`); iterate over \
                 less, or compute it in a step",
                self.budget.max_steps
            )));
        }
        self.charge(value)
    }

    /// A value about to be copied: its whole size is charged (the walk stops
    /// at what the budget has left), and the clock and the run's cancel are
    /// checked.
    fn charge(&self, value: &dyn Val) -> Result<(), ExecutionError> {
        let left = self.budget.max_built_bytes.saturating_sub(self.built.load(Ordering::Relaxed));
        let size = deep_size(value, left).unwrap_or(left.saturating_add(1));
        self.charge_built(size).map_err(|why| self.trip(why))?;
        if self.cancel.as_ref().is_some_and(CancellationToken::is_cancelled) {
            return Err(self.trip("the evaluation was interrupted: the run was cancelled".into()));
        }
        if Instant::now() >= self.deadline {
            let steps = self.steps.load(Ordering::Relaxed);
            return Err(self.trip(format!(
                "the expression ran out of time after {steps} iterations (its budget is {} ms, `max_time_ms`, and no \
                 evaluation outlives the run's global timeout); iterate over less, or compute it in a step",
                self.budget.max_time_ms
            )));
        }
        Ok(())
    }

    /// The functions guarded trees call: [`TICK`] counts an iteration and
    /// what it built, [`SIZE`] what is about to be copied; both hand their
    /// one argument back unchanged.
    pub(super) fn functions(meter: std::sync::Arc<Meter>) -> [(&'static str, TickFunction); 2] {
        [(TICK, passing(meter.clone(), Meter::tick)), (SIZE, passing(meter, Meter::charge))]
    }
}

/// A host function that shows its one argument to `check`, then hands it back.
fn passing(meter: std::sync::Arc<Meter>, check: fn(&Meter, &dyn Val) -> Result<(), ExecutionError>) -> TickFunction {
    Box::new(move |ftx| {
        let value = ftx.args.pop().ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
        check(&meter, value.as_ref())?;
        Ok(value)
    })
}

/// The size of `v` as the budget counts it (16 bytes per value, plus string
/// and byte lengths), or `None` once it passes `limit`: the walk stops there.
fn deep_size(v: &dyn Val, limit: u64) -> Option<u64> {
    let mut total = 0u64;
    let mut stack: Vec<&dyn Val> = vec![v];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(VALUE_BYTES);
        match v.as_builtin() {
            BuiltinRef::List(l) => stack.extend(l.inner().iter().map(|x| x.as_ref())),
            BuiltinRef::Map(m) => {
                for x in m.inner().values() {
                    total = total.saturating_add(VALUE_BYTES);
                    stack.push(x.as_ref());
                }
            }
            BuiltinRef::String(_) | BuiltinRef::Bytes(_) => {
                total = total.saturating_add(v.as_sizer().map_or(0, |s| (*s.size().inner()).max(0) as u64));
            }
            _ => {}
        }
        if total > limit {
            return None;
        }
    }
    Some(total)
}

/// The size of `v` as the budget counts it, or `None` once it passes `limit`
/// (the walk stops there: a list of shared lists is never walked whole).
pub fn measure(v: &cel::Value, limit: u64) -> Option<u64> {
    let mut total = 0u64;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(VALUE_BYTES);
        match v {
            cel::Value::List(items) => stack.extend(items.iter()),
            cel::Value::Map(m) => {
                for (k, v) in m.map.iter() {
                    total = total.saturating_add(VALUE_BYTES + key_len(k));
                    stack.push(v);
                }
            }
            cel::Value::String(s) => total = total.saturating_add(s.len() as u64),
            cel::Value::Bytes(b) => total = total.saturating_add(b.len() as u64),
            _ => {}
        }
        if total > limit {
            return None;
        }
    }
    Some(total)
}

fn key_len(k: &cel::objects::Key) -> u64 {
    match k {
        cel::objects::Key::String(s) => s.len() as u64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CelValue, Expr, Scope, bind_with};
    use super::*;
    use serde_json::{Value, json};

    fn scope_with(context: Value) -> Scope {
        Scope { context, ..Scope::default() }
    }

    fn eval_under(src: &str, context: Value, meter: Meter) -> Result<Value, String> {
        let e = Expr::parse(src)?;
        let (context, none) = (CelValue::from_json(&context), CelValue::from_json(&Value::Null));
        let bound = bind_with(&context, &[], &[], &Value::Null, &[&none, &none], meter);
        e.eval_in(&bound)
    }

    /// The default budget with time enough that only the bound under test
    /// can trip, however slow the machine (tests never depend on speed).
    fn untimed() -> ExprBudget {
        ExprBudget { max_time_ms: ExprBudget::MAX_TIME_MS, ..ExprBudget::default() }
    }

    fn numbers(n: usize) -> Value {
        json!({ "l": (0..n).collect::<Vec<_>>(), "s": "x".repeat(100_000) })
    }

    #[test]
    fn three_nested_comprehensions_are_refused_when_parsed() {
        let bomb = "context.l.map(a, context.l.map(b, context.l.map(c, a+b+c))).size()";
        let e = Expr::parse(bomb).err().unwrap_or_default();
        assert!(e.contains("nests comprehensions") && e.contains("3 deep") && e.contains("at most 2"), "{e}");
        assert!(Expr::parse("context.l.map(a, context.l.map(b, a+b)).size()").is_ok());
        // A chain is not nesting: each comprehension runs once over the last one's result.
        assert!(Expr::parse("context.o.filter(x, x > 1).map(x, x * 2).filter(i, i > 0).map(i, i + 1)").is_ok());
    }

    #[test]
    fn copies_without_a_comprehension_are_charged_before_they_are_made() {
        // 40 references to a 200,000-item list: 8 million values, with no loop at all.
        let refs = ["context.l"; 40].join(", ");
        let e = eval_under(&format!("[{refs}].size()"), numbers(200_000), Meter::new(untimed(), None, None))
            .err()
            .unwrap_or_default();
        assert!(e.contains("`max_built_bytes`"), "{e}");
        // A string doubled by `+`, and a map literal of copies.
        let plus = ["context.s"; 200].join(" + ");
        let e = eval_under(&format!("size({plus})"), numbers(1), Meter::new(untimed(), None, None))
            .err()
            .unwrap_or_default();
        assert!(e.contains("`max_built_bytes`"), "{e}");
        let wide: Vec<String> = (0..40).map(|k| format!("'k{k}': context.l")).collect();
        let e = eval_under(&format!("{{{}}}", wide.join(", ")), numbers(200_000), Meter::new(untimed(), None, None))
            .err()
            .unwrap_or_default();
        assert!(e.contains("`max_built_bytes`"), "{e}");
        // Small copies are fine and compute the same.
        assert_eq!(
            eval_under(
                "[context.l, context.l].size() + size('a' + 'b')",
                numbers(3),
                Meter::new(untimed(), None, None)
            ),
            Ok(json!(4))
        );
    }

    #[test]
    fn guarded_comprehensions_compute_what_plain_ones_do() {
        let scope = scope_with(json!({"l": [1, 2, 3]}));
        for (src, want) in [
            ("context.l.map(x, x * 2)", json!([2, 4, 6])),
            ("context.l.filter(x, x > 1)", json!([2, 3])),
            ("context.l.map(x, x > 1, x * 10)", json!([20, 30])),
            ("context.l.all(x, x > 0)", json!(true)),
            ("context.l.exists(x, x == 2)", json!(true)),
            ("context.l.exists_one(x, x > 2)", json!(true)),
            ("context.l.map(a, context.l.filter(b, b < a).size())", json!([0, 1, 2])),
            ("{'n': context.l.map(x, [x, x]).size()}", json!({"n": 3})),
        ] {
            assert_eq!(Expr::parse(src).and_then(|e| e.eval(&scope)), Ok(want), "{src}");
        }
    }

    #[test]
    fn every_kind_of_comprehension_counts_its_iterations() {
        // 2,000 x 2,000 = 4 million iterations, past the default million.
        for src in [
            "context.l.map(a, context.l.map(b, a + b)).size()",
            "context.l.filter(a, context.l.filter(b, false).size() > 0).size()",
            "context.l.all(a, context.l.all(b, true))",
            "context.l.exists(a, context.l.exists(b, false))",
            "context.l.map(a, context.l.exists_one(b, b == a)).size()",
        ] {
            let e = eval_under(src, numbers(2000), Meter::new(untimed(), None, None)).err().unwrap_or_default();
            assert!(e.contains("budget of 1000000 comprehension iterations (`max_steps`)"), "{src}: {e}");
        }
    }

    #[test]
    fn what_an_evaluation_builds_is_bounded() {
        // 1,000 copies of a 100 KB string: about 100 MB, past 64 MiB.
        let e = eval_under("context.l.map(a, context.s + 'y')", numbers(1000), Meter::new(untimed(), None, None))
            .err()
            .unwrap_or_default();
        assert!(e.contains("`max_built_bytes`"), "{e}");
        // 3,000 copies of a 3,000-item list: 9 million values.
        let e = eval_under("context.l.map(a, context.l)", numbers(3000), Meter::new(untimed(), None, None))
            .err()
            .unwrap_or_default();
        assert!(e.contains("`max_built_bytes`"), "{e}");
        // A result that copies nothing is still measured before it becomes JSON.
        let small = ExprBudget { max_built_bytes: 1000, ..ExprBudget::default() };
        let e = eval_under("context.l", numbers(1000), Meter::new(small, None, None)).err().unwrap_or_default();
        assert!(e.contains("result is larger than its budget of 1000 bytes"), "{e}");
    }

    #[test]
    fn a_deadline_or_a_cancel_stops_an_evaluation() {
        let src = "context.l.map(a, context.l.map(b, a + b)).size()";
        let past = Instant::now();
        let e = eval_under(src, numbers(500), Meter::new(ExprBudget::default(), Some(past), None))
            .err()
            .unwrap_or_default();
        assert!(e.contains("ran out of time after"), "{e}");
        let cancel = CancellationToken::new();
        cancel.cancel();
        let e = eval_under(src, numbers(500), Meter::new(ExprBudget::default(), None, Some(cancel)))
            .err()
            .unwrap_or_default();
        assert!(e.contains("the run was cancelled"), "{e}");
        // The same expression within its budget.
        let ok = eval_under(src, numbers(500), Meter::new(untimed(), None, None));
        assert_eq!(ok, Ok(json!(500)));
    }
}
