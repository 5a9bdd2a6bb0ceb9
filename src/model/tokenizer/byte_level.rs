//! GPT-2's byte-to-character table: every byte is stored in byte-level BPE vocabularies as
//! one printable character (printable Latin-1 bytes as themselves, the others shifted to
//! U+0100 and up).

use std::sync::OnceLock;

fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The character byte `b` is written as.
pub fn char_of(b: u8) -> char {
    table().0[b as usize]
}

/// The byte character `c` stands for, if it stands for one.
pub fn byte_of(c: char) -> Option<u8> {
    let t = &table().1;
    t.get(&c).copied()
}

#[allow(clippy::type_complexity)]
fn table() -> &'static ([char; 256], ahash::AHashMap<char, u8>) {
    static T: OnceLock<([char; 256], ahash::AHashMap<char, u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let mut chars = ['\0'; 256];
        let mut back = ahash::AHashMap::with_capacity(256);
        let mut shifted = 0u32;
        for b in 0..=255u8 {
            let c = if is_printable(b) {
                char::from(b)
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap_or('\u{FFFD}')
            };
            chars[b as usize] = c;
            back.insert(c, b);
        }
        (chars, back)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_characters() {
        assert_eq!(char_of(b' '), 'Ġ');
        assert_eq!(char_of(b'\n'), 'Ċ');
        assert_eq!(char_of(b'a'), 'a');
        assert_eq!(char_of(0xAD), 'Ń');
        for b in 0..=255u8 {
            assert_eq!(byte_of(char_of(b)), Some(b));
        }
    }
}
