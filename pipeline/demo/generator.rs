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
    /// Event time (epoch ms); records are produced in this order, as the systems would.
    pub at_ms: i64,
}

/// The injected business faults, by kind: the keys they were injected for.
pub type Faults = std::collections::BTreeMap<&'static str, Vec<String>>;

/// What the generator produces: the records in production order, and which faults it injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub records: Vec<GenRecord>,
    pub faults: Faults,
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// Generates `orders` orders of order-to-cash traffic, one poison record after every
/// `poison_every` good ones (0: none). Orders start at `start_ms` (event time), one a second;
/// the last `tail` of them happen around `now_ms`, so the stream clock reaches today and the old
/// orders' deadlines and ttls come due. Faults are injected at fixed strides (see [`Faults`]):
/// missing payments, late shipments, duplicate payments, shipments that happened before their
/// payment, orphan payments, cancellations, missing invoices, missing shipments for one carrier
/// (fedex) and late invoices.
pub fn generate(seed: u64, orders: usize, start_ms: i64, now_ms: i64, poison_every: usize) -> Plan {
    generate_with(seed, orders, start_ms, now_ms, poison_every, None)
}

/// The fault kinds, in the order [`generate_with`] rotates through them.
const FAULT_KINDS: [&str; 9] = [
    "missing_payment",
    "late_shipment",
    "duplicate_payment",
    "shipped_before_paid",
    "orphan",
    "cancelled",
    "missing_invoice",
    "missing_shipment",
    "late_invoice",
];

/// As [`generate`]; `fault_every`: Some(k) injects a fault into every k-th order instead of
/// the fixed strides (about one order in eleven), rotating through the kinds (the benchmark's
/// configurable fault rate); Some(0) injects none.
pub fn generate_with(
    seed: u64,
    orders: usize,
    start_ms: i64,
    now_ms: i64,
    poison_every: usize,
    fault_every: Option<usize>,
) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(orders * 4 + orders * 4 / poison_every.max(1));
    let mut faults = Faults::new();
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("valid time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let tail = 30.min(orders);
    let mut good = 0usize;
    let mut poison_kind = 0usize;
    for i in 0..orders {
        let id = format!("O-{i:06}");
        let t0 = if i >= orders - tail {
            now_ms - 30 * MIN + (i - (orders - tail)) as i64 * 1_000
        } else {
            start_ms + (i as i64) * 1_000
        };
        let fault = match (i, fault_every) {
            _ if i >= orders - tail => None,
            (_, Some(0)) => None,
            (_, Some(k)) => (i % k == k - 1).then(|| FAULT_KINDS[(i / k) % FAULT_KINDS.len()]),
            (i, None) => match i {
                _ if i % 97 == 13 => Some("missing_payment"),
                _ if i % 89 == 7 => Some("late_shipment"),
                _ if i % 83 == 5 => Some("duplicate_payment"),
                _ if i % 79 == 3 => Some("shipped_before_paid"),
                _ if i % 101 == 11 => Some("orphan"),
                _ if i % 103 == 17 => Some("cancelled"),
                _ if i % 107 == 19 => Some("missing_invoice"),
                _ if i % 109 == 23 => Some("missing_shipment"),
                _ if i % 113 == 29 => Some("late_invoice"),
                _ => None,
            },
        };
        if let Some(f) = fault {
            let key = if f == "orphan" {
                format!("X-{i:06}")
            } else {
                id.clone()
            };
            faults.entry(f).or_default().push(key);
        }
        let region = REGIONS[rng.random_range(0..REGIONS.len())];
        let channel = CHANNELS[rng.random_range(0..CHANNELS.len())];
        let carrier = if fault == Some("missing_shipment") {
            // One carrier's shipments never arrive.
            "fedex"
        } else if fault == Some("late_shipment") {
            "ups"
        } else {
            CARRIERS[rng.random_range(0..CARRIERS.len())]
        };
        let amount = rng.random_range(1_000..50_000) as f64 / 100.0;
        let paid_at = t0 + rng.random_range(10_000..600_000);
        let shipped_at = match fault {
            Some("late_shipment") => paid_at + 50 * HOUR,
            Some("shipped_before_paid") => paid_at - MIN,
            _ => t0 + rng.random_range(HOUR..10 * HOUR),
        };
        let invoiced_at = if fault == Some("late_invoice") {
            t0 + 60 * HOUR
        } else {
            t0 + rng.random_range(HOUR..24 * HOUR)
        };
        let order = json!({"type": "order_confirmed", "event_id": format!("{id}-c"), "occurred_at": iso(t0),
            "order": {"id": id, "region": region, "channel": channel, "amount": amount, "carrier": carrier}});
        let mut payment = json!({"type": "payment_captured", "event_id": format!("{id}-p"), "order_id": id,
            "occurred_at": iso(paid_at), "method": METHODS[rng.random_range(0..METHODS.len())], "amount": amount});
        let mut shipment = json!({"type": "shipment_dispatched", "event_id": format!("{id}-s"), "order_id": id,
            "occurred_at": iso(shipped_at), "carrier": carrier,
            "warehouse": WAREHOUSES[rng.random_range(0..WAREHOUSES.len())]});
        let invoice = json!({"type": "invoice_posted", "event_id": format!("{id}-i"), "order_id": id,
            "occurred_at": iso(invoiced_at), "amount": amount});
        // Mid-run, two producers change what they write: payments gain a `currency` field (a
        // compatible change), and later the warehouse sends carrier codes as numbers (incompatible).
        if i >= orders / 3 {
            payment["currency"] = json!("EUR");
        }
        if i >= 2 * orders / 3 {
            shipment["carrier"] = json!(rng.random_range(1..4));
        }
        let mut steps: Vec<(&'static str, &'static str, serde_json::Value)> = match fault {
            Some("missing_payment") => vec![(ORDERS, "order_confirmed", order)],
            Some("orphan") => {
                payment["order_id"] = json!(format!("X-{i:06}"));
                payment["event_id"] = json!(format!("X-{i:06}-p"));
                vec![(PAYMENTS, "payment_captured", payment)]
            }
            Some("cancelled") => {
                let mut cancel = order.clone();
                cancel["type"] = json!("order_cancelled");
                cancel["event_id"] = json!(format!("{id}-x"));
                cancel["occurred_at"] = json!(iso(t0 + 20 * MIN));
                vec![
                    (ORDERS, "order_confirmed", order),
                    (ORDERS, "order_cancelled", cancel),
                ]
            }
            _ => vec![
                (ORDERS, "order_confirmed", order),
                (PAYMENTS, "payment_captured", payment),
                (SHIPMENTS, "shipment_dispatched", shipment),
                (INVOICES, "invoice_posted", invoice),
            ],
        };
        if fault == Some("missing_invoice") {
            steps.pop();
        }
        if fault == Some("missing_shipment") {
            steps.remove(2);
        }
        if fault == Some("duplicate_payment") {
            let again = steps[1].clone();
            steps.push(again);
        }
        for (topic, event_type, value) in steps {
            let key = value
                .get("order_id")
                .or_else(|| value.pointer("/order/id"))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let at_ms = value
                .get("occurred_at")
                .and_then(|v| v.as_str())
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.timestamp_millis())
                .unwrap_or(t0);
            out.push(GenRecord {
                topic,
                key,
                value: serde_json::to_vec(&value).expect("json"),
                event_type: Some(event_type),
                poison: None,
                at_ms,
            });
            good += 1;
            if poison_every > 0 && good.is_multiple_of(poison_every) {
                let mut p = poison(&mut rng, poison_kind, &id, t0);
                p.at_ms = at_ms;
                out.push(p);
                poison_kind += 1;
            }
        }
    }
    // The systems publish as things happen: in event-time order (a stable sort keeps each
    // poison record right after its neighbour, and a duplicate right after its original).
    out.sort_by_key(|r| r.at_ms);
    Plan {
        records: out,
        faults,
    }
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
                at_ms: t0,
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
            at_ms: t0,
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
            at_ms: t0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_known_poison_and_faults() {
        let a = generate(7, 300, 0, 100 * HOUR, 50);
        assert_eq!(a, generate(7, 300, 0, 100 * HOUR, 50));
        let good = a.records.iter().filter(|r| r.event_type.is_some()).count();
        let poison = a.records.iter().filter(|r| r.poison.is_some()).count();
        assert_eq!(poison, good / 50);
        let kinds: Vec<(&str, usize)> = a.faults.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(
            kinds,
            vec![
                ("cancelled", 3),
                ("duplicate_payment", 4),
                ("late_invoice", 3),
                ("late_shipment", 3),
                ("missing_invoice", 3),
                ("missing_payment", 3),
                ("missing_shipment", 3),
                ("orphan", 3),
                ("shipped_before_paid", 4),
            ]
        );
    }
}
