//! What `/readyz` answers: ready means partitions are assigned, local state is restored and the
//! schema registry (when one is configured) answers. Each part is one flag, set by the component
//! that knows.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Health {
    assigned: AtomicBool,
    restored: AtomicBool,
    registry_ok: AtomicBool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub assigned: bool,
    pub restored: bool,
    pub registry_reachable: bool,
}

impl Health {
    pub fn new() -> Arc<Self> {
        let h = Arc::new(Health {
            assigned: AtomicBool::new(false),
            restored: AtomicBool::new(false),
            // No registry configured counts as reachable; the registry client flips it on failure.
            registry_ok: AtomicBool::new(true),
        });
        h.publish();
        h
    }

    pub fn set_assigned(&self, v: bool) {
        self.assigned.store(v, Ordering::Relaxed);
        self.publish();
    }

    pub fn set_restored(&self, v: bool) {
        self.restored.store(v, Ordering::Relaxed);
        self.publish();
    }

    pub fn set_registry_ok(&self, v: bool) {
        self.registry_ok.store(v, Ordering::Relaxed);
        self.publish();
    }

    pub fn readiness(&self) -> Readiness {
        let assigned = self.assigned.load(Ordering::Relaxed);
        let restored = self.restored.load(Ordering::Relaxed);
        let registry_reachable = self.registry_ok.load(Ordering::Relaxed);
        Readiness {
            ready: assigned && restored && registry_reachable,
            assigned,
            restored,
            registry_reachable,
        }
    }

    fn publish(&self) {
        let r = self.readiness();
        let m = &super::metrics::METRICS;
        m.ready.set(r.ready as i64);
        m.registry_reachable.set(r.registry_reachable as i64);
    }
}
