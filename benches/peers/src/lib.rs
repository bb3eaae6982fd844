//! What the peers share: their command line, `LISTEN=UPSTREAM...`, one relay per pair, and
//! the event-loop relays' start (one loop, or one per direction).

/// The `LISTEN=UPSTREAM` pairs among the arguments (flags, starting with `--`, are the
/// caller's); exits with status 2 naming `program` on a malformed one.
pub fn pairs(program: &str) -> Vec<(String, String)> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|pair| match pair.split_once('=') {
            Some((listen, upstream)) => (listen.to_string(), upstream.to_string()),
            None => {
                eprintln!("{program}: expected LISTEN=UPSTREAM, got {pair:?}");
                std::process::exit(2);
            }
        })
        .collect()
}

/// A listener on every pair's address, with its upstream; exits with status 1 naming
/// `program` when an address cannot be bound.
pub fn listeners(program: &str) -> Vec<(std::net::TcpListener, String)> {
    pairs(program)
        .into_iter()
        .map(|(listen, upstream)| {
            let listener = std::net::TcpListener::bind(&listen).unwrap_or_else(|e| {
                eprintln!("{program}: cannot listen on {listen}: {e}");
                std::process::exit(1);
            });
            (listener, upstream)
        })
        .collect()
}

/// Starts an event-loop relay: `new_loop` makes its loop, or with `--per-direction` one for
/// each direction; prints `ready`; then accepts on every listener, each on a thread of its
/// own, with `accept(listener, upstream, to_upstream, to_client)`, until they all end.
pub fn run_loops<L: Clone + Send + 'static>(
    program: &str,
    new_loop: impl Fn() -> L,
    accept: fn(std::net::TcpListener, &str, &L, &L),
) {
    let per_direction = std::env::args().any(|a| a == "--per-direction");
    let listeners = listeners(program);
    let to_upstream = new_loop();
    let to_client = if per_direction {
        new_loop()
    } else {
        to_upstream.clone()
    };
    println!("ready");
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(listener, upstream)| {
            let (a, b) = (to_upstream.clone(), to_client.clone());
            std::thread::spawn(move || accept(listener, &upstream, &a, &b))
        })
        .collect();
    for a in accepting {
        let _ = a.join();
    }
}
