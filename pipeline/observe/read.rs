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

#[derive(Default)]
pub struct ReadModel {
    store: RwLock<Weak<Store>>,
    workflows: RwLock<Vec<Workflow>>,
    open_alerts: Mutex<BTreeMap<String, Alert>>,
    lag: Mutex<BTreeMap<String, LagEvent>>,
    drift: Mutex<VecDeque<SchemaDrift>>,
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
                let gauge = || {
                    super::metrics::METRICS.alerts_open.with_label_values(&[
                        a.workflow.as_deref().unwrap_or(""),
                        a.step.as_deref().unwrap_or(""),
                        &a.kind,
                    ])
                };
                match a.status {
                    AlertStatus::Firing => {
                        if open.insert(a.dedupe_id.clone(), a.clone()).is_none() {
                            gauge().inc();
                        }
                    }
                    AlertStatus::Resolved => {
                        if open.remove(&a.dedupe_id).is_some() {
                            gauge().dec();
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

    pub fn open_alerts(&self) -> Vec<Alert> {
        self.open_alerts
            .lock()
            .expect("read lock")
            .values()
            .cloned()
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
