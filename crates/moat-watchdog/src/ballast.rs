//! A benchmark aid: memory the watchdog allocates, touches and holds, so that the cost of
//! spawning a call can be measured against the size of the watchdog
//! (`MOAT_WATCHDOG_BALLAST_MB`). A `fork` copies the page tables of every touched page; the
//! spawn of [`moat_sandbox::spawn`] does not, and this shows it.

/// Allocates `mib` MiB and writes to every page, so that each is really mapped. The memory
/// is held until the returned vector is dropped.
pub fn allocate(mib: usize) -> Vec<u8> {
    let len = mib.saturating_mul(1 << 20);
    let mut v = vec![0u8; len];
    // A fresh zeroed allocation may be lazily mapped: write one byte per page.
    for i in (0..len).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn touches_every_page() {
        let v = super::allocate(2);
        assert_eq!(v.len(), 2 << 20);
        assert_eq!(v.iter().filter(|&&b| b == 1).count(), (2 << 20) / 4096);
    }
}
