//! Sightline against a schema registry that requires basic auth: a proxy in front of the local
//! Apicurio answers 401 without the right credentials. With `registry.username` and
//! `registry.password_file`, Sightline decodes an Avro record through it, every call it makes
//! is authorised, and the password is listed for deploy/local/check-secrets.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use rdkafka::producer::FutureProducer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SCHEMA: &str = r#"{"type": "record", "name": "Pick", "fields": [
  {"name": "type", "type": "string"}, {"name": "id", "type": "string"}, {"name": "at", "type": "long"}]}"#;

struct Proxy {
    upstream: String,
    expected: String,
    authorised: AtomicUsize,
    refused: AtomicUsize,
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn forward(
    State(p): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != p.expected {
        p.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, "credentials required").into_response();
    }
    p.authorised.fetch_add(1, Ordering::SeqCst);
    common::forward_http(&p.upstream, method, &uri, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sightline_reads_avro_through_a_registry_that_requires_basic_auth() {
    common::require_kafka();
    common::require_registry();
    let password = format!("pw-{}", common::unique("registry"));
    let secrets = std::env::temp_dir().join("sightline-secrets-under-test");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("registry-password"), &password).unwrap();

    let proxy = Arc::new(Proxy {
        upstream: common::registry_url(),
        expected: format!(
            "Basic {}",
            base64(format!("sightline:{password}").as_bytes())
        ),
        authorised: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let proxied = format!("http://{addr}");
    // Without credentials the proxy refuses, as a secured registry does.
    let (code, _) = common::http_get(&format!("{proxied}/subjects"))
        .await
        .unwrap();
    assert_eq!(code, 401);

    let topic = common::unique("picks-avro");
    common::create_topics(&[&topic], 1).await;
    let settings = schema_registry_converter::async_impl::schema_registry::SrSettings::new(
        common::registry_url(),
    );
    let id = sightline::registry::register_avro(&settings, &format!("{topic}-value"), SCHEMA)
        .await
        .expect("schema registered");
    let now = chrono::Utc::now().timestamp_millis();
    let record = common::confluent_avro(
        SCHEMA,
        id,
        vec![
            (
                "type",
                apache_avro::types::Value::String("item_picked".into()),
            ),
            ("id", apache_avro::types::Value::String("P-1".into())),
            ("at", apache_avro::types::Value::Long(now)),
        ],
    );
    let p: FutureProducer = common::client().create().unwrap();
    common::produce(&p, &topic, "P-1", &record).await;

    let sources = format!(
        "  - name: picks\n    topic: {topic}\n    format: avro\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n"
    );
    let setup = common::Setup::new(&sources, Some(5_000), &[]);
    let file = setup.dir.join("registry-password");
    std::fs::write(&file, &password).unwrap();
    let text = std::fs::read_to_string(setup.config()).unwrap();
    let direct = format!("url = \"{}\"", common::registry_url());
    assert!(text.contains(&direct));
    std::fs::write(
        setup.config(),
        text.replace(
            &direct,
            &format!(
                "url = \"{proxied}\"\nusername = \"sightline\"\npassword_file = \"{}\"",
                file.display()
            ),
        ),
    )
    .unwrap();
    let sl = setup.start().await;
    sl.wait_metric(
        &format!("sightline_events_consumed_total{{event_type=\"item_picked\",topic=\"{topic}\"}}"),
        1,
        Duration::from_secs(60),
    )
    .await;
    sl.stop().await;
    assert!(proxy.authorised.load(Ordering::SeqCst) >= 1);
    // The one refusal is the test's own call without credentials.
    assert_eq!(proxy.refused.load(Ordering::SeqCst), 1);
}
