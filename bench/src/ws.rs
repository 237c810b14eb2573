//! WebSocket framing (RFC 6455) as the load generator and the baseline need it: a frame's
//! header read from the front of a buffer, and a whole frame written, masked (client to
//! server) or not (server to client). Fragmented messages are left to the caller to refuse.

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whether this is the last frame of its message.
    pub fin: bool,
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation).
    pub opcode: u8,
    /// The masking key, on frames from a client.
    pub mask: Option<[u8; 4]>,
    /// The payload's length.
    pub len: usize,
    /// Where the payload starts (the header's length).
    pub at: usize,
}

impl Header {
    /// The header at the front of `buf`, or `None` when `buf` does not hold all of it yet.
    pub fn read(buf: &[u8]) -> Option<Header> {
        let [first, second, ..] = *buf else {
            return None;
        };
        let (len, mut at) = match second & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (
                usize::try_from(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?))
                    .unwrap_or(usize::MAX),
                10,
            ),
            len => (usize::from(len), 2),
        };
        let mask = if second & 0x80 != 0 {
            let mask: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
            at += 4;
            Some(mask)
        } else {
            None
        };
        Some(Header {
            fin: first & 0x80 != 0,
            opcode: first & 0x0f,
            mask,
            len,
            at,
        })
    }

    /// The whole frame's length, header included (saturating for absurd lengths).
    pub fn frame_len(&self) -> usize {
        self.at.saturating_add(self.len)
    }
}

/// One whole frame (FIN set) of `opcode` carrying `payload`, masked with `mask` when given.
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(masked | len as u8),
        len @ 126..=0xffff => {
            frame.push(masked | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(masked | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        }
        None => frame.extend_from_slice(payload),
    }
    frame
}

/// `payload` unmasked with `mask` (masking is its own inverse).
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_masked_and_not_at_every_length_form() {
        for len in [0, 5, 125, 126, 300, 0xffff, 0x1_0000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let frame = encode(0x1, &payload, mask);
                let header = Header::read(&frame).expect("a whole header");
                assert_eq!(
                    (header.fin, header.opcode, header.mask, header.len),
                    (true, 1, mask, len)
                );
                assert_eq!(header.frame_len(), frame.len());
                let mut body = frame[header.at..].to_vec();
                if let Some(mask) = header.mask {
                    unmask(&mut body, mask);
                }
                assert_eq!(body, payload);
                assert!(Header::read(&frame[..header.at - 1]).is_none());
            }
        }
        assert_eq!(&encode(0x1, &[b'a'; 300], None)[..4], &[0x81, 126, 1, 44]);
    }

    #[test]
    fn fragments_are_told_apart() {
        let header = Header::read(&[0x01, 0x00]).expect("a header");
        assert_eq!((header.fin, header.opcode), (false, 1));
        let header = Header::read(&[0x80, 0x00]).expect("a header");
        assert_eq!((header.fin, header.opcode), (true, 0));
    }
}
