//! The journal source: reads journald entries (live or from files), checkpointing a cursor.
//! SKELETON: to be written.
