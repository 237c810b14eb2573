//! Client bundles for the examples' pages, read from the npm packages pinned in
//! package-lock.json (installed with `npm ci` the first time they are missing).

use std::path::PathBuf;

/// The file at `path` under `node_modules/` (for instance
/// `socket.io-client/dist/socket.io.min.js`), running `npm ci` first when it is missing;
/// `None` when it still cannot be read (the page will then not connect, and the log says why).
pub fn asset(path: &str) -> Option<actix_web::web::Bytes> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("node_modules").join(path);
    if !file.exists() {
        tracing::info!(path, "not installed yet; running `npm ci`");
        let installed = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&root)
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            tracing::error!("`npm ci` failed: the page will not connect (is npm installed?)");
        }
    }
    std::fs::read(&file).ok().map(actix_web::web::Bytes::from)
}
