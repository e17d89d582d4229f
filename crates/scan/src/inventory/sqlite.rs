//! Minimal read-only SQLite reader (placeholder).
