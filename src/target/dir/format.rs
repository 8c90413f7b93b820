//! What the run's files hold: value lines and increment records, each of a fixed width, so a
//! value is rewritten in place (`pwrite` at its offset, never a truncate) and a file's length
//! says how many increments it holds.
//!
//! - A **value line** is ten decimal digits and a newline (`0000000042\n`): a slot file starts
//!   with one; the record file is one per field.
//! - An **increment record** is one update, naming who made it: `+WWWWWWW UUUUUUUUUU\n`, the
//!   worker (7 digits) and its update number (10). `append` adds one to its file per update.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes of a value line: ten digits (a u32 at most) and a newline.
pub const VALUE: usize = 11;
/// Bytes of an increment record.
pub const INCREMENT: usize = 20;

/// `value` as a value line.
pub fn value_line(value: u32) -> [u8; VALUE] {
    let mut out = [b'\n'; VALUE];
    out[..10].copy_from_slice(format!("{value:010}").as_bytes());
    out
}

/// The value of a value line; None if it is not one.
pub fn parse_value(line: &[u8]) -> Option<u32> {
    match line {
        [digits @ .., b'\n'] if digits.len() == 10 && digits.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
        _ => None,
    }
}

/// The increment record of `worker`'s update number `update`.
pub fn increment(worker: usize, update: u64) -> [u8; INCREMENT] {
    let mut out = [0u8; INCREMENT];
    let text = format!(
        "+{:07} {:010}\n",
        worker % 10_000_000,
        update % 10_000_000_000
    );
    out.copy_from_slice(text.as_bytes());
    out
}

/// `values` as consecutive value lines.
pub fn value_lines(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|&v| value_line(v)).collect()
}

/// Why a file does not hold what its name promises.
#[derive(Debug)]
pub enum Unreadable {
    Io(io::Error),
    /// A value line that is not one, at this byte offset.
    NotAValue(u64),
    /// A length that is not a whole number of records (a torn append).
    Torn(u64),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Io(e) => write!(f, "{e}"),
            Unreadable::NotAValue(at) => write!(f, "no value line at byte {at}"),
            Unreadable::Torn(len) => write!(
                f,
                "{len} bytes is not a whole number of {INCREMENT}-byte increments (a torn append)"
            ),
        }
    }
}

impl From<io::Error> for Unreadable {
    fn from(e: io::Error) -> Self {
        Unreadable::Io(e)
    }
}

/// Reads `out.len()` value lines from the start of `file`.
pub fn read_values(file: &File, out: &mut [u32]) -> Result<(), Unreadable> {
    let mut bytes = vec![0u8; out.len() * VALUE];
    file.read_exact_at(&mut bytes, 0)?;
    for (i, (line, v)) in bytes.chunks_exact(VALUE).zip(out.iter_mut()).enumerate() {
        *v = parse_value(line).ok_or(Unreadable::NotAValue((i * VALUE) as u64))?;
    }
    Ok(())
}

/// How many increment records follow `header` bytes in a file of `len` bytes.
pub fn increments(len: u64, header: usize) -> Result<u64, Unreadable> {
    let body = len
        .checked_sub(header as u64)
        .ok_or(Unreadable::NotAValue(0))?;
    if body % INCREMENT as u64 != 0 {
        return Err(Unreadable::Torn(body));
    }
    Ok(body / INCREMENT as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_line_round_trips_at_its_fixed_width() {
        for v in [0, 7, 1_000_000, u32::MAX] {
            let line = value_line(v);
            assert_eq!(line.len(), VALUE);
            assert_eq!(parse_value(&line), Some(v));
        }
        assert_eq!(parse_value(b"12345x7890\n"), None);
        assert_eq!(parse_value(b"1234567890 "), None);
        assert_eq!(parse_value(b"9999999999\n"), None, "above u32::MAX");
    }

    #[test]
    fn an_increment_is_its_fixed_width_and_a_torn_one_is_named() {
        assert_eq!(&increment(3, 41), b"+0000003 0000000041\n");
        assert_eq!(
            increments(VALUE as u64 + 3 * INCREMENT as u64, VALUE).unwrap(),
            3
        );
        assert_eq!(increments(0, 0).unwrap(), 0);
        assert!(matches!(
            increments(VALUE as u64 + 7, VALUE),
            Err(Unreadable::Torn(7))
        ));
        assert!(increments(3, VALUE).is_err());
    }
}
