//! Fan-out benchmark (placeholder until the relay driver lands; see the final version).
fn main() {}
