//! Media capture and encoding: camera, microphone and encoder traits with Linux and synthetic
//! implementations.
