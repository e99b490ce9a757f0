//! `dovecot-keywords` (`maildir-keywords.c`): `<index> <name>\n` lines mapping the file-name
//! letters `a`–`z` (indexes 0–25) to keyword names.
//!
//! Reading follows Dovecot: lines without a space, with a bad or too large index, an empty
//! name or a name already seen (names compare case-insensitively) are skipped. A letter with
//! no entry reads as the keyword `unknown-<index>`, the name Dovecot gives it.

use std::fmt::Write as _;

/// Letters available per mailbox.
pub(crate) const MAX_KEYWORDS: usize = 26;

/// The keyword table of one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeywordTable {
    names: Vec<Option<String>>,
}

impl KeywordTable {
    /// Parses the file (any bytes; invalid lines are skipped as Dovecot does).
    pub(crate) fn parse(data: &[u8]) -> KeywordTable {
        let mut table = KeywordTable::default();
        for line in data.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else { continue };
            let Some((index, name)) = line.split_once(' ') else { continue };
            // Digits only, as Dovecot's `str_to_uint` (Rust's parse would also take `+1`).
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Some(index) = index.parse::<usize>().ok().filter(|&i| i < MAX_KEYWORDS) else {
                continue;
            };
            if name.is_empty() || table.index_of(name).is_some() {
                continue;
            }
            table.set(index, name);
        }
        table
    }

    /// The file contents, entries in index order.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        for (index, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                let _ = writeln!(out, "{index} {name}");
            }
        }
        out.into_bytes()
    }

    /// The name for an index; `unknown-<index>` when the file has none.
    pub(crate) fn name(&self, index: u8) -> String {
        self.names
            .get(usize::from(index))
            .and_then(Option::as_deref)
            .map_or_else(|| format!("unknown-{index}"), str::to_string)
    }

    /// The index of a keyword (case-insensitive, as Dovecot's hash table).
    pub(crate) fn index_of(&self, name: &str) -> Option<u8> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The index of a keyword, adding it at the lowest free index if new. `None` when all
    /// 26 letters are taken. The bool says whether the table changed.
    pub(crate) fn index_or_insert(&mut self, name: &str) -> Option<(u8, bool)> {
        if let Some(index) = self.index_of(name) {
            return Some((index, false));
        }
        let free = (0..MAX_KEYWORDS).find(|&i| self.names.get(i).is_none_or(Option::is_none))?;
        self.set(free, name);
        Some((u8::try_from(free).ok()?, true))
    }

    fn set(&mut self, index: usize, name: &str) {
        if self.names.len() <= index {
            self.names.resize(index + 1, None);
        }
        self.names[index] = Some(name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_known_answers() {
        let table = KeywordTable::parse(
            b"0 $Label1\n1 Junk\n3 NonJunk\nbogus\n26 TooHigh\n2 junk\nx y\n4 \n+5 plus\n",
        );
        assert_eq!(table.name(0), "$Label1");
        assert_eq!(table.name(1), "Junk");
        assert_eq!(table.name(2), "unknown-2");
        assert_eq!(table.name(3), "NonJunk");
        assert_eq!(table.index_of("JUNK"), Some(1));
        assert_eq!(table.to_bytes(), b"0 $Label1\n1 Junk\n3 NonJunk\n");
    }

    #[test]
    fn lowest_free_index_and_limit() {
        let mut table = KeywordTable::parse(b"0 a\n2 c\n");
        assert_eq!(table.index_or_insert("b"), Some((1, true)));
        assert_eq!(table.index_or_insert("A"), Some((0, false)));
        assert_eq!(table.index_or_insert("d"), Some((3, true)));
        for i in 4..26 {
            assert_eq!(table.index_or_insert(&format!("k{i}")), Some((i, true)));
        }
        assert_eq!(table.index_or_insert("one-too-many"), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn insert_then_round_trip(names in proptest::collection::vec("[!-~]{1,12}", 0..40)) {
                let mut table = KeywordTable::default();
                for name in &names {
                    if let Some((index, _)) = table.index_or_insert(name) {
                        prop_assert!(table.name(index).eq_ignore_ascii_case(name));
                    }
                }
                prop_assert_eq!(KeywordTable::parse(&table.to_bytes()), table);
            }

            #[test]
            fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
                crate::fuzzing::keywords(&data);
            }
        }
    }
}
