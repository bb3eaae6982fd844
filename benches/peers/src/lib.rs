//! What the peers share: their command line, `LISTEN=UPSTREAM...`, one relay per pair.

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
