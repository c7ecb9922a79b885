//! ELF dependency discovery for `--ldd` (being written).
