//! Tests of the stateful decoder against a fake device.
