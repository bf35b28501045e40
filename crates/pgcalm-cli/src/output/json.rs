//! pgcalm's one JSON printer: serde_json's pretty format (two spaces an indent, `": "`,
//! `[]` and `{}` when empty, the same escapes), byte for byte, as a `serde::Serializer`.
//! Ours because serde_json's string escaping looks at one byte at a time and its
//! `Formatter` cannot replace it: here a string is scanned sixteen bytes at a time and
//! its clean runs are written whole (a lint report is mostly text: 2 MB for 2,000 findings).
//! Errors are serde_json's, so callers keep their conversions.

use std::io::Write;

use serde::Serialize;
use serde::ser::{self, Impossible};

type Result<T = ()> = std::result::Result<T, serde_json::Error>;

/// `value` as pretty JSON (no newline at the end).
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut out = Vec::with_capacity(128);
    to_writer(&mut out, value)?;
    // Every byte written is ASCII or comes whole from a `str`.
    String::from_utf8(out).map_err(ser::Error::custom)
}

/// `value` as pretty JSON to `out` (no newline at the end), streamed as it goes.
pub(crate) fn to_writer<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> Result {
    value.serialize(&mut Printer { out, depth: 0 })
}

/// The serializer: where to write and how deep the current value is.
struct Printer<W> {
    out: W,
    depth: usize,
}

/// `,` and a line break, then room for 60 levels of indentation in one write.
const BREAK: [u8; 122] = {
    let mut line = [b' '; 122];
    line[0] = b',';
    line[1] = b'\n';
    line
};

impl<W: Write> Printer<W> {
    fn raw(&mut self, bytes: &[u8]) -> Result {
        self.out.write_all(bytes).map_err(serde_json::Error::io)
    }

    /// The break before an element or key: `,` (unless `first`), a line break and the
    /// indentation of the current depth.
    fn new_line(&mut self, first: bool) -> Result {
        let from = usize::from(first);
        let spaces = 2 * self.depth;
        if spaces + 2 <= BREAK.len() {
            return self.raw(&BREAK[from..spaces + 2]);
        }
        self.raw(&BREAK[from..2])?;
        (0..self.depth).try_for_each(|_| self.raw(b"  "))
    }

    /// `[` or `{`, one level deeper.
    fn open(&mut self, bracket: &'static [u8]) -> Result {
        self.depth += 1;
        self.raw(bracket)
    }

    /// `]` or `}`, one level up; on a line of its own unless the container was empty.
    fn close(&mut self, empty: bool, bracket: &'static [u8]) -> Result {
        self.depth -= 1;
        if !empty {
            self.new_line(true)?;
        }
        self.raw(bracket)
    }

    /// `{`, then the variant's name as the one key: `{"Variant": ...}`.
    fn open_variant(&mut self, variant: &str) -> Result {
        self.open(b"{")?;
        self.new_line(true)?;
        self.string_then(variant, b"\": ")
    }

    fn string(&mut self, s: &str) -> Result {
        self.string_then(s, b"\"")
    }

    /// A string whose closing quote is the first byte of `close` (`"` or `": `; an array
    /// so that its length is known where it is written: a copy, not a call to memcpy).
    fn string_then<const N: usize>(&mut self, s: &str, close: &[u8; N]) -> Result {
        self.raw(b"\"")?;
        let bytes = s.as_bytes();
        let mut clean = 0;
        while let Some(at) = next_to_escape(bytes, clean) {
            self.raw(&bytes[clean..at])?;
            self.escape(bytes[at])?;
            clean = at + 1;
        }
        self.raw(&bytes[clean..])?;
        self.raw(close)
    }

    #[cold]
    fn escape(&mut self, byte: u8) -> Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match byte {
            b'"' => self.raw(b"\\\""),
            b'\\' => self.raw(b"\\\\"),
            b'\n' => self.raw(b"\\n"),
            b'\r' => self.raw(b"\\r"),
            b'\t' => self.raw(b"\\t"),
            0x08 => self.raw(b"\\b"),
            0x0c => self.raw(b"\\f"),
            _ => self.raw(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
    }

    fn unsigned(&mut self, n: u64) -> Result {
        let mut buf = [0; 20];
        let from = digits(n, &mut buf);
        self.raw(&buf[from..])
    }

    fn signed(&mut self, n: i64) -> Result {
        let mut buf = [0; 20];
        let mut from = digits(n.unsigned_abs(), &mut buf);
        if n < 0 {
            from -= 1;
            buf[from] = b'-';
        }
        self.raw(&buf[from..])
    }

    /// What serde_json writes for a float (ryu's shortest form; `null` when not finite).
    fn float<F: Serialize>(&mut self, f: F) -> Result {
        serde_json::to_writer(&mut self.out, &f)
    }
}

/// Marks the bytes of `word` that JSON escapes (`"`, `\\`, below 0x20) at their top
/// bit: such a byte borrows when 0x20 (or, after an xor with `"` or `\\`, 1) is taken
/// from it, setting its top bit while its own was clear. A borrow can mark bytes above
/// the first marked one too, never below it: the lowest mark is exact.
fn escape_marks(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const TOPS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & TOPS;
    below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
}

fn word_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

fn half_word_at(bytes: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")).into()
}

/// The first byte at or after `from` that JSON escapes, sixteen then eight bytes at a
/// time (see [`escape_marks`]). The last bytes, fewer than eight, are one word too,
/// padded above with zeros: a mark there is past the end.
#[inline(always)]
fn next_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let len = bytes.len();
    let mut at = from;
    while let Some(pair) = bytes.get(at..at + 16) {
        let low = escape_marks(word_at(pair, 0));
        let high = escape_marks(word_at(pair, 8));
        if low | high != 0 {
            let first = if low != 0 {
                low.trailing_zeros()
            } else {
                64 + high.trailing_zeros()
            };
            return Some(at + first as usize / 8);
        }
        at += 16;
    }
    if at + 8 <= len {
        let marks = escape_marks(word_at(bytes, at));
        if marks != 0 {
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = len - at;
    let word = if rest == 0 {
        return None;
    } else if len >= 8 {
        // The last eight bytes, shifted down past the ones already looked at.
        word_at(bytes, len - 8) >> (8 * (8 - rest))
    } else if rest >= 4 {
        // Two four-byte halves, overlapping when fewer than eight.
        half_word_at(bytes, at) | half_word_at(bytes, len - 4) << (8 * (rest - 4))
    } else {
        bytes[at..]
            .iter()
            .rev()
            .fold(0, |w, &b| w << 8 | u64::from(b))
    };
    let first = escape_marks(word).trailing_zeros() as usize / 8;
    (first < rest).then_some(at + first)
}

/// `n` in decimal at the end of `buf`; returns where the digits start.
fn digits(mut n: u64, buf: &mut [u8; 20]) -> usize {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut at = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    at
}

impl<'a, W: Write> ser::Serializer for &'a mut Printer<W> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Compound<'a, W>;
    type SerializeTuple = Compound<'a, W>;
    type SerializeTupleStruct = Compound<'a, W>;
    type SerializeTupleVariant = Compound<'a, W>;
    type SerializeMap = Compound<'a, W>;
    type SerializeStruct = Compound<'a, W>;
    type SerializeStructVariant = Compound<'a, W>;

    fn serialize_bool(self, v: bool) -> Result {
        self.raw(if v { b"true" } else { b"false" })
    }
    fn serialize_i8(self, v: i8) -> Result {
        self.signed(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result {
        self.signed(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result {
        self.signed(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result {
        self.signed(v)
    }
    fn serialize_i128(self, v: i128) -> Result {
        write!(self.out, "{v}").map_err(serde_json::Error::io)
    }
    fn serialize_u8(self, v: u8) -> Result {
        self.unsigned(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result {
        self.unsigned(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result {
        self.unsigned(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result {
        self.unsigned(v)
    }
    fn serialize_u128(self, v: u128) -> Result {
        write!(self.out, "{v}").map_err(serde_json::Error::io)
    }
    fn serialize_f32(self, v: f32) -> Result {
        self.float(v)
    }
    fn serialize_f64(self, v: f64) -> Result {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result {
        self.string(v)
    }
    /// An array of numbers, as serde_json writes bytes.
    fn serialize_bytes(self, v: &[u8]) -> Result {
        use ser::SerializeSeq as _;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        v.iter().try_for_each(|b| seq.serialize_element(b))?;
        seq.end()
    }
    fn serialize_none(self) -> Result {
        self.raw(b"null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.raw(b"null")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.raw(b"null")
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        self.open_variant(variant)?;
        value.serialize(&mut *self)?;
        self.close(false, b"}")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a, W>> {
        self.open(b"[")?;
        Ok(Compound::new(self, false))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, W>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a, W>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, W>> {
        self.open_variant(variant)?;
        self.open(b"[")?;
        Ok(Compound::new(self, true))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a, W>> {
        self.open(b"{")?;
        Ok(Compound::new(self, false))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a, W>> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, W>> {
        self.open_variant(variant)?;
        self.open(b"{")?;
        Ok(Compound::new(self, true))
    }
}

/// An array or object being written.
pub(crate) struct Compound<'a, W> {
    printer: &'a mut Printer<W>,
    /// Nothing written in it yet.
    empty: bool,
    /// It is the value of a `{"Variant": ...}` object, closed with it.
    in_variant: bool,
}

impl<'a, W: Write> Compound<'a, W> {
    fn new(printer: &'a mut Printer<W>, in_variant: bool) -> Compound<'a, W> {
        Compound {
            printer,
            empty: true,
            in_variant,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.printer.new_line(self.empty)?;
        self.empty = false;
        value.serialize(&mut *self.printer)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result {
        self.printer.new_line(self.empty)?;
        self.empty = false;
        self.printer.string_then(key, b"\": ")?;
        value.serialize(&mut *self.printer)
    }

    fn close(self, bracket: &'static [u8]) -> Result {
        self.printer.close(self.empty, bracket)?;
        if self.in_variant {
            self.printer.close(false, b"}")?;
        }
        Ok(())
    }
}

impl<W: Write> ser::SerializeSeq for Compound<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::close(self, b"]")
    }
}

impl<W: Write> ser::SerializeTuple for Compound<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::close(self, b"]")
    }
}

impl<W: Write> ser::SerializeTupleStruct for Compound<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::close(self, b"]")
    }
}

impl<W: Write> ser::SerializeTupleVariant for Compound<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::close(self, b"]")
    }
}

impl<W: Write> ser::SerializeMap for Compound<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.printer.new_line(self.empty)?;
        self.empty = false;
        key.serialize(Key(&mut *self.printer))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.printer.raw(b": ")?;
        value.serialize(&mut *self.printer)
    }
    fn end(self) -> Result {
        Compound::close(self, b"}")
    }
}

impl<W: Write> ser::SerializeStruct for Compound<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }
    fn end(self) -> Result {
        Compound::close(self, b"}")
    }
}

impl<W: Write> ser::SerializeStructVariant for Compound<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }
    fn end(self) -> Result {
        Compound::close(self, b"}")
    }
}

/// A map key: a string, or what serde_json quotes into one (numbers, booleans, chars,
/// unit variants); anything else is its error.
struct Key<'a, W>(&'a mut Printer<W>);

fn key_must_be_a_string() -> serde_json::Error {
    ser::Error::custom("key must be a string")
}

impl<W: Write> Key<'_, W> {
    /// `"`, what `write` writes, `"`.
    fn quoted(self, write: impl FnOnce(&mut Printer<W>) -> Result) -> Result {
        self.0.raw(b"\"")?;
        write(self.0)?;
        self.0.raw(b"\"")
    }

    fn float(self, finite: bool, write: impl FnOnce(&mut Printer<W>) -> Result) -> Result {
        if !finite {
            return Err(ser::Error::custom(
                "float key must be finite (got NaN or +/-inf)",
            ));
        }
        self.quoted(write)
    }
}

impl<W: Write> ser::Serializer for Key<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStruct = Impossible<(), serde_json::Error>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    fn serialize_str(self, v: &str) -> Result {
        self.0.string(v)
    }
    fn serialize_char(self, v: char) -> Result {
        self.0.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.0.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_bool(self, v: bool) -> Result {
        self.quoted(|p| ser::Serializer::serialize_bool(p, v))
    }
    fn serialize_i8(self, v: i8) -> Result {
        self.quoted(|p| p.signed(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result {
        self.quoted(|p| p.signed(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result {
        self.quoted(|p| p.signed(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result {
        self.quoted(|p| p.signed(v))
    }
    fn serialize_i128(self, v: i128) -> Result {
        self.quoted(|p| ser::Serializer::serialize_i128(p, v))
    }
    fn serialize_u8(self, v: u8) -> Result {
        self.quoted(|p| p.unsigned(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result {
        self.quoted(|p| p.unsigned(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result {
        self.quoted(|p| p.unsigned(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result {
        self.quoted(|p| p.unsigned(v))
    }
    fn serialize_u128(self, v: u128) -> Result {
        self.quoted(|p| ser::Serializer::serialize_u128(p, v))
    }
    fn serialize_f32(self, v: f32) -> Result {
        self.float(v.is_finite(), |p| p.float(v))
    }
    fn serialize_f64(self, v: f64) -> Result {
        self.float(v.is_finite(), |p| p.float(v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        Err(key_must_be_a_string())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;

    /// What we print is what serde_json's pretty printer prints, byte for byte.
    #[track_caller]
    fn same<T: Serialize + ?Sized>(value: &T) {
        let theirs = serde_json::to_string_pretty(value).unwrap();
        assert_eq!(super::to_string(value).unwrap(), theirs);
        let mut streamed = Vec::new();
        super::to_writer(&mut streamed, value).unwrap();
        assert_eq!(streamed, theirs.as_bytes());
    }

    /// Both refuse it (a map key that is not a string, or a float key that is not finite).
    #[track_caller]
    fn both_refuse<T: Serialize + ?Sized>(value: &T) {
        let theirs = serde_json::to_string_pretty(value).unwrap_err().to_string();
        assert_eq!(super::to_string(value).unwrap_err().to_string(), theirs);
    }

    #[test]
    fn containers_nested_and_empty() {
        // Deeper than the indentation written in one go (60 levels).
        let mut deep = json!({"leaf": [1, {}], "empty": []});
        for level in 0..70 {
            deep = json!({ "level": level, "list": [[], {}, [deep], [[]], [{}], {"a": []}] });
        }
        same(&deep);
        same(&json!({}));
        same(&json!([]));
        same(&json!([[[]]]));
        same(&json!({"a": {"b": {}}, "c": [null, true, false]}));
        same(&Vec::<Vec<u8>>::new());
        same(&vec![Vec::<u8>::new(), vec![1]]);
        same(&BTreeMap::<String, ()>::new());
        same(&((), (1, "two"), [3.5]));
    }

    #[test]
    fn every_escape_and_control_byte() {
        for byte in 0..=0x7f_u8 {
            let c = char::from(byte);
            same(&c.to_string());
            same(&c);
            same(&format!("a{c}b{c}{c}"));
            same(&BTreeMap::from([(c.to_string(), c)]));
        }
        let all: String = (0..=0x7f_u8).map(char::from).collect();
        same(&all);
        same(&json!({ all.clone(): [all] }));
    }

    #[test]
    fn non_ascii_text_and_bytes_that_look_like_escapes_without_their_top_bit() {
        // 0x9c, 0xa2 and 0xdc are 0x1c, `"` and `\` with the top bit set.
        for s in [
            "é",
            "日本語",
            "🦀",
            "Ü¢ܐ",
            "¢\"Ü\\ܐ\u{1c}",
            "naïve — “quoted” ☃",
            "\u{7f}\u{80}\u{ffff}",
        ] {
            same(&s);
            same(&s.repeat(9));
        }
    }

    #[test]
    fn escapes_at_every_position_of_long_strings() {
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1f}', '\u{1}',
        ];
        for len in 0..40 {
            for at in 0..=len {
                for c in specials {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len].into();
                    s.insert(at, c);
                    same(&s);
                    // Two in a row, and one in the same word after a non-ASCII char.
                    s.insert(at, c);
                    same(&s);
                    s.insert(0, 'é');
                    same(&s);
                }
            }
        }
        let long = "x".repeat(1000) + "\"" + &"y".repeat(1000) + "\n" + &"z".repeat(7);
        same(&long);
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(i32),
        Tuple(u8, String),
        EmptyTuple(),
        Struct { a: Option<u8>, b: Vec<Shape> },
        EmptyStruct {},
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(String);

    #[derive(Serialize)]
    struct Pair(i8, Option<&'static str>);

    #[derive(Serialize)]
    struct Record {
        name: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        maybe: Option<Option<bool>>,
        #[serde(rename = "quoted \"key\"\n")]
        odd: (),
        shapes: Vec<Shape>,
        unit: Unit,
        newtype: Newtype,
        pair: Pair,
        empty: Empty,
    }

    #[derive(Serialize)]
    struct Empty {}

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum KeyKind {
        Left,
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct KeyName(&'static str);

    #[test]
    fn options_enums_structs() {
        let shapes = vec![
            Shape::Unit,
            Shape::Newtype(-7),
            Shape::Tuple(3, "x\ty".into()),
            Shape::EmptyTuple(),
            Shape::Struct {
                a: None,
                b: vec![
                    Shape::Struct {
                        a: Some(1),
                        b: vec![],
                    },
                    Shape::Newtype(0),
                ],
            },
            Shape::EmptyStruct {},
        ];
        for shape in &shapes {
            same(shape);
        }
        same(&Record {
            name: "r",
            skipped: None,
            maybe: Some(None),
            odd: (),
            shapes,
            unit: Unit,
            newtype: Newtype("n".into()),
            pair: Pair(-1, None),
            empty: Empty {},
        });
        same(&Some(Some(3)));
        same(&None::<u8>);
        same(&Unit);
        same(&Empty {});
    }

    #[test]
    fn maps_and_their_keys() {
        same(&BTreeMap::from([("b", 1), ("a", 2)]));
        same(&BTreeMap::from([(-3_i64, "a"), (i64::MIN, "b"), (7, "c")]));
        same(&BTreeMap::from([(u64::MAX, 1), (0, 2)]));
        same(&BTreeMap::from([
            (i128::MIN, 1),
            (u128::MAX as i128 >> 1, 2),
        ]));
        same(&BTreeMap::from([(u128::MAX, 1)]));
        same(&BTreeMap::from([(true, 1), (false, 2)]));
        same(&BTreeMap::from([('\n', 1), ('"', 2)]));
        same(&BTreeMap::from([(KeyKind::Left, 1)]));
        same(&BTreeMap::from([(KeyName("k\\"), 1)]));
        same(&BTreeMap::from([(Some("some"), 1)]));
        same(&BTreeMap::from([(3_u8, 1), (200, 2)]));
        same(&BTreeMap::from([(-3_i8, 1), (i16::MIN as i8, 2)]));
        // Not a string.
        both_refuse(&BTreeMap::from([(vec![1], 1)]));
        both_refuse(&BTreeMap::from([((), 1)]));
        both_refuse(&BTreeMap::from([(None::<&str>, 1)]));
        both_refuse(&[Pairs(vec![(Unit, 1)])]);
    }

    /// A map of any keys (std's maps take no float keys): serialized by hand.
    struct Pairs<K, V>(Vec<(K, V)>);

    impl<K: Serialize, V: Serialize> Serialize for Pairs<K, V> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }

    /// `serialize_bytes` and `collect_str`.
    struct BytesAndDisplay(&'static [u8]);

    impl Serialize for BytesAndDisplay {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple as _;
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&serde_bytes_like(self.0))?;
            t.serialize_element(&format_args!("{}\"{:?}", self.0.len(), "\n"))?;
            t.end()
        }
    }

    fn serde_bytes_like(bytes: &'static [u8]) -> impl Serialize {
        struct B(&'static [u8]);
        impl Serialize for B {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(bytes)
    }

    #[test]
    fn float_keys_bytes_and_displayed_values() {
        same(&Pairs(vec![
            (1.5, 1),
            (-0.0, 2),
            (1e21, 3),
            (0.1, 4),
            (5e-324, 5),
        ]));
        same(&Pairs(vec![(0.1_f32, 1), (-3e38, 2)]));
        both_refuse(&Pairs(vec![(f64::NAN, 1)]));
        both_refuse(&Pairs(vec![(f64::INFINITY, 1)]));
        same(&BytesAndDisplay(b""));
        same(&BytesAndDisplay(&[0, 9, 10, 255]));
    }

    #[test]
    fn numbers() {
        let mut ints: Vec<i128> = vec![0, -1, i64::MIN.into(), i64::MAX.into(), u64::MAX.into()];
        for p in 0..20 {
            let ten = 10_i128.pow(p);
            ints.extend([ten - 1, ten, ten + 1, -ten, 1 - ten]);
        }
        for n in ints {
            if let Ok(n) = i64::try_from(n) {
                same(&n);
                same(&[n]);
            }
            if let Ok(n) = u64::try_from(n) {
                same(&n);
            }
            if let Ok(n) = i32::try_from(n) {
                same(&n);
            }
            if let Ok(n) = u16::try_from(n) {
                same(&n);
            }
            same(&n);
        }
        same(&(
            i8::MIN,
            i16::MIN,
            i32::MIN,
            u8::MAX,
            u16::MAX,
            u32::MAX,
            u64::MAX,
        ));
        same(&(i128::MIN, i128::MAX, u128::MAX));
        same(&[
            0.0,
            -0.0,
            1.5,
            -2.25,
            0.1,
            1e-7,
            1e21,
            123456789.125,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]);
        same(&[0.1_f32, 1e-45, f32::MAX, f32::NAN, 16777216.0]);
        same(&json!({"n": 1.0, "m": -1, "u": u64::MAX, "f": 2.5e-10}));
    }
}
