//! The read-only view the HTTP JSON API serves: the state store (held weakly, so an engine
//! rebuild can reopen it), the compiled workflows, and what was emitted (open alerts, the latest
//! lag status per group, recent drift events), recorded as outputs are committed.

use crate::detectors::workflow::Workflow;
use crate::outputs::{Alert, AlertStatus, LagEvent, Output, SchemaDrift};
use crate::state::Store;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{LazyLock, Mutex, RwLock, Weak};

/// Drift events kept for the API.
const DRIFT_HISTORY: usize = 200;

/// Open alerts kept whole for the API, newest first: memory must not grow with the number of
/// firing alerts (a backlog can fire one per open instance; the alert topic has them all).
pub const OPEN_ALERTS_KEPT: usize = 10_000;

#[derive(Default)]
pub struct ReadModel {
    store: RwLock<Weak<Store>>,
    workflows: RwLock<Vec<Workflow>>,
    /// dedupe id -> (order of firing, alert), at most OPEN_ALERTS_KEPT.
    open_alerts: Mutex<OpenAlerts>,
    lag: Mutex<BTreeMap<String, LagEvent>>,
    drift: Mutex<VecDeque<SchemaDrift>>,
}

#[derive(Default)]
struct OpenAlerts {
    by_id: std::collections::HashMap<String, (u64, Alert)>,
    /// firing order -> dedupe id, to drop the oldest first.
    order: BTreeMap<u64, String>,
    next: u64,
}

pub static READ: LazyLock<ReadModel> = LazyLock::new(ReadModel::default);

impl ReadModel {
    /// The engine's store and workflows (called when an engine is built).
    pub fn attach(&self, store: &std::sync::Arc<Store>, workflows: Vec<Workflow>) {
        *self.store.write().expect("read lock") = std::sync::Arc::downgrade(store);
        *self.workflows.write().expect("read lock") = workflows;
    }

    pub fn store(&self) -> Option<std::sync::Arc<Store>> {
        self.store.read().expect("read lock").upgrade()
    }

    pub fn workflows(&self) -> Vec<Workflow> {
        self.workflows.read().expect("read lock").clone()
    }

    /// An output was committed.
    pub fn record(&self, out: &Output) {
        match out {
            Output::Alert(a) => {
                let mut open = self.open_alerts.lock().expect("read lock");
                // The gauge counts FIRING minus RESOLVED since this process started (never below
                // zero: an alert fired before a restart may resolve after it).
                let gauge = crate::observe::metrics::METRICS
                    .alerts_open
                    .with_label_values(&[
                        a.workflow.as_deref().unwrap_or(""),
                        a.step.as_deref().unwrap_or(""),
                        &a.kind,
                    ]);
                match a.status {
                    AlertStatus::Firing => {
                        gauge.inc();
                        let seq = open.next;
                        open.next += 1;
                        if let Some((old, _)) =
                            open.by_id.insert(a.dedupe_id.clone(), (seq, a.clone()))
                        {
                            open.order.remove(&old);
                        }
                        open.order.insert(seq, a.dedupe_id.clone());
                        while open.by_id.len() > OPEN_ALERTS_KEPT {
                            let Some((_, id)) = open.order.pop_first() else {
                                break;
                            };
                            open.by_id.remove(&id);
                        }
                    }
                    AlertStatus::Resolved => {
                        if gauge.get() > 0 {
                            gauge.dec();
                        }
                        if let Some((seq, _)) = open.by_id.remove(&a.dedupe_id) {
                            open.order.remove(&seq);
                        }
                    }
                }
            }
            Output::Lag(l) => {
                self.lag
                    .lock()
                    .expect("read lock")
                    .insert(l.group.clone(), l.clone());
            }
            Output::Drift(d) => {
                let mut h = self.drift.lock().expect("read lock");
                if h.len() >= DRIFT_HISTORY {
                    h.pop_front();
                }
                h.push_back(d.clone());
            }
            _ => {}
        }
    }

    /// Open alerts, newest first (at most [`OPEN_ALERTS_KEPT`]).
    pub fn open_alerts(&self) -> Vec<Alert> {
        let open = self.open_alerts.lock().expect("read lock");
        open.order
            .values()
            .rev()
            .filter_map(|id| open.by_id.get(id).map(|(_, a)| a.clone()))
            .collect()
    }

    pub fn lag(&self) -> Vec<LagEvent> {
        self.lag
            .lock()
            .expect("read lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn drift(&self) -> Vec<SchemaDrift> {
        self.drift
            .lock()
            .expect("read lock")
            .iter()
            .cloned()
            .collect()
    }
}
