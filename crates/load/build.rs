//! `sqlx::migrate!` embeds ../../migrations at compile time; rebuild when a
//! migration is added or edited (sqlx's documented way).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
