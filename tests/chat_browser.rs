//! The chat example in headless Chromium (Debian's `chromium`, driven by npm
//! `playwright-core`): two pages, a message posted from one shows on both; the private room
//! lets in only the page with the VIP token. Screenshots land in `target/`.

mod support;

use std::time::Duration;

use support::{Server, root, run_node};

#[test]
fn two_pages_see_each_message_and_only_vips_enter_the_private_room() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/test installs Debian's `chromium` package"
    );
    let server = Server::start("chat", &[]);
    let shots = root().join("target");
    run_node(
        "chat_browser.mjs",
        "two-pages",
        &server.url(),
        &[(
            "TIDINGS_SCREENSHOT_DIR",
            shots.to_str().expect("utf-8 path"),
        )],
        Duration::from_secs(120),
    );
    assert!(shots.join("chat-page-1.png").exists(), "screenshot saved");
}
