//! A bounds-checked cursor over untrusted bytes: every read returns `AmtError::Truncated`
//! instead of panicking when the input is too short.

use crate::AmtError;

/// Cursor over a byte slice; `what` names the structure for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn short(&self, n: usize) -> AmtError {
        AmtError::Truncated { what: self.what, needed: self.pos.saturating_add(n), got: self.buf.len() }
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], AmtError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.short(n))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.short(n))?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], AmtError> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| self.short(N))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, AmtError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, AmtError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, AmtError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// The unread bytes (consumes them).
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7], "test");
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 0x0203);
        assert_eq!(r.u32(), Ok(0x04050607));
        assert_eq!(r.u8(), Err(AmtError::Truncated { what: "test", needed: 8, got: 7 }));
        assert!(r.take(usize::MAX).is_err());
        assert_eq!(r.rest(), &[] as &[u8]);
    }
}
