// `embed_migrations!` reads backend-api/migrations at compile time, but cargo does not
// know that: without this, adding or editing a migration would not trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
