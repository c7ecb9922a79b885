//! eBPF instructions, encoded by hand.
//!
//! Why not C compiled by clang, or Rust compiled by bpf-linker: the programs moat needs
//! (cgroup_skb counters and cgroup sock_addr port checks) are a few dozen instructions,
//! read only their context and maps, and need no BTF or relocations. Emitting them here
//! keeps the build free of clang and of a nightly toolchain, keeps the loader free of an
//! ELF parser (aya's object crate), and lets each program be built for one container's
//! ports with the ports as immediates: no map lookup to decide a port. The verifier checks
//! every program at load, and the tests load each one into the real kernel.

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    /// The instruction as the kernel reads it (little-endian fields, as on every machine
    /// moat builds for).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// A register.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Reg(pub u8);

/// Return value and helper results.
pub const R0: Reg = Reg(0);
/// First argument (the context at entry).
pub const R1: Reg = Reg(1);
/// Second argument.
pub const R2: Reg = Reg(2);
/// Third argument.
pub const R3: Reg = Reg(3);
/// Fourth argument.
pub const R4: Reg = Reg(4);
/// Callee-saved.
pub const R6: Reg = Reg(6);
/// Callee-saved.
pub const R7: Reg = Reg(7);
/// Callee-saved.
pub const R8: Reg = Reg(8);
/// Callee-saved.
pub const R9: Reg = Reg(9);
/// Frame pointer (read only).
pub const R10: Reg = Reg(10);

// Instruction classes, sizes, modes and operations (linux/bpf_common.h, linux/bpf.h).
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const ALU: u8 = 0x04;
const W: u8 = 0x00;
const DW: u8 = 0x18;
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
const ATOMIC: u8 = 0xc0;
/// `BPF_FETCH`: an atomic operation that also returns the old value.
const FETCH: u8 = 0x01;
const K: u8 = 0x00;
const X: u8 = 0x08;
const ADD: u8 = 0x00;
const OR: u8 = 0x40;
const MOV: u8 = 0xb0;
const END: u8 = 0xd0;
const TO_BE: u8 = 0x08;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JGE: u8 = 0x30;
const JNE: u8 = 0x50;
const JLT: u8 = 0xa0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load that names a map by its fd.
const PSEUDO_MAP_FD: u8 = 1;

fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src.0 << 4) | (dst.0 & 0x0f),
        off,
        imm,
    }
}

/// `dst = src` (64-bit).
pub fn mov(dst: Reg, src: Reg) -> Insn {
    insn(ALU64 | MOV | X, dst, src, 0, 0)
}
/// `dst = imm` (64-bit, sign-extended).
pub fn mov_imm(dst: Reg, imm: i32) -> Insn {
    insn(ALU64 | MOV | K, dst, R0, 0, imm)
}
/// `dst += imm` (64-bit).
pub fn add_imm(dst: Reg, imm: i32) -> Insn {
    insn(ALU64 | ADD | K, dst, R0, 0, imm)
}
/// `dst += src` (64-bit).
pub fn add(dst: Reg, src: Reg) -> Insn {
    insn(ALU64 | ADD | X, dst, src, 0, 0)
}
/// `dst |= imm` (64-bit).
pub fn or_imm(dst: Reg, imm: i32) -> Insn {
    insn(ALU64 | OR | K, dst, R0, 0, imm)
}
/// `dst = be16(dst)`: network to host order for a 16-bit port on this little-endian
/// machine (and a no-op zero extension on a big-endian one), upper bits cleared.
pub fn be16(dst: Reg) -> Insn {
    insn(ALU | END | TO_BE, dst, R0, 0, 16)
}
/// `dst = *(u32 *)(src + off)`.
pub fn ldx_w(dst: Reg, src: Reg, off: i16) -> Insn {
    insn(LDX | MEM | W, dst, src, off, 0)
}
/// `dst = *(u64 *)(src + off)`.
pub fn ldx_dw(dst: Reg, src: Reg, off: i16) -> Insn {
    insn(LDX | MEM | DW, dst, src, off, 0)
}
/// `*(u32 *)(dst + off) = src`.
pub fn stx_w(dst: Reg, off: i16, src: Reg) -> Insn {
    insn(STX | MEM | W, dst, src, off, 0)
}
/// `*(u64 *)(dst + off) = src`.
pub fn stx_dw(dst: Reg, off: i16, src: Reg) -> Insn {
    insn(STX | MEM | DW, dst, src, off, 0)
}
/// `*(u32 *)(dst + off) = imm`.
pub fn st_w(dst: Reg, off: i16, imm: i32) -> Insn {
    insn(ST | MEM | W, dst, R0, off, imm)
}
/// `*(u64 *)(dst + off) = imm`.
pub fn st_dw(dst: Reg, off: i16, imm: i32) -> Insn {
    insn(ST | MEM | DW, dst, R0, off, imm)
}
/// `lock *(u64 *)(dst + off) += src`: for maps shared by all CPUs.
pub fn atomic_add_dw(dst: Reg, off: i16, src: Reg) -> Insn {
    insn(STX | ATOMIC | DW, dst, src, off, ADD as i32)
}
/// `src = atomic_fetch_add((u64 *)(dst + off), src)`: adds and returns the old value.
pub fn atomic_fetch_add_dw(dst: Reg, off: i16, src: Reg) -> Insn {
    insn(STX | ATOMIC | DW, dst, src, off, (ADD | FETCH) as i32)
}
/// `dst = map` (a 64-bit immediate load: two instructions).
pub fn ld_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
    [
        insn(LD | DW | IMM, dst, Reg(PSEUDO_MAP_FD), 0, fd),
        insn(0, R0, R0, 0, 0),
    ]
}
/// Jump `off` instructions forward unconditionally.
pub fn ja(off: i16) -> Insn {
    insn(JMP | JA, R0, R0, off, 0)
}
/// `if dst == imm goto +off`.
pub fn jeq_imm(dst: Reg, imm: i32, off: i16) -> Insn {
    insn(JMP | JEQ | K, dst, R0, off, imm)
}
/// `if dst != imm goto +off`.
pub fn jne_imm(dst: Reg, imm: i32, off: i16) -> Insn {
    insn(JMP | JNE | K, dst, R0, off, imm)
}
/// `if dst < imm goto +off` (unsigned).
pub fn jlt_imm(dst: Reg, imm: i32, off: i16) -> Insn {
    insn(JMP | JLT | K, dst, R0, off, imm)
}
/// `if dst > imm goto +off` (unsigned).
pub fn jgt_imm(dst: Reg, imm: i32, off: i16) -> Insn {
    insn(JMP | JGT | K, dst, R0, off, imm)
}
/// `if dst >= imm goto +off` (unsigned).
pub fn jge_imm(dst: Reg, imm: i32, off: i16) -> Insn {
    insn(JMP | JGE | K, dst, R0, off, imm)
}
/// Call helper number `id`.
pub fn call(id: i32) -> Insn {
    insn(JMP | CALL, R0, R0, 0, id)
}
/// Return `r0`.
pub fn exit() -> Insn {
    insn(JMP | EXIT, R0, R0, 0, 0)
}

/// Helper numbers (linux/bpf.h `__BPF_FUNC_MAPPER`).
pub mod helper {
    /// `bpf_map_lookup_elem`.
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    /// `bpf_map_update_elem`.
    pub const MAP_UPDATE_ELEM: i32 = 2;
    /// `bpf_skb_cgroup_id`: the cgroup v2 id of the packet's socket.
    pub const SKB_CGROUP_ID: i32 = 79;
    /// `bpf_skb_ancestor_cgroup_id`: the id of that cgroup's ancestor at a level.
    pub const SKB_ANCESTOR_CGROUP_ID: i32 = 83;
    /// `bpf_set_retval` (5.18): the errno a cgroup program's refusal returns.
    pub const SET_RETVAL: i32 = 187;
}

/// A program under construction, with forward jumps to labels patched at the end.
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    fixups: Vec<(usize, Label)>,
    labels: Vec<Option<usize>>,
}

/// A jump target, placed later with [`Asm::place`].
#[derive(Copy, Clone, Debug)]
pub struct Label(usize);

impl Asm {
    /// A new label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    /// Puts `label` at the next instruction.
    pub fn place(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }
    /// Appends instructions.
    pub fn push(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }
    /// Appends a jump (built with offset 0) whose target is `to`.
    pub fn jump(&mut self, jump: Insn, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.insns.push(jump);
    }
    /// The finished program. Panics only on a label never placed or a jump longer than
    /// 32767 instructions, both bugs in this crate's own program builders (the tests
    /// build every program).
    pub fn finish(mut self) -> Vec<Insn> {
        for (at, label) in self.fixups {
            let target = self.labels[label.0].expect("label placed");
            let off = target as isize - at as isize - 1;
            self.insns[at].off = i16::try_from(off).expect("jump in range");
        }
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_uapi() {
        // r0 = 1; exit: b7 00 00 00 01 00 00 00, 95 00 ...
        assert_eq!(
            mov_imm(R0, 1),
            Insn {
                code: 0xb7,
                regs: 0,
                off: 0,
                imm: 1
            }
        );
        assert_eq!(exit().code, 0x95);
        assert_eq!(ldx_w(R2, R6, 136).regs, 0x62);
        assert_eq!(ld_map_fd(R1, 7)[0].regs, 0x11);
        assert_eq!(ld_map_fd(R1, 7)[0].code, 0x18);
        assert_eq!(atomic_add_dw(R0, 0, R1).code, 0xdb);
        assert_eq!(be16(R2).code, 0xdc);
    }

    #[test]
    fn labels_patch_forward_jumps() {
        let mut a = Asm::default();
        let out = a.label();
        a.jump(jeq_imm(R0, 0, 0), out);
        a.push([mov_imm(R0, 2)]);
        a.place(out);
        a.push([exit()]);
        let p = a.finish();
        assert_eq!(p[0].off, 1);
    }
}
