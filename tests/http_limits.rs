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
    // How many were over the cap at accept depends on how fast the test connects (the
    // header-read timeout frees slots meanwhile): the cap itself is the next test's.
    sl.stop().await;
}

/// The cap, in-process and without timing: with room for 8 connections and timeouts far longer
/// than the test, the 9th and 10th are closed at accept while the first 8 stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_accept() {
    let limits = sightline::serve::http::Limits {
        max_connections: 8,
        header_read_timeout: Duration::from_secs(300),
        idle_timeout: Duration::from_secs(300),
    };
    let (addr, server) = sightline::serve::http::serve_with(
        "127.0.0.1:0".parse().unwrap(),
        sightline::observe::health::Health::new(),
        limits,
    )
    .await
    .unwrap();
    let states = tokio::task::spawn_blocking(move || {
        // Accepted in the order they connect: the first 8 take the slots.
        let held: Vec<std::net::TcpStream> = (0..10)
            .map(|i| {
                let s = std::net::TcpStream::connect(addr).unwrap();
                // An open one is seen by a read that times out; a closed one by EOF, which
                // comes as soon as the server has accepted and closed it.
                let wait = if i < 8 { 500 } else { 10_000 };
                s.set_read_timeout(Some(Duration::from_millis(wait)))
                    .unwrap();
                s
            })
            .collect();
        held.iter()
            .map(|s| {
                let mut s = s;
                let mut buf = [0u8; 1];
                match s.read(&mut buf) {
                    Ok(0) => "closed",
                    Ok(_) => "data",
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        "open"
                    }
                    Err(_) => "closed",
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    server.abort();
    assert_eq!(states, [vec!["open"; 8], vec!["closed"; 2]].concat());
}
