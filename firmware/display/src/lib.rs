//! The status display: a pure function from the box's state to a screen, and its backends.
