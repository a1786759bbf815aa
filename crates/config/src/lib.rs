//! Pipeline configuration: YAML in, a validated `Pipeline` out.
//!
//! Owns the pipeline file format and its validation. Validation happens before
//! anything connects, reports *every* problem at once (not the first), and names
//! each one by `file:line:col` and key path, so an operator fixes a file in one
//! pass. Secrets come in through `${VAR}` interpolation, never literals in logs.
//!
//! Status: the format lands with the pipeline issue; until then this crate
//! holds only its contract.
