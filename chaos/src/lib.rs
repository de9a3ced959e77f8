//! Chaos: the fault injectors of the lab.
//!
//! This crate will hold a Toxiproxy-compatible fault proxy (one seeded, pure transformation per
//! toxic), process faults (kill/restart, pause/resume), fault schedules and the `chaos` CLI.
//! It is empty until the chaos issue lands; the workspace lists it so the layout is fixed.
