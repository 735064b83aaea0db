//! No build step: this script exists because `links = "dilly"` requires one. The
//! `links` key makes Cargo refuse two versions of dilly in one binary, which would
//! split the registry in two (the trick rayon-core uses for its one thread pool).

fn main() {}
