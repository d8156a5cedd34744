//! The meeting: sans-IO meeting service and participant logic, and the box's configuration.
