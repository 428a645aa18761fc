//! Announcing once across instances. Schema drift is news about a *topic*, but with several
//! instances each reads only some of its partitions, and each would announce the same new
//! writer schema or violation kind. So an instance does not emit drift outputs itself: it
//! writes them, keyed by the topic they are about, to the internal topic `<group_id>.announce`
//! (in its transaction, like any output). That topic is co-partitioned and follows the
//! workflows' anchor, so exactly one instance owns each of its partitions; the owner emits an
//! output the first time it sees its id and remembers the id in its changelogged state (`meta`,
//! `announced/` · partition · id), so later claims of the same news, from any instance or
//! from a restart, are dropped.
//!
//! The side monitors (lag, dead-letter watch) run on every member, but only the owner of the
//! announce topic's partition 0 emits what they find: their conditions' announced levels are in
//! that partition's state ([`level_key`]), so a change is announced once for the group, and not
//! again by a successor or after a restart.

use crate::outputs::{Alert, Output, SchemaDrift};
use crate::state::{Op, CF_META};
use serde::{Deserialize, Serialize};

/// The internal topic claims go through.
pub fn topic(group_id: &str) -> String {
    format!("{group_id}.announce")
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
enum Claimed {
    Alert(Alert),
    Drift(SchemaDrift),
}

/// The claim record for `outputs` (drift events and alerts) about `about_topic`; None when
/// there is nothing to claim.
pub fn claim(announce_topic: &str, about_topic: &str, outputs: Vec<Output>) -> Option<Output> {
    let claimed: Vec<Claimed> = outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some(Claimed::Alert(a)),
            Output::Drift(d) => Some(Claimed::Drift(d)),
            _ => None,
        })
        .collect();
    (!claimed.is_empty()).then(|| Output::Rekeyed {
        topic: announce_topic.to_string(),
        key: about_topic.to_string(),
        value: serde_json::to_vec(&claimed).expect("outputs serialise"),
        partition: None,
    })
}

/// The outputs a claim record carries.
pub fn decode(value: &[u8]) -> Result<Vec<Output>, String> {
    let claimed: Vec<Claimed> = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    Ok(claimed
        .into_iter()
        .map(|c| match c {
            Claimed::Alert(a) => Output::Alert(a),
            Claimed::Drift(d) => Output::Drift(d),
        })
        .collect())
}

/// The state key of the level last announced for a side monitor's condition
/// ([`crate::detectors::levels`]). The side monitors' outputs belong to the owner of the announce
/// topic's partition 0, so their levels live in partition 0's state and move with it.
pub fn level_key(condition: &str) -> Vec<u8> {
    crate::state::keys::level(SIDE_MONITORS_PARTITION as i32, condition)
}

/// The announce topic partition whose owner emits the side monitors' outputs.
pub const SIDE_MONITORS_PARTITION: u32 = 0;

/// The write that remembers an announcement.
pub fn remember(key: Vec<u8>) -> Op {
    Op::Put(CF_META, key, Vec::new())
}
