// Rebuild when a migration changes: `sqlx::migrate!` embeds the migrations at compile time.
//
// The tests that need PostgreSQL are compiled as ignored unless `GATEWAY_TEST_POSTGRES_URL`
// is set when they are built, so a run without a server reports them as ignored (with the
// reason) instead of passing them. The same holds for the tests that need an S3-compatible
// server and `GATEWAY_TEST_S3_URL`.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo::rerun-if-env-changed=GATEWAY_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    let url = std::env::var("GATEWAY_TEST_POSTGRES_URL").unwrap_or_default();
    if !url.trim().is_empty() {
        println!("cargo::rustc-cfg=postgres_tests");
    }
    println!("cargo::rerun-if-env-changed=GATEWAY_TEST_S3_URL");
    println!("cargo::rustc-check-cfg=cfg(s3_tests)");
    if !std::env::var("GATEWAY_TEST_S3_URL").unwrap_or_default().trim().is_empty() {
        println!("cargo::rustc-cfg=s3_tests");
    }
}
