//! The origin policy against a real browser: headless Chromium visits the chat server A, then
//! a page of another origin B (another chat server, another port) tries to connect to A with
//! the visitor's cookie. Refused by default; with B allowed, it connects over polling (CORS,
//! with credentials) and WebSocket. Node clients without an `Origin` are unaffected either way.

mod support;

use std::time::Duration;

use support::{Server, run_node};

fn scenario(scenario: &str, allow_foreign: bool) {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/test installs Debian's `chromium` package"
    );
    let foreign = Server::start("chat", &[]);
    let allowed = foreign.url();
    let args: Vec<&str> = if allow_foreign {
        vec!["--allow-origin", &allowed]
    } else {
        Vec::new()
    };
    let server = Server::start("chat", &args);
    run_node(
        "origin_browser.mjs",
        scenario,
        &server.url(),
        &[("TIDINGS_FOREIGN_URL", allowed.as_str())],
        Duration::from_secs(90),
    );
}

#[test]
fn a_page_of_another_origin_is_refused_by_default() {
    scenario("refused", false);
}

#[test]
fn an_allowed_origin_connects_over_polling_and_websocket() {
    scenario("allowed", true);
}
