//! The ids the stages pass each other: indexes into one checked config. The lowest layer of the
//! vocabulary, so rules, config, the aggregator and the dispatchers can name a rule or a robot
//! without depending on one another.
//!
//! Edges: ids are those of one config; across a reload the same number may name another rule or
//! robot, so whoever keeps state across a reload compares names too (see
//! [`crate::alert::Alert::same_stream`]).

/// Index of a rule in the config's rule list; stable for the life of one config.
pub type RuleId = usize;

/// Index of a robot in the config's robot list (sorted by name); stable for the life of one
/// config.
pub type RobotId = usize;
