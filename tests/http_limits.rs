//! The HTTP server beside the engine cannot be exhausted by clients: 2,000 connections held
//! open without a byte sent are all closed by the server (over the cap at accept, the others
//! by the header-read and idle timeouts), and `/healthz` answers meanwhile.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_held_connections_are_closed_and_healthz_still_answers() {
    common::require_kafka();
    let topic = common::unique("http");
    common::create_topics(&[&topic], 1).await;
    let sources = format!(
        "  - name: s\n    topic: {topic}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    let text = std::fs::read_to_string(setup.config()).unwrap().replace(
        "[http]\n",
        "[http]\nmax_connections = 512\nheader_read_timeout_ms = 2000\nidle_timeout_ms = 3000\n",
    );
    std::fs::write(setup.config(), text).unwrap();
    let sl = setup.start().await;
    let addr = format!("127.0.0.1:{}", setup.port);

    let opened = Instant::now();
    let held: Vec<std::net::TcpStream> = (0..2_000)
        .map(|_| {
            let s = std::net::TcpStream::connect(&addr).expect("connects");
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    // /healthz answers while they are held (a new connection gets a slot as soon as one of the
    // held ones is closed).
    let url = format!("http://{addr}/healthz");
    let (code, body) =
        common::wait_for("/healthz to answer", Duration::from_secs(20), async || {
            common::http_get(&url).await
        })
        .await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // Every held connection is closed by the server: a read ends (EOF or reset), not times out.
    let closed = tokio::task::spawn_blocking(move || {
        held.into_iter()
            .filter(|s| {
                let mut s = s;
                let mut buf = [0u8; 16];
                match s.read(&mut buf) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                }
            })
            .count()
    })
    .await
    .unwrap();
    let took = opened.elapsed();
    let refused = sl.metric("sightline_http_connections_refused_total").await;
    let idle = sl
        .metric("sightline_http_connections_idle_closed_total")
        .await;
    println!("http: {closed} of 2000 held connections closed by the server in {took:?}; {refused} refused at accept, {idle} closed idle");
    assert_eq!(closed, 2_000);
    // The cap was reached (the others were closed by the header-read timeout, which frees
    // their slots while the test is still connecting).
    assert!(refused > 0, "over the cap of 512, at accept: {refused}");
    sl.stop().await;
}
