//! The wire format between peers: each raft-proto `Message` in its protobuf
//! encoding, behind a 4-byte big-endian length. A writer puts as many frames
//! into one write as it has queued.
//!
//! Every connection opens with a [`Hello`] frame naming the cluster, the
//! sender and the receiver. A probe connection (a node about to found the
//! cluster asking whether it already runs) gets one answer frame, the
//! receiver's applied index, and is closed.

use bytes::{Buf, BufMut, Bytes};
use protobuf::Message as _;
use raft_proto::eraftpb::Message;
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame accepted: a length past it is a corrupt or hostile
/// peer, and is refused before anything is allocated for it.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// The first frame of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The sender's cluster id.
    pub cluster: u64,
    /// The sender.
    pub from: u64,
    /// The node it means to reach.
    pub to: u64,
    /// Raft messages follow, or the sender only asks how far this node is.
    pub probe: bool,
}

/// Opens every hello: an old or foreign sender fails on it, not later.
const HELLO_MAGIC: &[u8; 8] = b"raftnode";
const HELLO_BYTES: usize = 8 + 8 + 8 + 8 + 1;

impl Hello {
    /// Its frame payload.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(HELLO_BYTES);
        out.put_slice(HELLO_MAGIC);
        out.put_u64(self.cluster);
        out.put_u64(self.from);
        out.put_u64(self.to);
        out.put_u8(u8::from(self.probe));
        out.into()
    }

    /// Parses a hello; `None` for anything else.
    pub fn decode(payload: &[u8]) -> Option<Hello> {
        if payload.len() != HELLO_BYTES || &payload[..8] != HELLO_MAGIC {
            return None;
        }
        let mut buf = &payload[8..];
        let hello = Hello {
            cluster: buf.get_u64(),
            from: buf.get_u64(),
            to: buf.get_u64(),
            probe: match buf.get_u8() {
                0 => false,
                1 => true,
                _ => return None,
            },
        };
        Some(hello)
    }
}

/// The codec of a peer connection, both directions.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// The codec of a connection's first frame, the hello: any longer frame
/// is refused before it is read.
pub fn hello_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(HELLO_BYTES)
        .new_codec()
}

/// A message's frame payload.
pub fn encode(msg: &Message) -> Bytes {
    Bytes::from(
        msg.write_to_bytes()
            .expect("a raft message always has its required fields"),
    )
}

/// Parses a frame payload.
///
/// # Errors
///
/// The bytes are not a protobuf `Message`.
pub fn decode(payload: &[u8]) -> Result<Message, protobuf::ProtobufError> {
    Message::parse_from_bytes(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use raft_proto::eraftpb::{Entry, MessageType};
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgAppend);
        msg.to = 2;
        msg.from = 1;
        msg.entries = vec![Entry {
            index: 7,
            term: 3,
            data: vec![1; 300].into(),
            ..Default::default()
        }]
        .into();
        let mut wire = BytesMut::new();
        codec().encode(encode(&msg), &mut wire).unwrap();
        codec().encode(encode(&msg), &mut wire).unwrap();
        let mut reader = codec();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            if let Some(frame) = reader.decode(&mut buf).unwrap() {
                got.push(decode(&frame).unwrap());
            }
        }
        assert_eq!(got, vec![msg.clone(), msg]);
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_it() {
        let mut buf = BytesMut::from(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes()[..]);
        assert!(codec().decode(&mut buf).is_err());
    }

    #[test]
    fn a_hello_round_trips_and_nothing_else_passes_for_one() {
        let hello = Hello {
            cluster: 7,
            from: 1,
            to: 2,
            probe: true,
        };
        assert_eq!(Hello::decode(&hello.encode()), Some(hello));
        let raft = encode(&Message::default());
        assert_eq!(Hello::decode(&raft), None);
        let mut bad = hello.encode().to_vec();
        bad[32] = 2;
        assert_eq!(Hello::decode(&bad), None);
        assert_eq!(Hello::decode(&bad[..20]), None);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
