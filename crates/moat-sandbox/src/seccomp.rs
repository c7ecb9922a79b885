//! The seccomp socket layer (being written).
