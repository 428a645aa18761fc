//! A stream silent beyond its quiet period gives exactly one FIRING alert, then one RESOLVED
//! when traffic resumes (real broker).

mod common;

use rdkafka::producer::FutureProducer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_fires_once_and_resolves_when_traffic_returns() {
    common::require_kafka();
    let topic = common::unique("carrier-scans");
    common::create_topics(&[&topic], 1).await;
    let setup = common::Setup::new(
        &format!(
            "  - name: scans\n    topic: {topic}\n    format: json\n    event_type: {{ fixed: scan }}\n    \
             key: {{ field: k }}\n    event_time: {{ field: at }}\n    dimensions: {{ carrier: carrier }}\n\
             monitors:\n  freshness:\n    - {{ name: dhl-scans, source: scans, dimension: {{ carrier: dhl }}, quiet_period: 3s, severity: critical }}\n"
        ),
        None,
        &[],
    );
    let sl = setup.start().await;
    let producer: FutureProducer = common::client().create().unwrap();
    let scan = |carrier: &str| {
        format!(
            r#"{{"k":"p1","at":{},"carrier":"{carrier}"}}"#,
            chrono::Utc::now().timestamp_millis()
        )
    };
    common::produce(&producer, &topic, "p1", scan("dhl").as_bytes()).await;
    // Other carriers keep scanning; DHL goes quiet.
    let alerts_topic = format!("{}.alerts", setup.out);
    let firing = common::wait_for("the FIRING alert", Duration::from_secs(30), async || {
        common::produce(&producer, &topic, "p2", scan("ups").as_bytes()).await;
        let got = common::read_topic(&alerts_topic, 1, Duration::from_millis(500));
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(firing.len(), 1);
    common::produce(&producer, &topic, "p1", scan("dhl").as_bytes()).await;
    let alerts = common::read_topic(&alerts_topic, 2, Duration::from_secs(30));
    let got: Vec<(String, String, String)> = alerts
        .iter()
        .map(|r| {
            let a: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (
                a["dedupe_id"].as_str().unwrap().into(),
                a["kind"].as_str().unwrap().into(),
                a["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "freshness/dhl-scans".into(),
                "stream_silent".into(),
                "FIRING".into()
            ),
            (
                "freshness/dhl-scans".into(),
                "stream_silent".into(),
                "RESOLVED".into()
            ),
        ]
    );
    sl.stop().await;
}
