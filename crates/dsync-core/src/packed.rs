//! Small pieces for keeping per-message records compactly in memory: variable-length
//! integers and a table of the distinct flag sets seen. A folder's messages mostly share a
//! handful of flag sets and ascending UIDs, so a record of a few bytes replaces a
//! structure of tens (see [`crate::plan::SaveList`] and the base a run records).

use std::collections::HashMap;

use crate::model::Flags;

/// Appends `value` seven bits a byte, low bits first; the high bit says another byte
/// follows (LEB128).
pub(crate) fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push((value & 0x7f) as u8);
}

/// Appends `value` zig-zag encoded, so small differences of either sign take one byte.
pub(crate) fn put_signed(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)).cast_unsigned());
}

/// Reads what [`put_unsigned`] wrote at `*at`, moving `at` past it; `None` when the bytes
/// end first or the number has more than 64 bits.
pub(crate) fn get_unsigned(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Reads what [`put_signed`] wrote.
pub(crate) fn get_signed(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let raw = get_unsigned(bytes, at)?;
    Some((raw >> 1).cast_signed() ^ -((raw & 1).cast_signed()))
}

/// The distinct flag sets of some records, each kept once and named by its index.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlagSets {
    sets: Vec<Flags>,
    index: HashMap<Flags, usize>,
}

impl FlagSets {
    /// The index of `flags`, added when new.
    pub(crate) fn index_of(&mut self, flags: &Flags) -> usize {
        if let Some(&index) = self.index.get(flags) {
            return index;
        }
        let index = self.sets.len();
        self.index.insert(flags.clone(), index);
        self.sets.push(flags.clone());
        index
    }

    /// The flag set at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&Flags> {
        self.sets.get(index)
    }

    /// How many distinct sets there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn numbers_read_back(unsigned in any::<Vec<u64>>(), signed in any::<Vec<i64>>()) {
            let mut out = Vec::new();
            for &n in &unsigned {
                put_unsigned(&mut out, n);
            }
            for &n in &signed {
                put_signed(&mut out, n);
            }
            let mut at = 0;
            for &n in &unsigned {
                prop_assert_eq!(get_unsigned(&out, &mut at), Some(n));
            }
            for &n in &signed {
                prop_assert_eq!(get_signed(&out, &mut at), Some(n));
            }
            prop_assert_eq!(at, out.len());
            prop_assert_eq!(get_unsigned(&out, &mut at), None);
        }
    }

    #[test]
    fn small_numbers_take_one_byte() {
        let mut out = Vec::new();
        put_unsigned(&mut out, 127);
        put_signed(&mut out, -64);
        put_signed(&mut out, 63);
        assert_eq!(out.len(), 3);
        put_unsigned(&mut out, 128);
        assert_eq!(out.len(), 5);
    }
}
