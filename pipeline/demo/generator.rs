//! A deterministic generator of order-to-cash traffic: orders, payments, shipments and
//! invoices with realistic dimensions, plus a known sprinkling of poison records. The same seed
//! gives the same records, so the demo's final table is predictable (and tested).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const ORDERS: &str = "shop.orders";
pub const PAYMENTS: &str = "finance.payments";
pub const SHIPMENTS: &str = "warehouse.shipments";
pub const INVOICES: &str = "finance.invoices";
pub const TOPICS: [&str; 4] = [ORDERS, PAYMENTS, SHIPMENTS, INVOICES];

const REGIONS: [&str; 3] = ["eu", "us", "apac"];
const CHANNELS: [&str; 3] = ["web", "store", "marketplace"];
const METHODS: [&str; 3] = ["card", "invoice", "wallet"];
const CARRIERS: [&str; 3] = ["dhl", "ups", "fedex"];
const WAREHOUSES: [&str; 3] = ["ams1", "fra2", "dal1"];

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenRecord {
    pub topic: &'static str,
    pub key: Option<String>,
    pub value: Vec<u8>,
    /// The event type when the record is good; None for poison.
    pub event_type: Option<&'static str>,
    /// The dead-letter class when the record is poison.
    pub poison: Option<&'static str>,
}

/// Generates the records of `orders` orders, in production order, starting at `start_ms`
/// (event time), one poison record after every `poison_every` good ones (0: none).
pub fn generate(seed: u64, orders: usize, start_ms: i64, poison_every: usize) -> Vec<GenRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(orders * 4 + orders * 4 / poison_every.max(1));
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("valid time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut good = 0usize;
    let mut poison_kind = 0usize;
    for i in 0..orders {
        let id = format!("O-{i:06}");
        let t0 = start_ms + (i as i64) * 1_000;
        let region = REGIONS[rng.random_range(0..REGIONS.len())];
        let channel = CHANNELS[rng.random_range(0..CHANNELS.len())];
        let amount = rng.random_range(1_000..50_000) as f64 / 100.0;
        let steps: [(&'static str, &'static str, serde_json::Value); 4] = [
            (
                ORDERS,
                "order_confirmed",
                json!({
                "type": "order_confirmed", "event_id": format!("{id}-c"), "occurred_at": iso(t0),
                "order": {"id": id, "region": region, "channel": channel, "amount": amount}}),
            ),
            (
                PAYMENTS,
                "payment_captured",
                json!({
                "type": "payment_captured", "event_id": format!("{id}-p"), "order_id": id,
                "occurred_at": iso(t0 + rng.random_range(10_000..600_000)),
                "method": METHODS[rng.random_range(0..METHODS.len())], "amount": amount}),
            ),
            (
                SHIPMENTS,
                "shipment_dispatched",
                json!({
                "type": "shipment_dispatched", "event_id": format!("{id}-s"), "order_id": id,
                "occurred_at": iso(t0 + rng.random_range(3_600_000..36_000_000)),
                "carrier": CARRIERS[rng.random_range(0..CARRIERS.len())],
                "warehouse": WAREHOUSES[rng.random_range(0..WAREHOUSES.len())]}),
            ),
            (
                INVOICES,
                "invoice_posted",
                json!({
                "type": "invoice_posted", "event_id": format!("{id}-i"), "order_id": id,
                "occurred_at": iso(t0 + rng.random_range(3_600_000..86_400_000)), "amount": amount}),
            ),
        ];
        // Mid-run, two producers change what they write: payments gain a `currency` field (a
        // compatible change), and later the warehouse sends carrier codes as numbers (incompatible).
        let mut steps = steps;
        if i >= orders / 3 {
            steps[1].2["currency"] = json!("EUR");
        }
        if i >= 2 * orders / 3 {
            steps[2].2["carrier"] = json!(rng.random_range(1..4));
        }
        for (topic, event_type, value) in steps {
            out.push(GenRecord {
                topic,
                key: Some(id.clone()),
                value: serde_json::to_vec(&value).expect("json"),
                event_type: Some(event_type),
                poison: None,
            });
            good += 1;
            if poison_every > 0 && good % poison_every == 0 {
                out.push(poison(&mut rng, poison_kind, &id, t0));
                poison_kind += 1;
            }
        }
    }
    out
}

/// The poison kinds, in rotation: bytes that are not JSON, an event without its key, and an
/// event whose time cannot be read.
fn poison(rng: &mut StdRng, kind: usize, id: &str, t0: i64) -> GenRecord {
    match kind % 3 {
        0 => {
            let mut value: Vec<u8> = (0..rng.random_range(8..40)).map(|_| rng.random()).collect();
            value[0] = 0xff; // never valid UTF-8 JSON
            GenRecord {
                topic: PAYMENTS,
                key: Some(id.to_string()),
                value,
                event_type: None,
                poison: Some("invalid_json"),
            }
        }
        1 => GenRecord {
            topic: SHIPMENTS,
            key: None,
            value: serde_json::to_vec(
                &json!({"type": "shipment_dispatched", "event_id": format!("{id}-x"),
                "occurred_at": t0, "carrier": "dhl"}),
            )
            .expect("json"),
            event_type: None,
            poison: Some("missing_key"),
        },
        _ => GenRecord {
            topic: INVOICES,
            key: Some(id.to_string()),
            value: serde_json::to_vec(
                &json!({"type": "invoice_posted", "event_id": format!("{id}-y"),
                "order_id": id, "occurred_at": "last tuesday"}),
            )
            .expect("json"),
            event_type: None,
            poison: Some("invalid_event_time"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_and_known_poison() {
        let a = generate(7, 100, 0, 50);
        assert_eq!(a, generate(7, 100, 0, 50));
        assert_eq!(a.iter().filter(|r| r.event_type.is_some()).count(), 400);
        assert_eq!(a.iter().filter(|r| r.poison.is_some()).count(), 8);
    }
}
