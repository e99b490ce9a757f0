//! Dovecot's value escaping (`strescape.c`: `str_append_tabescaped`,
//! `p_strsplit_tabescaped`) and the serializer's NULL marker (`dsync-serializer.c`).
//!
//! Inside a value, `\0 \x01 TAB CR LF` become `\x01` followed by `0 1 t r n`; on decode
//! `\x01` followed by any other byte yields that byte, and a `\x01` at the very end is
//! dropped. An absent (NULL) value is the single byte `\x02`; a present value that starts
//! with `\x02` gets one more `\x02` in front.

/// The escape byte.
pub(crate) const ESCAPE: u8 = 0x01;
/// The byte that stands for an absent value.
pub(crate) const NULL_CHR: u8 = 0x02;

/// Appends `value` tab-escaped.
pub fn append_tabescaped(out: &mut Vec<u8>, value: &[u8]) {
    let mut start = 0;
    for (index, &byte) in value.iter().enumerate() {
        let code = match byte {
            0 => b'0',
            ESCAPE => b'1',
            b'\t' => b't',
            b'\r' => b'r',
            b'\n' => b'n',
            _ => continue,
        };
        out.extend_from_slice(&value[start..index]);
        out.extend_from_slice(&[ESCAPE, code]);
        start = index + 1;
    }
    out.extend_from_slice(&value[start..]);
}

/// Undoes [`append_tabescaped`] (any escaped byte other than the five codes stands for
/// itself; a lone `\x01` at the end is dropped, as Dovecot's `str_tabunescape` does).
pub fn tabunescape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.iter();
    while let Some(&byte) = bytes.next() {
        if byte != ESCAPE {
            out.push(byte);
            continue;
        }
        let Some(&code) = bytes.next() else { break };
        out.push(match code {
            b'0' => 0,
            b'1' => ESCAPE,
            b't' => b'\t',
            b'r' => b'\r',
            b'n' => b'\n',
            other => other,
        });
    }
    out
}

/// Splits `text` on TAB and unescapes each piece, as `p_strsplit_tabescaped`: a TAB right
/// after `\x01` is part of the value, and an empty `text` has no pieces at all.
pub fn split_tabescaped(text: &[u8]) -> Vec<Vec<u8>> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < text.len() {
        match text[index] {
            ESCAPE => index += 2,
            b'\t' => {
                pieces.push(tabunescape(&text[start..index]));
                index += 1;
                start = index;
            }
            _ => index += 1,
        }
    }
    pieces.push(tabunescape(&text[start..text.len()]));
    pieces
}

/// Joins `pieces` with TAB, each tab-escaped (the inverse of [`split_tabescaped`] for a
/// non-empty list).
pub fn join_tabescaped<I, P>(pieces: I) -> Vec<u8>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for (index, piece) in pieces.into_iter().enumerate() {
        if index > 0 {
            out.push(b'\t');
        }
        append_tabescaped(&mut out, piece.as_ref());
    }
    out
}

/// Appends one serialized value: NULL as `\x02`, else (with a `\x02` doubled at the
/// start) the tab-escaped bytes.
pub(crate) fn append_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.push(NULL_CHR),
        Some(value) => {
            if value.first() == Some(&NULL_CHR) {
                out.push(NULL_CHR);
            }
            append_tabescaped(out, value);
        }
    }
}

/// The values of one item line (after its type byte): split, unescaped, NULLs restored.
/// A value cut at an escaped NUL keeps what came before it, as Dovecot's C strings do.
pub(crate) fn decode_values(line: &[u8]) -> Vec<Option<Vec<u8>>> {
    split_tabescaped(line)
        .into_iter()
        .map(|mut value| {
            if let Some(nul) = memchr::memchr(0, &value) {
                value.truncate(nul);
            }
            match value.first() {
                Some(&NULL_CHR) if value.len() == 1 => None,
                Some(&NULL_CHR) => {
                    value.remove(0);
                    Some(value)
                }
                _ => Some(value),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let mut out = Vec::new();
        append_tabescaped(&mut out, b"a\tb\r\n\x01c\0d");
        assert_eq!(out, b"a\x01tb\x01r\x01n\x011c\x010d");
        assert_eq!(tabunescape(&out), b"a\tb\r\n\x01c\0d");
        // Any other escaped byte is itself; a trailing escape vanishes.
        assert_eq!(tabunescape(b"\x01x\x01"), b"x");
        assert_eq!(split_tabescaped(b""), Vec::<Vec<u8>>::new());
        assert_eq!(
            split_tabescaped(b"a\t\tb\x01\tc"),
            vec![b"a".to_vec(), vec![], b"b\tc".to_vec()]
        );
        assert_eq!(join_tabescaped(["Foo", "B\tar"]), b"Foo\tB\x01tar");
    }

    #[test]
    fn null_and_leading_null_bytes() {
        let mut line = Vec::new();
        append_value(&mut line, None);
        line.push(b'\t');
        append_value(&mut line, Some(b"\x02x"));
        line.push(b'\t');
        append_value(&mut line, Some(b""));
        assert_eq!(line, b"\x02\t\x02\x02x\t");
        assert_eq!(decode_values(&line), vec![None, Some(b"\x02x".to_vec()), Some(Vec::new())]);
        // An escaped NUL ends the value, as it ends a C string.
        assert_eq!(decode_values(b"ab\x010cd"), vec![Some(b"ab".to_vec())]);
    }

    proptest::proptest! {
        #[test]
        fn escaping_round_trips(values in proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(1u8..=255, 0..12)), 1..6)) {
            let mut line = Vec::new();
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    line.push(b'\t');
                }
                append_value(&mut line, value.as_deref());
            }
            // One empty value alone is no value at all (as in Dovecot).
            let expected = if values == [Some(Vec::new())] { Vec::new() } else { values.clone() };
            proptest::prop_assert_eq!(decode_values(&line), expected);
        }
    }
}
