//! Picking a run up again: [`Engine::resume`] continues an interrupted run
//! from its journal, [`Engine::resume_all`] every orphaned one, and
//! [`Engine::replay`] re-runs a dead-lettered run as a new run. All three
//! rebuild the run's state by folding its journal with the same `apply` the
//! live run uses.

use super::executor::CheckWith;
use super::heartbeat::DrivenHere;
use super::options::StoredOptions;
use super::run::Run;
use super::{Engine, ResumeOptions, RunHandle, RunInput, RunOptions, StartError};
use crate::contract::ExecutionStatus;
use crate::store::{JournalEntry, Journaled, Lease, RunFilter, RunRecord, StoreError, owner_is_dead};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What [`Engine::resume_all`] did.
#[derive(Default)]
pub struct ResumedRuns {
    /// The runs resumed, driven by this engine now.
    pub resumed: Vec<RunHandle>,
    /// Per run that could not be resumed, its id and why.
    pub refused: Vec<(String, StartError)>,
}

impl Engine {
    /// Continues an interrupted run from its journal: completed steps keep
    /// their journaled outputs and are not run again; a step that was in
    /// flight runs again with the next attempt number and the same
    /// idempotency key.
    pub async fn resume(&self, run_id: &str, opts: ResumeOptions) -> Result<RunHandle, StartError> {
        let record = self.store.get_run(run_id).await?;
        if !matches!(record.status, ExecutionStatus::Running | ExecutionStatus::Pending) {
            return Err(StartError::Finished { run_id: run_id.into(), status: record.status });
        }
        // Marked before the claim: this process never drives one run twice.
        let driven = self.enter(run_id)?;
        let steal = owner_is_dead(&record.run.owner).then_some(record.run.owner.as_str());
        let lease = self.store.claim(run_id, &self.owner, self.lease_ms, steal).await?;
        self.drive_claimed(&record, lease, driven, opts).await
    }

    /// Drives a run this engine has claimed already (a worker's
    /// [`RunStore::claim_next`](crate::store::RunStore::claim_next)), as
    /// [`Engine::resume`] does. A run that cannot be rebuilt here keeps
    /// its lease until it expires; a run claimed too often without
    /// progress goes to the dead-letter queue as `poison`.
    pub async fn resume_claimed(&self, lease: Lease, opts: ResumeOptions) -> Result<RunHandle, StartError> {
        let driven = self.enter(&lease.run_id)?;
        let record = self.store.get_run(&lease.run_id).await?;
        self.drive_claimed(&record, lease, driven, opts).await
    }

    /// Marks `run_id` as driven here, or says that it is already.
    fn enter(&self, run_id: &str) -> Result<DrivenHere, StartError> {
        DrivenHere::try_enter(run_id).ok_or_else(|| {
            StartError::Store(StoreError::Owned {
                run_id: run_id.into(),
                owner: format!("{} (this process)", self.owner),
                remaining_ms: self.lease_ms,
            })
        })
    }

    /// Rebuilds a claimed run, journals that it was resumed, and drives it.
    async fn drive_claimed(
        &self,
        record: &RunRecord,
        lease: Lease,
        driven: DrivenHere,
        opts: ResumeOptions,
    ) -> Result<RunHandle, StartError> {
        let poisoned = lease.is_poison();
        let mut run = self.rebuild(record, opts, lease).await?;
        run.poisoned = poisoned;
        let resumed = JournalEntry::RunResumed { owner: self.owner.clone(), epoch: run.lease.epoch };
        self.store.append(&run.lease, vec![resumed]).await?;
        run.driven = Some(driven);
        Ok(self.spawn(run))
    }

    /// Every run of the store that is `running` and not owned by a live
    /// process, resumed. Returns the handles and, per run that could not be
    /// resumed, why.
    pub async fn resume_all(&self, opts: ResumeOptions) -> Result<ResumedRuns, StoreError> {
        let runs =
            self.store.list_runs(&RunFilter { status: Some(ExecutionStatus::Running), ..Default::default() }).await?;
        let mut out = ResumedRuns::default();
        for r in runs.into_iter().rev() {
            // A sub-workflow's run is reattached by its parent's resume while
            // the parent is running; once the parent has finished, it is resumed itself.
            if let Ok(rec) = self.store.get_run(&r.run_id).await
                && let Some(parent) = &rec.run.parent
                && self.store.get_run(&parent.run_id).await.is_ok_and(|p| p.status == ExecutionStatus::Running)
            {
                continue;
            }
            match self.resume(&r.run_id, opts.clone()).await {
                Ok(h) => out.resumed.push(h),
                // Driven by a live process, or finished meanwhile: not interrupted.
                Err(StartError::Store(StoreError::Owned { .. }) | StartError::Finished { .. }) => {}
                Err(e) => out.refused.push((r.run_id, e)),
            }
        }
        Ok(out)
    }

    /// Re-runs a run from the dead-letter queue as a new run: its completed
    /// steps keep their journaled outputs, and the steps that failed run
    /// again with their journaled inputs.
    /// A replay someone asks for is a run of its own, even of a child: its
    /// parent does not know of it.
    pub async fn replay(&self, run_id: &str, opts: ResumeOptions) -> Result<RunHandle, StartError> {
        self.replay_as(run_id, uuid::Uuid::new_v4(), None, opts).await
    }

    /// [`Engine::replay`] as the run `new_id`, a child of `parent` (a
    /// dead-letter replay's new child replays its failed one so).
    pub(super) async fn replay_as(
        &self,
        run_id: &str,
        new_id: uuid::Uuid,
        parent: Option<crate::store::ParentRun>,
        opts: ResumeOptions,
    ) -> Result<RunHandle, StartError> {
        let record = self.store.get_run(run_id).await?;
        let journal = self.store.journal(run_id).await?;
        // Refuse before anything is written (changed components, a workflow
        // that no longer loads): a refused replay leaves no new run behind.
        let unclaimed = Lease::unclaimed(run_id, &self.owner);
        let groups = self.rebuild(&record, opts.clone(), unclaimed).await?.stream_groups();
        let first = replay_journal(journal, &groups, &new_id);
        let mut new = record.run.clone();
        new.run_id = new_id.to_string();
        new.parent = parent;
        new.replay_of = Some(run_id.to_string());
        new.owner = self.owner.clone();
        new.lease_ms = self.lease_ms;
        if let Some(obj) = new.input.as_object_mut() {
            obj.insert("workflow_id".into(), Value::String(new.run_id.clone()));
        }
        let lease = self.store.create_run(&new, &first, &[]).await?;
        let record = self.store.get_run(&new.run_id).await?;
        let run = self.rebuild(&record, opts, lease).await?;
        // Marked only once the replay is durable and about to run.
        if let Err(e) = self.store.dlq_mark_replayed(run_id, &new.run_id).await {
            tracing::warn!(run_id, error = %e, "the dead-letter entry could not be marked as replayed");
        }
        Ok(self.spawn(run))
    }

    /// Loads a stored run's workflow, checks its pins and folds its journal.
    /// The pinned components come from the store where it holds them.
    pub(super) async fn rebuild(
        &self,
        record: &RunRecord,
        opts: ResumeOptions,
        lease: Lease,
    ) -> Result<Run, StartError> {
        let spec = &record.run;
        let label = spec.workflow_path.clone().unwrap_or_else(|| format!("run {}", spec.run_id));
        let fetched = self.fetch_pinned(&spec.components).await?;
        let checker = CheckWith { executor: self.executor.as_ref(), remap: &fetched, pins: &spec.components };
        let pinned = spec.sub_definitions.clone();
        let mut wf = crate::workflow::load_str_pinned(
            &spec.definition,
            Path::new(&spec.base_dir),
            &label,
            Some(&checker),
            pinned,
        )
        .map_err(|e| StartError::Workflow(e.to_string()))?;
        wf.source = spec.workflow_path.as_ref().map(PathBuf::from);
        for node in &mut wf.nodes {
            if let Some(local) = fetched.get(&node.component) {
                node.component = local.clone();
            }
        }
        let wf = Arc::new(wf);
        self.check_capabilities(&wf, record.run.tenant())?;
        self.executor.prepare(&wf).map_err(StartError::Components)?;
        let now = self.executor.pins(&wf);
        let held = self.executor.hold(&wf);
        let pins = Run::pins_by_node(&wf, &now);
        let mut changed = Vec::new();
        for (node, pin) in &spec.components {
            match now.get(node) {
                Some(cur) if cur.digest == pin.digest => {}
                Some(cur) => changed.push(format!(
                    "node `{node}`: {} was {} when the run started and is {} now",
                    cur.path, pin.digest, cur.digest
                )),
                None => changed.push(format!("node `{node}`: its component {} is gone", pin.path)),
            }
        }
        if !changed.is_empty() {
            if !opts.upgrade {
                return Err(StartError::ComponentChanged(changed));
            }
            tracing::warn!(run_id = %spec.run_id, changed = ?changed, "resuming on upgraded components");
        }
        let input: RunInput = serde_json::from_value(spec.input.clone())
            .map_err(|e| StartError::Input(vec![format!("the journaled run input cannot be read: {e}")]))?;
        let stored: StoredOptions = serde_json::from_value(spec.options.clone()).map_err(|e| {
            StartError::Input(vec![format!(
                "the journaled run options (environment, jitter seed) cannot be read: {e}; the run cannot be resumed \
                 as it was started"
            )])
        })?;
        let run_opts = RunOptions {
            environment: stored.environment,
            jitter_seed: stored.jitter_seed,
            limits: opts.limits,
            config: stored.config.map(Arc::new),
            parent: spec.parent.clone(),
            keys_of: stored.keys_of,
            request_digest: stored.request_digest,
            ceiling: stored.ceiling,
            traceparent: stored.traceparent,
        };
        let config = input.resolve(&wf, run_opts.environment, run_opts.config.as_deref()).map_err(StartError::Input)?;
        let parts = self.parts(&wf, &config, pins, held, lease);
        let mut run = Run::new(wf, config, run_opts, parts);
        for j in self.store.journal(&spec.run_id).await? {
            run.apply(&j.entry);
        }
        if opts.cancelled || record.cancel_requested {
            run.cancel.cancel();
        }
        Ok(run)
    }
}

/// The journal a replay of a dead-lettered run starts from: the completed
/// steps (outputs kept), the decisions that stand (tolerated failures and
/// skips by `when`), and the scheduling of the failed steps, so that they
/// run again with their journaled inputs. A fan-out keeps its completed
/// shards, so only the others run again; a stream group with a consumer
/// that did not complete runs again whole. An effect (or a shard of one) that
/// compensation undid is not done: it runs again. A completed sub-workflow
/// keeps its child; a failed one gets a new child that replays the old one.
fn replay_journal(journal: Vec<Journaled>, groups: &[(String, Vec<String>)], new_id: &uuid::Uuid) -> Vec<JournalEntry> {
    let mut completed = HashSet::new();
    let mut failed = HashSet::new();
    let mut kept_final = HashSet::new();
    let mut shards_done = HashSet::new();
    for j in &journal {
        match &j.entry {
            JournalEntry::StepCompleted { step_id, .. } => {
                completed.insert(step_id.clone());
            }
            JournalEntry::StepFailed { step_id, tolerated: false, .. } => {
                failed.insert(step_id.clone());
            }
            // Decisions that stand: tolerated failures and skips by `when`.
            JournalEntry::StepFailed { step_id, tolerated: true, .. } => {
                kept_final.insert(step_id.clone());
            }
            JournalEntry::StepSkipped { step_id, reason } if reason.starts_with("`when` is false") => {
                kept_final.insert(step_id.clone());
            }
            JournalEntry::ShardFinished { step_id, shard, report, .. } if report.failure().is_none() => {
                shards_done.insert((step_id.clone(), *shard));
            }
            // An undone effect is not done: it runs again.
            JournalEntry::CompensationFinished { step_id, shard: None, ok: true, .. } => {
                completed.remove(step_id);
            }
            // A fan-out with an undone shard runs again, with its journaled input.
            JournalEntry::CompensationFinished { step_id, shard: Some(k), ok: true, .. } => {
                shards_done.remove(&(step_id.clone(), *k));
                if completed.remove(step_id) {
                    failed.insert(step_id.clone());
                }
            }
            _ => {}
        }
    }
    // A stream group runs again whole, from its producer's first item, unless
    // every consumer completed: a consumer's state cannot be resumed without
    // the producer's stream.
    for (producer, consumers) in groups {
        if consumers.iter().all(|c| completed.contains(c)) {
            continue;
        }
        for member in std::iter::once(producer).chain(consumers) {
            completed.remove(member);
            failed.remove(member);
            kept_final.remove(member);
        }
    }
    let mut first = Vec::new();
    for j in journal {
        let keep = match &j.entry {
            JournalEntry::StepScheduled { step_id, .. } => completed.contains(step_id) || failed.contains(step_id),
            JournalEntry::AttemptStarted { step_id, .. }
            | JournalEntry::AttemptFinished { step_id, .. }
            | JournalEntry::StepCompleted { step_id, .. } => completed.contains(step_id),
            JournalEntry::ShardFinished { step_id, shard, report, .. } => {
                report.failure().is_none()
                    && (completed.contains(step_id) || failed.contains(step_id))
                    && shards_done.contains(&(step_id.clone(), *shard))
            }
            JournalEntry::StepFailed { step_id, tolerated: true, .. } | JournalEntry::StepSkipped { step_id, .. } => {
                kept_final.contains(step_id)
            }
            JournalEntry::ChildLinked { step_id, child_run_id, .. } => {
                if failed.contains(step_id) {
                    let replay_of = Some(child_run_id.clone());
                    let child_run_id = uuid::Uuid::new_v5(new_id, step_id.as_bytes()).to_string();
                    first.push(JournalEntry::ChildLinked { step_id: step_id.clone(), child_run_id, replay_of });
                }
                completed.contains(step_id)
            }
            _ => false,
        };
        if keep {
            first.push(j.entry);
        }
    }
    first
}
