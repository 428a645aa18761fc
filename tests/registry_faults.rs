//! Registry errors classified by what they mean, through a fault-injecting proxy in front of the
//! real registry. A 500, 429, 401, 403, 503 or a malformed answer for a schema Sightline has not
//! fetched yet holds that partition's position (nothing dead-lettered, /readyz 503) while a JSON
//! source keeps flowing; when the registry answers again the records are read. A schema id the
//! registry really does not have is still dead-lettered at once, as `unknown_schema_id`; a body
//! with bytes after its datum is `avro_decode_failed`, and a schema id of another subject is named.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use rdkafka::producer::FutureProducer;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Proxy {
    upstream: String,
    /// 0: forward; 1: a malformed 200; else answer schema lookups with this status.
    fault: AtomicU16,
    faulted: AtomicUsize,
}

const MALFORMED: u16 = 1;

async fn forward(
    State(p): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let fault = p.fault.load(Ordering::SeqCst);
    if fault != 0 && uri.path().contains("/schemas/ids/") {
        p.faulted.fetch_add(1, Ordering::SeqCst);
        if fault == MALFORMED {
            return (StatusCode::OK, "<html>maintenance</html>").into_response();
        }
        let status = StatusCode::from_u16(fault).unwrap();
        let body = format!(r#"{{"error_code": {fault}01, "message": "injected"}}"#);
        return (status, [("content-type", "application/json")], body).into_response();
    }
    common::forward_http(&p.upstream, method, &uri, &headers, body).await
}

/// Letters and digits of `s` (an Avro namespace part).
fn uuid_like(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// A schema of its own for each fault, so that none is cached before its fault is injected.
fn schema(n: usize) -> String {
    format!(
        r#"{{"type": "record", "name": "Pay", "namespace": "faults", "fields": [
  {{"name": "id", "type": "string"}}, {{"name": "at", "type": "long"}},
  {{"name": "f{n}", "type": ["null", "string"], "default": null}}]}}"#
    )
}

fn payment(n: usize, id: u32, i: usize) -> Vec<u8> {
    use apache_avro::types::Value;
    let field = format!("f{n}");
    common::confluent_avro(
        &schema(n),
        id,
        vec![
            ("id", Value::String(format!("O-{i}"))),
            ("at", Value::Long(chrono::Utc::now().timestamp_millis())),
            (&field, Value::Union(0, Box::new(Value::Null))),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_missing_schema_is_bad_input_and_json_flows_meanwhile() {
    common::require_kafka();
    common::require_registry();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}/apis/ccompat/v7", listener.local_addr().unwrap());
    let upstream_path = "/apis/ccompat/v7";
    assert!(common::registry_url().ends_with(upstream_path));
    let proxy_state = Arc::new(Proxy {
        upstream: common::registry_url()
            .trim_end_matches(upstream_path)
            .to_string(),
        fault: AtomicU16::new(0),
        faulted: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy_state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let avro = common::unique("faults.avro");
    let json = common::unique("faults.json");
    common::create_topics(&[&avro, &json], 1).await;
    let setup = common::Setup::new(
        &format!(
            "  - name: payments\n    topic: {avro}\n    format: avro\n    event_type: {{ fixed: payment_captured }}\n    \
             key: {{ field: id }}\n    event_time: {{ field: at }}\n\
             \x20 - name: orders\n    topic: {json}\n    format: json\n    event_type: {{ fixed: order_confirmed }}\n    \
             key: {{ field: id }}\n    event_time: {{ field: at }}\n"
        ),
        Some(2000),
        &[],
    );
    let text = std::fs::read_to_string(setup.config())
        .unwrap()
        .replace(&common::registry_url(), &proxy_url);
    std::fs::write(setup.config(), text).unwrap();
    let sl = setup.start().await;
    let producer: FutureProducer = common::client().create().unwrap();
    let settings = schema_registry_converter::async_impl::schema_registry::SrSettings::new(
        common::registry_url(),
    );
    let avro_events = format!(
        "sightline_events_consumed_total{{event_type=\"payment_captured\",topic=\"{avro}\"}}"
    );
    let json_events = format!(
        "sightline_events_consumed_total{{event_type=\"order_confirmed\",topic=\"{json}\"}}"
    );
    let dead = format!(
        "sightline_records_dead_lettered_total{{class=\"unknown_schema_id\",topic=\"{avro}\"}}"
    );
    let readyz = format!("{}/readyz", sl.http);

    let (mut avro_n, mut json_n) = (0u64, 0u64);
    for (n, fault) in [500u16, 429, 401, 403, 503, MALFORMED]
        .into_iter()
        .enumerate()
    {
        let text = schema(n);
        let id = sightline::registry::register_avro(&settings, &format!("{avro}-value"), &text)
            .await
            .unwrap();
        proxy_state.fault.store(fault, Ordering::SeqCst);
        let before = proxy_state.faulted.load(Ordering::SeqCst);
        for i in 0..5 {
            common::produce(&producer, &avro, "k", &payment(n, id, i)).await;
        }
        // The Avro partition waits, retrying; the JSON source flows meanwhile.
        common::wait_for(
            "the registry to be asked again",
            Duration::from_secs(60),
            async || (proxy_state.faulted.load(Ordering::SeqCst) >= before + 2).then_some(()),
        )
        .await;
        for i in 0..5 {
            let v = serde_json::json!({"id": format!("J-{n}-{i}"), "at": chrono::Utc::now().timestamp_millis()});
            common::produce(&producer, &json, "k", v.to_string().as_bytes()).await;
        }
        json_n += 5;
        sl.wait_metric(&json_events, json_n, Duration::from_secs(60))
            .await;
        common::wait_for("/readyz to say 503", Duration::from_secs(30), async || {
            common::http_get(&readyz).await.filter(|(c, _)| *c == 503)
        })
        .await;
        assert_eq!(
            sl.metric(&avro_events).await,
            avro_n,
            "fault {fault}: nothing read past the wait"
        );
        assert_eq!(
            sl.metric(&dead).await,
            0,
            "fault {fault}: nothing dead-lettered"
        );
        println!(
            "fault {fault}: held, {} lookups refused, JSON flowed",
            proxy_state.faulted.load(Ordering::SeqCst) - before
        );
        proxy_state.fault.store(0, Ordering::SeqCst);
        avro_n += 5;
        sl.wait_metric(&avro_events, avro_n, Duration::from_secs(60))
            .await;
    }
    let retries = sl
        .metric("sightline_registry_errors_total{kind=\"http_500\"}")
        .await;
    assert!(retries > 0, "retries are counted by status");

    // A schema id the registry does not have: bad input, dead-lettered at once.
    let bogus = 2_000_000_000u32;
    common::produce(&producer, &avro, "k", &payment(99, bogus, 0)).await;
    sl.wait_metric(&dead, 1, Duration::from_secs(60)).await;
    let dlq = common::read_topic(&format!("{avro}.dlq"), 1, Duration::from_secs(10));
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].header("sightline.error.class"),
        Some("unknown_schema_id")
    );

    // Trailing bytes after a valid datum: corrupt, not quietly decoded.
    let id77 = sightline::registry::register_avro(&settings, &format!("{avro}-value"), &schema(77))
        .await
        .unwrap();
    let mut corrupt = payment(77, id77, 0);
    corrupt.extend_from_slice(b"junk");
    common::produce(&producer, &avro, "k", &corrupt).await;
    let decode_failed = format!(
        "sightline_records_dead_lettered_total{{class=\"avro_decode_failed\",topic=\"{avro}\"}}"
    );
    sl.wait_metric(&decode_failed, 1, Duration::from_secs(60))
        .await;

    // A schema id of another subject: the dead letter says so, not only "missing field".
    let other = common::unique("other");
    // A namespace of its own: the registry gives identical schemas one id, and names the first
    // subject that registered it.
    let foreign = format!(
        r#"{{"type": "record", "name": "Parcel", "namespace": "n{}", "fields": [{{"name": "parcel", "type": "string"}}, {{"name": "at", "type": "long"}}]}}"#,
        uuid_like(&other)
    );
    let foreign = foreign.as_str();
    let foreign_id =
        sightline::registry::register_avro(&settings, &format!("{other}-value"), foreign)
            .await
            .unwrap();
    let value = common::confluent_avro(
        foreign,
        foreign_id,
        vec![
            ("parcel", apache_avro::types::Value::String("P-1".into())),
            (
                "at",
                apache_avro::types::Value::Long(chrono::Utc::now().timestamp_millis()),
            ),
        ],
    );
    common::produce(&producer, &avro, "k", &value).await;
    let dlq = common::read_topic(&format!("{avro}.dlq"), 3, Duration::from_secs(30));
    assert_eq!(dlq.len(), 3);
    assert_eq!(
        dlq[1].header("sightline.error.class"),
        Some("avro_decode_failed")
    );
    assert!(
        dlq[1]
            .header("sightline.error.message")
            .unwrap_or_default()
            .contains("4 bytes after the datum"),
        "{:?}",
        dlq[1].header("sightline.error.message")
    );
    let message = dlq[2].header("sightline.error.message").unwrap_or_default();
    assert!(
        message.contains(&format!("registered under subject `{other}-value`")),
        "{message}"
    );
    sl.stop().await;
}
