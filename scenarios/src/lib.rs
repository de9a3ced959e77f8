//! Scenarios: Goose load scenarios, operation history, the correctness checker and run
//! orchestration behind the `scenario` binary.
