//! Fixed benchmark inputs shared by the benches (placeholder, filled in below).
